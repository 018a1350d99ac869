import pino, { type Logger } from 'pino';
import type { AuditStream } from '../audit/stream.js';
import { createApiKeyVerifier } from '../auth/api-key.js';
import { type Authenticate, createAuthenticator, type Verifiers } from '../auth/authenticate.js';
import { resourceMetadata, resourceMetadataPaths, resourceMetadataUrl } from '../auth/challenge.js';
import type { Identity } from '../auth/identity.js';
import { createJwtVerifier, type JwksObserver } from '../auth/jwt.js';
import { createMtlsMatcher } from '../auth/mtls.js';
import type { Config, RouteConfig } from '../config/schema.js';
import { namesTaskMethods } from '../config/task-methods.js';
import { isStdioTarget, type UpstreamTarget, upstreamTargets } from '../config/upstreams.js';
import { PinStore } from '../integrity/pin-store.js';
import { pinUpstream } from '../integrity/pinned-upstream.js';
import { type CompiledPolicy, compilePolicy } from '../policy/compile.js';
import { compileUpstreamHeaders, type UpstreamHeaderPlan } from '../proxy/headers.js';
import { createSealer } from '../proxy/seal.js';
import { compileRateLimits } from '../ratelimit/rules.js';
import { createFederatedUpstream, type FederationDeps } from '../upstream/federation/upstream.js';
import { createHttpUpstream } from '../upstream/http.js';
import { assertIdentity } from '../upstream/identity/asserted-upstream.js';
import type { Assertions } from '../upstream/identity/assertions.js';
import { exchangeIdentity } from '../upstream/identity/token-exchange.js';
import { listServer } from '../upstream/list-server.js';
import { createStdioRegistry, type StdioGeneration, type StdioRegistry } from '../upstream/stdio/registry.js';
import { createStdioUpstream } from '../upstream/stdio/upstream.js';
import { bindTasks } from '../upstream/task-binding.js';
import type { Upstream } from '../upstream/upstream.js';

/** A route with everything the hot path needs built once at load. */
export interface CompiledRoute {
  readonly config: RouteConfig;
  readonly path: string;
  readonly allowedOrigins: ReadonlySet<string>;
  /** Which client headers go upstream, the route's `upstreamHeaders`, its public host. */
  readonly upstreamHeaders: UpstreamHeaderPlan;
  readonly authenticate: Authenticate;
  readonly policy: CompiledPolicy;
  /** The charges a request makes against the route's `rateLimits`. */
  readonly rateLimits: ReturnType<typeof compileRateLimits>;
  /** The RFC 9728 URL its challenges name; `undefined` when the route has no authorization server. */
  readonly resourceMetadata: string | undefined;
  /** Where the route sends what it admits: an HTTP server or a spawned stdio one. */
  readonly upstream: Upstream;
  /**
   * The hash of the pinned definition of the tool exposed as `name` (a federated route: its
   * server's pin), or null — no pins, or none for it. What a confirmation is bound to.
   */
  readonly pinnedToolHash: (name: string) => string | null;
}

export interface Router {
  /** Exact match on the path (query ignored); no normalization, so `/mcp/` and `/MCP` are not `/mcp`. */
  match(url: string | undefined): CompiledRoute | undefined;
  /**
   * The document served at `url`, serialized: a route's RFC 9728 metadata, or the gateway's JWKS
   * at `/.well-known/jwks.json` when it signs assertions.
   */
  metadata(url: string | undefined): string | undefined;
  /** The JWKS of `gatewayIdentity` (also served by the admin listener); undefined without one. */
  readonly jwks: string | undefined;
  readonly routes: readonly CompiledRoute[];
  close(): Promise<void>;
}

