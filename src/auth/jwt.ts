import { hash as digestOf } from 'node:crypto';
import {
  createLocalJWKSet,
  createRemoteJWKSet,
  customFetch,
  decodeJwt,
  decodeProtectedHeader,
  errors,
  type FetchImplementation,
  type JWTPayload,
  type JWTVerifyGetKey,
  jwtVerify,
} from 'jose';
import type { Config } from '../config/schema.js';
import { isDelegationChain } from './delegation.js';
import type { Failed, JwtFailure } from './failures.js';
import type { Identity } from './identity.js';

type IssuerConfig = Config['identities']['jwt'][number];

/**
 * A refused token, or — `jwks_unavailable` — a token that could not be checked because its issuer's
 * JWKS could not be read: the identity provider's fault, not the caller's (503, not 401).
 */
export type JwtResult =
  | Identity
  | Failed<Exclude<JwtFailure, 'jwks_unavailable'>>
  | (Failed<'jwks_unavailable'> & {
      readonly issuer: string;
      /** When a JWKS fetch will next be attempted, in whole seconds (≥ 1). */
      readonly retryAfterSec: number;
    });

/** How a JWKS fetch failed: a bounded label for the metric and the log. */
export type JwksErrorKind = 'unreachable' | 'timeout' | 'status' | 'invalid';

/** Told about each JWKS fetch that failed (never a token: the fetch carries none). */
export interface JwksObserver {
  onJwksError(issuer: string, kind: JwksErrorKind, detail: { readonly status?: number }): void;
}

export interface JwtVerifier {
  /**
   * Verifies a bearer JWT for a route whose `resource` must be in `aud` (RFC 8707).
   * `certificateThumbprint` is the base64url SHA-256 of the client certificate on this connection,
   * for RFC 8705 certificate-bound tokens.
   */
  verify(token: string, audience: string, certificateThumbprint: string | undefined): Promise<JwtResult>;
}

interface CachedToken {
  readonly identity: Identity;
  readonly audience: string;
  readonly issuer: string;
  readonly kid: string | undefined;
  /** Epoch ms after which the entry is dead: `exp` plus the clock tolerance. */
  readonly until: number;
  readonly boundThumbprint: string | undefined;
}

interface IssuerState {
  readonly config: IssuerConfig;
  /** jose's resolver; a remote one says whether its key set is still within `jwksCacheMaxAgeSec`. */
  readonly keys: JWTVerifyGetKey & { readonly fresh?: boolean };
  /** The JWKS fetches of a remote issuer, with their failure backoff. */
  readonly fetcher: JwksFetcher | undefined;
}

const MAX_CACHED_TOKENS = 10_000;

/**
 * The token each JWT identity was verified from, for token exchange (RFC 8693 needs the subject
 * token) and nothing else. Kept beside the identity rather than on it, so that no code describing,
 * logging or auditing an identity can ever carry the token with it.
 */
const SUBJECT_TOKENS = new WeakMap<Identity, string>();

/** The JWT `identity` was verified from; undefined for an identity not made by a JWT verifier alone. */
export function subjectTokenOf(identity: Identity): string | undefined {
  return SUBJECT_TOKENS.get(identity);
}
/** jose's own default, written down: a hanging JWKS endpoint holds a verification this long. */
const JWKS_TIMEOUT_MS = 5_000;
/** After a failed JWKS fetch, no other is tried for this long (at most `jwksCooldownMs`). */
const JWKS_FAILURE_BACKOFF_MS = 5_000;
/** A JWKS larger than this is not a key set but a fault (or an attack on our memory). */
const MAX_JWKS_BYTES = 1_048_576;

/**
 * JWT verification with `jose.jwtVerify` (DESIGN.md step 4).
 *
 * Revocation bound: a remote JWKS is re-read once it is older than `jwksCacheMaxAgeSec`, so a key
 * the issuer removes stops verifying within that time. Tokens that verified are cached by the
 * SHA-256 of the token until `exp` — but an entry is only used while its issuer's key set is
 * within that same age, and is dropped when a refetched set no longer holds its `kid`: the cache
 * never stretches the bound. The certificate binding is checked on every request. A reload builds
 * a new verifier (server/router.ts), so no verified token outlives the policy that accepted it.
 *
 * IdP faults: a JWKS that cannot be read (unreachable, not 200, timeout, not a key set) is
 * `jwks_unavailable` — the caller's token was never judged — and further fetches wait out a
 * short backoff, so an outage does not turn each request into a request to the IdP.
 */
