import { hash } from 'node:crypto';
import { importPKCS8 } from 'jose';
import * as oauth from 'openid-client';
import type { Logger } from 'pino';
import { isGatewaysOwn } from '../../auth/identity.js';
import { subjectTokenOf } from '../../auth/jwt.js';
import type { Config, UpstreamIdentityConfig } from '../../config/schema.js';
import { upstreamTargets } from '../../config/upstreams.js';
import { type Refusal, refuse } from '../../errors.js';
import type { Metrics } from '../../metrics/registry.js';
import type { Upstream, UpstreamRequest } from '../upstream.js';
import { callerScopes, neededScopes, withBearer } from './bearer.js';
import { readPrivateKey } from './signing-keys.js';

type ExchangeSpec = Extract<UpstreamIdentityConfig, { mode: 'tokenExchange' }>;

const GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';
/** Issued tokens kept at most: beyond it the oldest is dropped. */
const MAX_CACHED = 10_000;
/** What a 503 `idp_unavailable` from a token endpoint asks the client to wait. */
const RETRY_AFTER_SEC = '5';
/** The largest token endpoint answer read: an OAuth token response is a few kilobytes. */
const MAX_ANSWER_BYTES = 64 * 1024;
/** An issued token the gateway will put in a header: RFC 6750 `b64token`, at most 16 KiB. */
const BEARER_TOKEN = /^[A-Za-z0-9\-._~+/]{1,16384}=*$/;

export interface TokenExchangeDeps {
  readonly route: string;
  /** The server's name on a federated route (metric label); undefined for a single-server route. */
  readonly server: string | undefined;
  readonly logger: Logger;
  readonly metrics?: Metrics | undefined;
  /** The clock (epoch ms); tests move it. */
  readonly now?: () => number;
}

interface Cached {
  token?: string;
  pending?: Promise<string | Refusal> | undefined;
  reuseUntilMs: number;
}

/**
 * An HTTP upstream reached with a token the authorization server issued for it in exchange for the
 * caller's (`upstreamIdentity: { mode: tokenExchange }`, RFC 8693), in `Authorization: Bearer`. The
 * caller's own token goes to the token endpoint only, never upstream. Issued tokens are cached by
 * (hash of the subject token, scope) — the audience is the upstream's — and never used past the
 * subject token's own `exp`. The authorization server refusing is 403 `exchange_refused` (its
 * `error` in `data.error`); not answering, or answering nonsense, is 503 `idp_unavailable`.
 * The gateway's own requests (pin checks) have no subject token and go without one.
 */