export interface RouterOptions {
  /** Hears of every JWKS fetch that failed (the gateway logs and counts them). */
  readonly jwks?: JwksObserver | undefined;
  /**
   * Keeps stdio upstreams across reloads (the gateway's one registry). Without it the router
   * owns the stdio upstreams it makes and stops them when it closes.
   */
  readonly stdio?: StdioRegistry | undefined;
  /** For a registry of the router's own. */
  readonly logger?: Logger | undefined;
  /** What federated routes need: the gateway's instruments and sealer (cursors); else a silent logger and a key of the router's own. */
  readonly federation?: Pick<FederationDeps, 'logger' | 'metrics' | 'sealer'> | undefined;
  /**
   * The gateway's pin files (read and watched once, relative to the policy file); without it the
   * router reads them itself, relative to the working directory, unwatched.
   */
  readonly pins?: PinStore | undefined;
  /** Where a definition seen to differ from its pin is recorded (besides the log and the metric). */
  readonly audit?: AuditStream | undefined;
  /**
   * `gatewayIdentity`'s keys, loaded (`createAssertions`): required when a route's upstream is told
   * who calls by assertion.
   */
  readonly assertions?: Assertions | undefined;
}

/** Where the gateway's JWKS is served, on the main and the admin listener. */
export const JWKS_PATH = '/.well-known/jwks.json';

/** Who the gateway is to a server it lists to compare with the pins. */
const PIN_CHECK: Identity = { key: 'gateway', subject: 'portcullis (pins)', methods: [], scopes: new Set() };

export function createRouter(config: Config, options: RouterOptions = {}): Router {
  const verifiers: Verifiers = {
    apiKey: createApiKeyVerifier(config.identities.apiKeys),
    jwt: createJwtVerifier(config.identities.jwt, options.jwks),
    mtls: createMtlsMatcher(config.identities.mtls),
  };
  const own =
    options.stdio === undefined
      ? createStdioRegistry(options.logger ?? pino({ level: 'silent' }))
      : undefined;
  const stdio = (options.stdio ?? own)?.generation(config) as StdioGeneration;
  const federation: FederationDeps = {
    ...(options.federation ?? {
      logger: options.logger ?? pino({ level: 'silent' }),
      sealer: createSealer(config.sessions.keys),
    }),
    maxResponseBytes: config.limits.maxResponseBytes,
    maxJsonDepth: config.limits.maxJsonDepth,
  };
  const pinStore = options.pins ?? new PinStore(PinStore.baseOf(undefined), federation.logger, undefined);
  pinStore.sync(config);
  const http: Upstream[] = [];
  const routes = config.routes.map((route, index) => {
    const members = upstreamTargets(route, index).map((target) => {
      let upstream: Upstream;
      if (isStdioTarget(target)) upstream = stdio.upstream(target, target.upstream);
      else {
        upstream = createHttpUpstream(target.upstream as string, target);
        http.push(upstream);
        if (target.identity?.mode === 'assertion') {
          if (options.assertions === undefined)
            throw new Error(
              `${target.field}: upstreamIdentity needs gatewayIdentity's keys, which were not loaded`,
            );
          upstream = assertIdentity(upstream, options.assertions, target.identity);
        } else if (target.identity?.mode === 'tokenExchange')
          upstream = exchangeIdentity(upstream, target.identity, {
            route: route.route,
            server: target.server,
            logger: federation.logger,
            metrics: federation.metrics,
          });
      }
      // Pins are enforced on each server, where the server's own names are seen.
      if (route.pins !== undefined) upstream = pinned(route, route.pins, target, upstream);
      return { target, upstream };
    });
    const single = (members[0] as { upstream: Upstream }).upstream;
    // Task ids are bound to their creator wherever `methods` grants the tasks methods: a
    // federated route always seals them; a single-server route only then (it keeps its fast path).
    const upstream =
      route.servers !== undefined
        ? createFederatedUpstream(route, members, federation)
        : Object.keys(route.methods).some(namesTaskMethods)
          ? bindTasks(route.route, single, federation)
          : single;
    return compileRoute(config, route, verifiers, upstream, pinnedToolHashes(route, pinStore));
  });
  stdio.commit();

  function pinned(route: RouteConfig, pins: string, target: UpstreamTarget, upstream: Upstream): Upstream {
    const processes = isStdioTarget(target) ? target.upstream.processes : undefined;
    return pinUpstream(upstream, {
      route: route.route,
      server: target.server,
      pins: pinStore.current(pins),
      volatileMeta: new Set(route.volatileMeta),
      onToolChange: route.onToolChange,
      refreshMs: route.pinRefreshSec * 1000,
      validateArguments: route.validateArguments,
      strictArguments: route.strictArguments,
      validateResults: route.validateResults,
      // A stdio server run per identity (or session) is a process each: each lists for itself.
      scopeOf:
        processes === 'perIdentity'
          ? (request) => request.identity.key
          : processes === 'perSession'
            ? (request) => request.session?.upstreamId ?? request.identity.key
            : () => '',
      maxResponseBytes: config.limits.maxResponseBytes,
      maxJsonDepth: config.limits.maxJsonDepth,
      logger: federation.logger,
      onChange: (change) => {
        federation.metrics?.toolChanges.inc({
          route: route.route,
          kind: change.kind,
          verdict: change.verdict,
        });
        options.audit?.write({
          time: new Date().toISOString(),
          event: 'definition-changed',
          route: route.route,
          server: target.server,
          ...change,
          onToolChange: route.onToolChange,
        });
      },
      ownListing: {
        // An HTTP server is listed through the route's own pool; a stdio server through a process
        // of its own, stopped after (DESIGN.md: the callers' processes are theirs alone).
        list: () => {
          const listing = isStdioTarget(target)
            ? createStdioUpstream(target, target.upstream, {
                logger: federation.logger,
                sealer: federation.sealer,
                maxResponseBytes: config.limits.maxResponseBytes,
                maxJsonDepth: config.limits.maxJsonDepth,
              })
            : upstream;
          return listServer(route, target, listing, federation, PIN_CHECK).finally(() =>
            listing === upstream ? undefined : listing.close(),
          );
        },
        shared: !isStdioTarget(target),
      },
    });
  }
  const byPath = new Map(routes.map((route) => [route.path, route]));
  const documents = new Map<string, string>();
  // Only routes naming an authorization server have a document (resourceMetadataPaths is empty otherwise).
  for (const route of config.routes) {
    const document = JSON.stringify(resourceMetadata(route));
    for (const path of resourceMetadataPaths(route)) documents.set(path, document);
  }
  const jwks = config.gatewayIdentity === undefined ? undefined : options.assertions?.jwks;
  if (jwks !== undefined) documents.set(JWKS_PATH, jwks);
  const pathOf = (url: string) => {
    const q = url.indexOf('?');
    return q === -1 ? url : url.slice(0, q);
  };
  return {
    routes,
    match: (url) => (url === undefined ? undefined : byPath.get(pathOf(url))),
    metadata: (url) => (url === undefined ? undefined : documents.get(pathOf(url))),
    jwks,
    async close() {
      // HTTP pools are this router's; stdio processes outlive it when the next router keeps them.
      await Promise.all([...http.map((upstream) => upstream.close()), own?.close()]);
    },
  };
}

