import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Identity } from '../../auth/identity.js';
import type { GatewayIdentityConfig } from '../../config/schema.js';
import { jwksDocument, loadSigningKeys, type SigningKey } from './signing-keys.js';

/**
 * The gateway's signed statements of who is calling (`upstreamIdentity: { mode: assertion }`),
 * DESIGN.md "Identity to the upstream". One assertion serves every call of the same identity to
 * the same audience with the same scopes until shortly before it expires: signing is never on the
 * hot path, and `jti` names the assertion, not the call.
 */
export interface Assertions {
  /** The assertion for these claims: at once when one is cached, else once it is signed. */
  token(identity: Identity, audience: string, scope: string): string | Promise<string>;
  /** The JWKS document of every configured key (`/.well-known/jwks.json`). */
  readonly jwks: string;
}

/** Cached assertions kept at most: beyond it the oldest is dropped (a burst of one-off callers). */
const MAX_CACHED = 10_000;

interface Cached {
  /** The signed assertion, once signed; `pending` until then. */
  token?: string;
  pending?: Promise<string> | undefined;
  /** Epoch ms of `exp`, and after which it is no longer handed out (re-signed instead). */
  readonly expMs: number;
  readonly reuseUntilMs: number;
}

export interface AssertionOptions {
  /** The clock (epoch ms); tests move it. */
  readonly now?: () => number;
}

/** Loads `gatewayIdentity`'s keys and returns its assertions; throws naming a key that does not load. */
export async function createAssertions(
  config: GatewayIdentityConfig,
  options: AssertionOptions = {},
): Promise<Assertions> {
  return assertionsOf(config, await loadSigningKeys(config.signingKeys), options);
}

export function assertionsOf(
  config: GatewayIdentityConfig,
  keys: readonly SigningKey[],
  { now = Date.now }: AssertionOptions = {},
): Assertions {
  const signer = keys[0] as SigningKey;
  const lifetimeMs = config.assertionLifetimeSec * 1000;
  // An upstream never receives one about to expire.
  const marginMs = Math.min(60_000, lifetimeMs / 2);
  const cache = new Map<string, Cached>();

  const sign = async (identity: Identity, audience: string, scope: string, iatMs: number, expMs: number) =>
    new SignJWT({
      scope,
      act: actor(config.issuer, identity),
      jti: randomUUID(),
    })
      .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: 'JWT' })
      .setIssuer(config.issuer)
      .setSubject(identity.key)
      .setAudience(audience)
      .setIssuedAt(Math.floor(iatMs / 1000))
      .setExpirationTime(Math.floor(expMs / 1000))
      .sign(signer.privateKey);

  return {
    jwks: jwksDocument(keys),
    token(identity, audience, scope) {
      // Everything the assertion says of the caller is in the key: the same subject acting
      // through another chain of actors, or by another method, gets an assertion of its own.
      const key = `${claimsKeyOf(identity)}${JSON.stringify([audience, scope])}`;
      const at = now();
      const cached = cache.get(key);
      const credentialEnd = credentialEndOf(identity);
      // Never vouched for past the caller's own credential: a later token of the same subject that
      // expires sooner gets an assertion of its own.
      if (cached !== undefined && at < cached.reuseUntilMs && cached.expMs <= credentialEnd)
        return cached.token ?? (cached.pending as Promise<string>);
      // Whole seconds: `exp` is never later than the lifetime or the credential allow.
      const expMs = Math.floor(Math.min(at + lifetimeMs, credentialEnd) / 1000) * 1000;
      // Re-signed with some life left (half of it when the credential's expiry cut it short).
      const entry: Cached = { expMs, reuseUntilMs: expMs - Math.min(marginMs, (expMs - at) / 2) };
      const pending = sign(identity, audience, scope, at, expMs).then(
        (token) => {
          entry.token = token;
          entry.pending = undefined;
          return token;
        },
        (err: unknown) => {
          if (cache.get(key) === entry) cache.delete(key);
          throw err;
        },
      );
      entry.pending = pending;
      cache.delete(key);
      if (cache.size >= MAX_CACHED) cache.delete(cache.keys().next().value as string);
      cache.set(key, entry);
      return pending;
    },
  };
}

const claimsKeys = new WeakMap<Identity, string>();

/** What an assertion says of `identity` (its `sub` and `act`), as an unambiguous cache key part. */
function claimsKeyOf(identity: Identity): string {
  let key = claimsKeys.get(identity);
  if (key === undefined) {
    key = JSON.stringify([
      identity.key,
      identity.issuer ?? null,
      identity.methods,
      identity.claims?.act ?? null,
    ]);
    claimsKeys.set(identity, key);
  }
  return key;
}

/**
 * When the caller's credential stops: a token's own `exp` (not the clock tolerance the gateway
 * allows when checking it), an API key's `expires`; never for a credential without an end.
 */
function credentialEndOf(identity: Identity): number {
  const exp = identity.claims?.exp;
  return Math.min(
    typeof exp === 'number' ? exp * 1000 : Number.POSITIVE_INFINITY,
    identity.expiresAt ?? Number.POSITIVE_INFINITY,
  );
}

/**
 * The `act` claim (RFC 8693 §4.1): the gateway is the party acting for the subject. It says how
 * the caller authenticated (`amr`), which issuer vouched for a token caller (`caller_iss`), and
 * carries the caller's own delegation chain (its token's `act`) nested beneath, as prior actors.
 */
function actor(issuer: string, identity: Identity): Record<string, unknown> {
  const prior = identity.claims?.act;
  return {
    sub: issuer,
    amr: [...identity.methods],
    ...(identity.issuer !== undefined ? { caller_iss: identity.issuer } : {}),
    ...(prior !== null && typeof prior === 'object' && !Array.isArray(prior) ? { act: prior } : {}),
  };
}