export function exchangeIdentity(upstream: Upstream, spec: ExchangeSpec, deps: TokenExchangeDeps): Upstream {
  const now = deps.now ?? Date.now;
  const cache = new Map<string, Cached>();
  const client = clientOf(spec);
  const labels = { route: deps.route, server: deps.server ?? '' };
  const count = (result: 'issued' | 'refused' | 'unavailable') =>
    deps.metrics?.tokenExchanges.inc({ ...labels, result });
  const scopeOf = spec.scopes === 'call' ? (r: UpstreamRequest) => neededScopes(r.decisions) : callerScopes;

  /** 503 `idp_unavailable`, logged (never a token) and counted. */
  const unavailable = (message: string, detail: Record<string, unknown> = {}): Refusal => {
    count('unavailable');
    deps.logger.warn(
      { route: deps.route, server: deps.server, tokenEndpoint: spec.tokenEndpoint, ...detail },
      message,
    );
    return refuse('idp_unavailable', { headers: { 'retry-after': RETRY_AFTER_SEC } });
  };

  const exchange = async (
    subject: string,
    scope: string,
  ): Promise<{ token: string; expMs: number } | Refusal> => {
    const parameters: Record<string, string> = {
      subject_token: subject,
      subject_token_type: ACCESS_TOKEN,
      requested_token_type: ACCESS_TOKEN,
      audience: spec.audience,
      ...(spec.resource === undefined ? {} : { resource: spec.resource }),
      ...(scope === '' ? {} : { scope }),
    };
    let answer: Awaited<ReturnType<typeof oauth.genericGrantRequest>>;
    try {
      answer = await oauth.genericGrantRequest(await client, GRANT, parameters);
    } catch (err) {
      const said = oauthErrorOf(err);
      if (said !== undefined && !said.unavailable) {
        count('refused');
        return refuse('exchange_refused', { data: { error: said.error } });
      }
      // The message names what failed (a timeout, a status, a malformed answer); never a token.
      return unavailable(
        said === undefined
          ? 'token exchange failed: the authorization server did not answer usably'
          : `token exchange failed: the authorization server answered ${said.error} (${said.status})${said.gateway ? ': it refuses the gateway as a client — check clientId and its credential' : ''}`,
        said === undefined ? { err: errorSummary(err) } : {},
      );
    }
    // What goes into the upstream's Authorization header must be a bearer token meant for it: a
    // header value (no line breaks, no megabyte), issued as an access token (RFC 8693: `N_A` is
    // not one), and not the caller's own token handed back by a lenient server.
    const problem = !BEARER_TOKEN.test(answer.access_token)
      ? 'is not a bearer token'
      : answer.issued_token_type !== ACCESS_TOKEN
        ? 'is not an access token (issued_token_type)'
        : answer.token_type.toLowerCase() !== 'bearer'
          ? 'is not a bearer token (token_type)'
          : answer.access_token === subject
            ? "is the caller's own token"
            : undefined;
    if (problem !== undefined)
      return unavailable(`token exchange failed: the issued access_token ${problem}`);
    count('issued');
    const issuedFor = typeof answer.expires_in === 'number' ? now() + answer.expires_in * 1000 : Infinity;
    return { token: answer.access_token, expMs: issuedFor };
  };

  const tokenFor = (request: UpstreamRequest, subject: string): string | Promise<string | Refusal> => {
    const scope = scopeOf(request);
    const key = `${hash('sha256', subject)}\n${scope}`;
    const at = now();
    const cached = cache.get(key);
    if (cached !== undefined && at < cached.reuseUntilMs)
      return cached.token ?? (cached.pending as Promise<string | Refusal>);
    // Never used past the subject token's own `exp` (without the clock tolerance its check allows).
    const subjectExp = request.identity.claims?.exp;
    const subjectExpMs = typeof subjectExp === 'number' ? subjectExp * 1000 : at;
    const entry: Cached = { reuseUntilMs: Number.POSITIVE_INFINITY };
    entry.pending = exchange(subject, scope).then((issued) => {
      if ('kind' in issued) {
        // A refusal is not cached: the next call asks again.
        if (cache.get(key) === entry) cache.delete(key);
        return issued;
      }
      const expMs = Math.min(issued.expMs, subjectExpMs);
      entry.token = issued.token;
      entry.pending = undefined;
      entry.reuseUntilMs = expMs - Math.min(30_000, (expMs - now()) / 2);
      if (entry.reuseUntilMs <= now() && cache.get(key) === entry) cache.delete(key);
      return issued.token;
    });
    cache.delete(key);
    if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value as string);
    cache.set(key, entry);
    return entry.pending;
  };

  return {
    send(request) {
      const subject = subjectTokenOf(request.identity);
      if (subject === undefined) {
        // The gateway's own requests (pin checks) have no caller's token and go without one.
        if (isGatewaysOwn(request.identity)) return upstream.send(request);
        // A caller with no token to exchange: never forwarded without the upstream's token.
        deps.logger.error(
          { route: deps.route, server: deps.server, identity: request.identity.key },
          'token exchange: the caller has no subject token (a bug); the call is refused',
        );
        return Promise.resolve(refuse('internal'));
      }
      const token = tokenFor(request, subject);
      if (typeof token === 'string') return upstream.send(withBearer(request, token));
      return token.then((issued) =>
        typeof issued === 'string' ? upstream.send(withBearer(request, issued)) : issued,
      );
    },
    close: () => upstream.close(),
  };
}

/** The authorization server as a client of it sees it: its token endpoint and how to authenticate. */
async function clientOf(spec: ExchangeSpec): Promise<oauth.Configuration> {
  const auth =
    spec.clientSecret !== undefined
      ? oauth.ClientSecretBasic(spec.clientSecret)
      : oauth.PrivateKeyJwt(await clientKeyOf(spec.clientKey as string));
  const config = new oauth.Configuration(
    { issuer: spec.issuer ?? spec.tokenEndpoint, token_endpoint: spec.tokenEndpoint },
    spec.clientId,
    undefined,
    auth,
  );
  config.timeout = spec.timeoutMs / 1000;
  config[oauth.customFetch] = cappedFetch;
  // A plain-http token endpoint is the operator's choice (`check` warns off loopback).
  if (spec.tokenEndpoint.startsWith('http:')) oauth.allowInsecureRequests(config);
  return config;
}

