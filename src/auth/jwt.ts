import { createHash } from 'node:crypto';
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
import type { Identity } from './identity.js';

type IssuerConfig = Config['identities']['jwt'][number];

/** Why a token was refused: a stable label for logs and metrics, never the token. */
export type JwtFailure =
  | 'malformed'
  | 'unknown_issuer'
  | 'bad_signature'
  | 'expired'
  | 'claims'
  | 'lifetime'
  | 'no_subject'
  | 'unknown_key'
  | 'certificate_binding'
  | 'jwks_unavailable';

export type JwtResult = Identity | { readonly failure: JwtFailure };

export interface JwtVerifier {
  /**
   * Verifies a bearer JWT for a route whose `resource` must be in `aud` (RFC 8707).
   * `certificateThumbprint` is the base64url SHA-256 of the client certificate on this connection,
   * for RFC 8705 certificate-bound tokens.
   */
  verify(token: string, audience: string, certificateThumbprint: string | undefined): Promise<JwtResult>;
  /** Forgets every verified token (policy reload). */
  flush(): void;
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
  readonly keys: JWTVerifyGetKey & {
    readonly fresh?: boolean;
    readonly reloading?: boolean;
    reload?: () => Promise<void>;
  };
}

const MAX_CACHED_TOKENS = 10_000;

/**
 * JWT verification with `jose.jwtVerify` (DESIGN.md step 4). Tokens that verified are cached by
 * the SHA-256 of the token until `exp`, so a client reusing its token costs a hash and a map
 * lookup; the certificate binding is still checked on every request. An entry is dropped when its
 * key leaves the issuer's JWKS (seen when the JWKS is refetched, which a stale set triggers in the
 * background), and all are dropped on reload.
 */
export function createJwtVerifier(issuers: readonly IssuerConfig[]): JwtVerifier {
  const cache = new Map<string, CachedToken>();
  const states = new Map<string, IssuerState>();

  for (const config of issuers) {
    const keys = config.jwksUri
      ? createRemoteJWKSet(new URL(config.jwksUri), {
          cooldownDuration: config.jwksCooldownMs,
          [customFetch]: watchingFetch((kids) => dropTokensWithoutKey(config.issuer, kids)),
        })
      : createLocalJWKSet({ keys: (config.keys ?? []) as never });
    states.set(config.issuer, { config, keys });
  }

  function dropTokensWithoutKey(issuer: string, kids: ReadonlySet<string>): void {
    for (const [hash, entry] of cache) {
      if (entry.issuer === issuer && (entry.kid === undefined || !kids.has(entry.kid))) cache.delete(hash);
    }
  }

  async function verify(token: string, audience: string, thumbprint: string | undefined): Promise<JwtResult> {
    const now = Date.now();
    const hash = createHash('sha256').update(token).digest('base64url');
    const cached = cache.get(hash);
    if (cached !== undefined && cached.audience === audience) {
      if (now < cached.until) {
        const state = states.get(cached.issuer);
        // A stale key set is refetched in the background; the fetch hook drops tokens whose key left.
        if (state?.keys.fresh === false && !state.keys.reloading) {
          // Best effort: a failed refresh leaves the old set, and the next uncached token reports it.
          state.keys.reload?.().catch(() => undefined);
        }
        return bindingHolds(cached.boundThumbprint, thumbprint)
          ? cached.identity
          : { failure: 'certificate_binding' };
      }
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
      return { failure: joseFailure(err) };
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

    const identity: Identity = Object.freeze({
      key: `jwt:${config.issuer}|${subject}`,
      subject,
      methods: Object.freeze(['jwt'] as const),
      scopes: scopesOf(payload, config.scopeClaim),
      issuer: config.issuer,
      claims: Object.freeze({ ...payload }),
      expiresAt: (payload.exp as number) * 1000 + config.clockToleranceSec * 1000,
    });
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

  return { verify, flush: () => cache.clear() };
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

/** Translates jose's errors where they enter; anything else is a bug and is rethrown. */
function joseFailure(err: unknown): JwtFailure {
  if (err instanceof errors.JWTExpired) return 'expired';
  if (err instanceof errors.JWTClaimValidationFailed) return 'claims';
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWKSMultipleMatchingKeys)
    return 'unknown_key';
  if (err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid) return 'jwks_unavailable';
  // jose raises its generic error only around fetching the JWKS (a non-200 answer, a body that is
  // not JSON): the identity provider is failing, not the client.
  if (err instanceof errors.JOSEError && err.code === 'ERR_JOSE_GENERIC') return 'jwks_unavailable';
  if (err instanceof errors.JOSEError) return 'bad_signature';
  // A JWKS endpoint that cannot be reached surfaces as undici's fetch TypeError.
  if (err instanceof TypeError && err.message === 'fetch failed') return 'jwks_unavailable';
  throw err;
}

/**
 * The JWKS fetch jose performs, observed: each JWKS fetched successfully reports its key ids, so
 * cached tokens signed by a key that was removed stop working.
 */
function watchingFetch(onKeys: (kids: ReadonlySet<string>) => void): FetchImplementation {
  return async (url, options) => {
    const response = await fetch(url, options);
    if (response.ok) {
      response
        .clone()
        .json()
        .then(
          (body: unknown) => {
            const keys = (body as { keys?: unknown } | null)?.keys;
            if (!Array.isArray(keys)) return;
            onKeys(
              new Set(
                keys
                  .map((k) => (k as { kid?: unknown }).kid)
                  .filter((k): k is string => typeof k === 'string'),
              ),
            );
          },
          () => undefined, // jose reports a malformed JWKS itself
        );
    }
    return response;
  };
}