export function createJwtVerifier(
  issuers: readonly IssuerConfig[],
  observer: JwksObserver = { onJwksError: () => undefined },
): JwtVerifier {
  const cache = new Map<string, CachedToken>();
  const states = new Map<string, IssuerState>();

  for (const config of issuers) {
    if (config.jwksUri === undefined) {
      states.set(config.issuer, {
        config,
        keys: createLocalJWKSet({ keys: (config.keys ?? []) as never }),
        fetcher: undefined,
      });
      continue;
    }
    const fetcher = new JwksFetcher(
      config,
      (kids) => dropTokensWithoutKey(config.issuer, kids),
      (kind, detail) => observer.onJwksError(config.issuer, kind, detail),
    );
    const keys = createRemoteJWKSet(new URL(config.jwksUri), {
      cooldownDuration: config.jwksCooldownMs,
      cacheMaxAge: config.jwksCacheMaxAgeSec * 1000,
      timeoutDuration: JWKS_TIMEOUT_MS,
      [customFetch]: fetcher.fetch,
    });
    states.set(config.issuer, { config, keys, fetcher });
  }

  function dropTokensWithoutKey(issuer: string, kids: ReadonlySet<string>): void {
    for (const [hash, entry] of cache) {
      if (entry.issuer === issuer && (entry.kid === undefined || !kids.has(entry.kid))) cache.delete(hash);
    }
  }

  async function verify(token: string, audience: string, thumbprint: string | undefined): Promise<JwtResult> {
    const now = Date.now();
    const hash = digestOf('sha256', token, 'base64url');
    const cached = cache.get(hash);
    if (cached !== undefined && cached.audience === audience && now < cached.until) {
      // Only while the key set that vouched for it is within jwksCacheMaxAgeSec; past that the
      // token is verified again below, which re-reads the JWKS first (or fails as the IdP's fault).
      if (states.get(cached.issuer)?.keys.fresh !== false) {
        return bindingHolds(cached.boundThumbprint, thumbprint)
          ? cached.identity
          : { failure: 'certificate_binding' };
      }
    } else if (cached !== undefined && now >= cached.until) {
      cache.delete(hash);
    }

    let unverified: JWTPayload;
    let kid: string | undefined;
    try {
      unverified = decodeJwt(token);
      kid = decodeProtectedHeader(token).kid;
    } catch (err) {
      if (err instanceof errors.JOSEError) return { failure: 'malformed' };
      throw err;
    }
    const state = typeof unverified.iss === 'string' ? states.get(unverified.iss) : undefined;
    if (state === undefined) return { failure: 'unknown_issuer' };
    const { config } = state;

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, state.keys, {
        issuer: config.issuer,
        audience,
        algorithms: config.algorithms,
        clockTolerance: config.clockToleranceSec,
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      const failure = joseFailure(err);
      if (failure !== 'jwks_unavailable') return { failure };
      return {
        failure,
        issuer: config.issuer,
        retryAfterSec: state.fetcher?.retryAfterSec() ?? 1,
      };
    }
    // A token "issued" in the future would outlive any lifetime bound: refuse it outright.
    if (typeof payload.iat === 'number' && payload.iat > now / 1000 + config.clockToleranceSec) {
      return { failure: 'claims' };
    }
    if (config.maxTokenLifetimeSec !== undefined) {
      const { iat, exp } = payload;
      if (typeof iat !== 'number' || typeof exp !== 'number' || exp - iat > config.maxTokenLifetimeSec) {
        return { failure: 'lifetime' };
      }
    }
    const subject = payload[config.subjectClaim];
    if (typeof subject !== 'string' || subject === '') return { failure: 'no_subject' };
    const bound = boundThumbprintOf(payload);
    if (bound === null) return { failure: 'claims' };
    if (!isDelegationChain(payload.act)) return { failure: 'claims' };

    const identity: Identity = Object.freeze({
      key: `jwt:${config.issuer}|${subject}`,
      subject,
      methods: Object.freeze(['jwt'] as const),
      scopes: scopesOf(payload, config.scopeClaim),
      issuer: config.issuer,
      claims: Object.freeze({ ...payload }),
      expiresAt: (payload.exp as number) * 1000 + config.clockToleranceSec * 1000,
    });
    SUBJECT_TOKENS.set(identity, token);
    if (cache.size >= MAX_CACHED_TOKENS) {
      // Bounded: drop the oldest entry (Map keeps insertion order).
      const oldest = cache.keys().next().value;
      if (oldest !== undefined) cache.delete(oldest);
    }
    cache.set(hash, {
      identity,
      audience,
      issuer: config.issuer,
      kid,
      until: (payload.exp as number) * 1000 + config.clockToleranceSec * 1000,
      boundThumbprint: bound,
    });
    return bindingHolds(bound, thumbprint) ? identity : { failure: 'certificate_binding' };
  }

  return { verify };
}

/** RFC 8705: a token with `cnf["x5t#S256"]` is only good on a connection with that certificate. */
function bindingHolds(bound: string | undefined, thumbprint: string | undefined): boolean {
  return bound === undefined || bound === thumbprint;
}