/**
 * `fetch` that reads at most {@link MAX_ANSWER_BYTES} of an answer (the timeout bounds the time):
 * a token endpoint streaming without end fails the exchange instead of filling the gateway's memory.
 */
async function cappedFetch(url: string, options: oauth.CustomFetchOptions): Promise<Response> {
  const answer = await fetch(url, { ...options, redirect: 'manual' } as RequestInit);
  const reader = answer.body?.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  if (reader !== undefined)
    for (let read = await reader.read(); !read.done; read = await reader.read()) {
      size += read.value.byteLength;
      if (size > MAX_ANSWER_BYTES) {
        await reader.cancel();
        throw new Error(`the token endpoint answered more than ${MAX_ANSWER_BYTES} bytes`);
      }
      chunks.push(read.value);
    }
  return new Response(size === 0 ? null : Buffer.concat(chunks), {
    status: answer.status,
    statusText: answer.statusText,
    headers: answer.headers,
  });
}

const CLIENT_KEY_ALGORITHMS = { ES256: 'ES256', EdDSA: 'EdDSA', RS256: 'RS256' } as const;

async function clientKeyOf(path: string): Promise<{ key: Awaited<ReturnType<typeof importPKCS8>> }> {
  const read = readPrivateKey(path, true);
  if (typeof read === 'string') throw new Error(`clientKey ${path} ${read}`);
  const pem = read.key.export({ type: 'pkcs8', format: 'pem' }) as string;
  return { key: await importPKCS8(pem, CLIENT_KEY_ALGORITHMS[read.alg]) };
}

/** Every `clientKey` that cannot authenticate, one line each (start, reload and `check` refuse them). */
export function clientKeyProblems(config: Config): string[] {
  const problems: string[] = [];
  config.routes.forEach((route, i) => {
    for (const target of upstreamTargets(route, i)) {
      if (target.identity?.mode !== 'tokenExchange' || target.identity.clientKey === undefined) continue;
      const read = readPrivateKey(target.identity.clientKey, true);
      if (typeof read === 'string')
        problems.push(
          `${target.field.replace(/\.upstream$/, '')}.upstreamIdentity.clientKey: ${target.identity.clientKey} ${read}`,
        );
    }
  });
  return problems;
}

/** RFC 6749 §5.2 `error` characters; anything else the server sent is not passed on. */
const ERROR_CODE = /^[\x20\x21\x23-\x5B\x5D-\x7E]{1,64}$/;

/** OAuth errors that are about the gateway as a client, not about the caller's token. */
const GATEWAY_ERRORS: ReadonlySet<string> = new Set(['invalid_client', 'unauthorized_client']);

/**
 * What an authorization server that answered with an OAuth error (a 4xx error body, or a 401
 * challenge) said: its `error` (one outside the RFC 6749 charset reads `invalid_request`), and
 * whether that leaves the exchange unavailable rather than refused — the server busy (429, 408)
 * or refusing the gateway itself as a client (the operator's fix, not the caller's). Undefined
 * when it did not answer usably (unreachable, timeout, 5xx, not an OAuth answer).
 */
function oauthErrorOf(
  err: unknown,
): { error: string; status: number; unavailable: boolean; gateway: boolean } | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { error, status } = err as { error?: unknown; status?: unknown };
  if (typeof status !== 'number' || status < 400 || status >= 500) return undefined;
  const code = typeof error === 'string' && ERROR_CODE.test(error) ? error : 'invalid_request';
  const gateway = GATEWAY_ERRORS.has(code);
  return { error: code, status, gateway, unavailable: gateway || status === 429 || status === 408 };
}

/** What the log says of a failed exchange: the error's kind and message, never its cause's request. */
function errorSummary(err: unknown): { name: string; message: string; code?: string } {
  if (!(err instanceof Error)) return { name: 'unknown', message: String(err) };
  const code = (err as { code?: unknown }).code;
  return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
}
