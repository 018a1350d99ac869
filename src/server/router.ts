import { createApiKeyVerifier } from '../auth/api-key.js';
import { type Authenticate, createAuthenticator, type Verifiers } from '../auth/authenticate.js';
import { resourceMetadata, resourceMetadataPaths, resourceMetadataUrl } from '../auth/challenge.js';
import { createJwtVerifier, type JwksObserver } from '../auth/jwt.js';
import { createMtlsMatcher } from '../auth/mtls.js';
import type { Config, RouteConfig } from '../config/schema.js';
import { type CompiledPolicy, compilePolicy } from '../policy/compile.js';
import { compileUpstreamHeaders, type UpstreamHeaderPlan } from '../proxy/headers.js';
import { compileRateLimits } from '../ratelimit/rules.js';
import { createHttpUpstream } from '../upstream/http.js';
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
  /** Where the route sends what it admits (today always HTTP; stdio and federation implement it too). */
  readonly upstream: Upstream;
}

export interface Router {
  /** Exact match on the path (query ignored); no normalization, so `/mcp/` and `/MCP` are not `/mcp`. */
  match(url: string | undefined): CompiledRoute | undefined;
  /** The RFC 9728 document served at `url`, serialized, if it is a route's metadata path. */
  metadata(url: string | undefined): string | undefined;
  readonly routes: readonly CompiledRoute[];
  close(): Promise<void>;
}

/** `jwks` hears of every JWKS fetch that failed (the gateway logs and counts them). */
export function createRouter(config: Config, jwks?: JwksObserver): Router {
  const verifiers: Verifiers = {
    apiKey: createApiKeyVerifier(config.identities.apiKeys),
    jwt: createJwtVerifier(config.identities.jwt, jwks),
    mtls: createMtlsMatcher(config.identities.mtls),
  };
  const routes = config.routes.map((route) => compileRoute(config, route, verifiers));
  const byPath = new Map(routes.map((route) => [route.path, route]));
  const documents = new Map<string, string>();
  // Only routes naming an authorization server have a document (resourceMetadataPaths is empty otherwise).
  for (const route of config.routes) {
    const document = JSON.stringify(resourceMetadata(route));
    for (const path of resourceMetadataPaths(route)) documents.set(path, document);
  }
  const pathOf = (url: string) => {
    const q = url.indexOf('?');
    return q === -1 ? url : url.slice(0, q);
  };
  return {
    routes,
    match: (url) => (url === undefined ? undefined : byPath.get(pathOf(url))),
    metadata: (url) => (url === undefined ? undefined : documents.get(pathOf(url))),
    async close() {
      await Promise.all(routes.map((route) => route.upstream.close()));
    },
  };
}

function compileRoute(config: Config, route: RouteConfig, verifiers: Verifiers): CompiledRoute {
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
    upstream: createHttpUpstream(route),
  };
}