/** The certificate thumbprint a token is bound to; `null` when `cnf` is malformed. */
function boundThumbprintOf(payload: JWTPayload): string | undefined | null {
  const cnf = payload.cnf;
  if (cnf === undefined) return undefined;
  if (typeof cnf !== 'object' || cnf === null) return null;
  const value = (cnf as Record<string, unknown>)['x5t#S256'];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : null;
}

/** Scopes from `scopeClaim` if set, else `scope` (space separated), else `scp` (array or string). */
function scopesOf(payload: JWTPayload, scopeClaim: string | undefined): ReadonlySet<string> {
  const claims = scopeClaim === undefined ? ['scope', 'scp'] : [scopeClaim];
  for (const claim of claims) {
    const value = payload[claim];
    if (typeof value === 'string') return new Set(value.split(' ').filter(Boolean));
    if (Array.isArray(value)) return new Set(value.filter((s): s is string => typeof s === 'string'));
  }
  return new Set();
}

/**
 * Translates jose's errors where they enter, by class (never by message text); anything else is a
 * bug and is rethrown. Whether the IdP failed is decided by where the error came from: our own
 * fetch ({@link JwksUnavailable}), jose's timeout, or a key set jose could not use.
 */
function joseFailure(err: unknown): JwtFailure {
  if (err instanceof JwksUnavailable) return 'jwks_unavailable';
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return 'jwks_unavailable';
  if (err instanceof errors.JWTExpired) return 'expired';
  if (err instanceof errors.JWTClaimValidationFailed) return 'claims';
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys)
    return 'unknown_key';
  if (err instanceof errors.JOSEError) return 'bad_signature';
  throw err;
}

/** A JWKS fetch that failed: the identity provider's fault, raised by {@link JwksFetcher}. */
export class JwksUnavailable extends Error {
  override readonly name = 'JwksUnavailable';
  constructor(
    readonly kind: JwksErrorKind | 'backoff',
    options?: { cause?: unknown },
  ) {
    super(`JWKS unavailable (${kind})`, options);
  }
}

/**
 * The JWKS fetch jose performs, owned by us so that an IdP fault is told apart from a bad token by
 * type: every failure becomes a {@link JwksUnavailable}; only a 200 answer holding a JSON key set
 * reaches jose. A set that arrives reports its key ids, so cached tokens whose key left stop
 * working. After a failure, fetches fail at once until the backoff has passed.
 */
class JwksFetcher {
  private retryAt = 0;
  private readonly backoffMs: number;

  constructor(
    config: IssuerConfig,
    private readonly onKeys: (kids: ReadonlySet<string>) => void,
    private readonly onError: (kind: JwksErrorKind, detail: { readonly status?: number }) => void,
  ) {
    this.backoffMs = Math.min(config.jwksCooldownMs, JWKS_FAILURE_BACKOFF_MS);
  }

  /** Whole seconds until the next fetch may be tried, at least 1 (for `Retry-After`). */
  retryAfterSec(): number {
    return Math.max(1, Math.ceil((this.retryAt - Date.now()) / 1000));
  }

  readonly fetch: FetchImplementation = async (url, options) => {
    if (Date.now() < this.retryAt) throw new JwksUnavailable('backoff');
    let text: string | undefined;
    try {
      const response = await fetch(url, options);
      if (response.status !== 200) {
        await response.body?.cancel();
        throw this.fail('status', { status: response.status });
      }
      text = await readLimited(response, MAX_JWKS_BYTES);
    } catch (err) {
      if (err instanceof JwksUnavailable) throw err;
      // fetch reports a network failure as a TypeError and an abort as the signal's reason.
      if (options.signal.aborted) throw this.fail('timeout', {}, err);
      if (err instanceof TypeError) throw this.fail('unreachable', {}, err);
      throw err;
    }
    if (text === undefined) throw this.fail('invalid', {});
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      if (err instanceof SyntaxError) throw this.fail('invalid', {}, err);
      throw err;
    }
    const keys = (body as { keys?: unknown } | null)?.keys;
    if (
      !Array.isArray(keys) ||
      !keys.every((k) => typeof k === 'object' && k !== null && !Array.isArray(k))
    ) {
      throw this.fail('invalid', {});
    }
    this.retryAt = 0;
    this.onKeys(
      new Set(
        keys.map((k) => (k as { kid?: unknown }).kid).filter((k): k is string => typeof k === 'string'),
      ),
    );
    return new Response(text, { status: 200, headers: { 'content-type': 'application/json' } });
  };

  private fail(kind: JwksErrorKind, detail: { readonly status?: number }, cause?: unknown): JwksUnavailable {
    this.retryAt = Date.now() + this.backoffMs;
    this.onError(kind, detail);
    return new JwksUnavailable(kind, { cause });
  }
}

/** The body as text; `undefined` beyond `limit` bytes; a `TypeError` if the stream breaks. */
async function readLimited(response: Response, limit: number): Promise<string | undefined> {
  if (response.body === null) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.byteLength;
    // Leaving the loop cancels the stream (the iterator's return()).
    if (size > limit) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}