/** The route's pinned tool hashes by exposed name ({@link CompiledRoute.pinnedToolHash}). */
function pinnedToolHashes(route: RouteConfig, pinStore: PinStore): (name: string) => string | null {
  if (route.pins === undefined) return () => null;
  const pins = pinStore.current(route.pins);
  if (route.servers === undefined) return (name) => pins().get('tool', undefined, name)?.hash ?? null;
  const prefixes = Object.entries(route.servers).map(([server, spec]) => ({
    server,
    prefix: spec.prefix ?? `${server}__`,
  }));
  return (name) => {
    for (const { server, prefix } of prefixes)
      if (name.startsWith(prefix)) return pins().get('tool', server, name.slice(prefix.length))?.hash ?? null;
    return null;
  };
}

function compileRoute(
  config: Config,
  route: RouteConfig,
  verifiers: Verifiers,
  upstream: Upstream,
  pinnedToolHash: (name: string) => string | null,
): CompiledRoute {
  return {
    config: route,
    path: route.route,
    // A page served from the route's own public origin is same-origin, never a rebinding attack.
    allowedOrigins: new Set([...route.allowedOrigins, new URL(route.resource).origin]),
    upstreamHeaders: compileUpstreamHeaders(route),
    authenticate: createAuthenticator(config, route, verifiers),
    policy: compilePolicy(route),
    rateLimits: compileRateLimits(route),
    resourceMetadata: resourceMetadataUrl(route),
    upstream,
    pinnedToolHash,
  };
}
