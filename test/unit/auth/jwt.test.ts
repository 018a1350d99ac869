/**
 * The JWT verifier on its own, against a real JWKS endpoint: the identity and scopes it derives
 * from claims, the verified-token cache, and how the cache learns that a key left the JWKS.
 * Only `Date` is faked (to make the key set stale without waiting `jwksCacheMaxAgeSec`); sockets,
 * timers and crypto are real.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { createJwtVerifier, type JwksErrorKind, type JwtResult } from '../../../src/auth/jwt.js';
import { configSchema } from '../../../src/config/schema.js';
import {
  createSigningKey,
  type JwksServer,
  nowSec,
  type SigningKey,
  signJwt,
  startJwksServer,
} from '../../support/jwks.js';

const ISSUER = 'https://idp.example.com/';
const AUDIENCE = 'https://mcp.example.com/files/mcp';
/** `jwksCacheMaxAgeSec`'s default: a key set older than this is read again. */
const JWKS_MAX_AGE_MS = 300_000;

/** Issuer entries exactly as the policy loader produces them (defaults applied). */
function issuers(...entries: Record<string, unknown>[]) {
  return configSchema.parse({
    identities: { jwt: entries },
    routes: [
      {
        route: '/files/mcp',
        resource: AUDIENCE,
        upstream: 'http://127.0.0.1:9/mcp',
        authentication: { methods: ['jwt'] },
      },
    ],
  }).identities.jwt;
}

function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = nowSec();
  return { iss: ISSUER, aud: AUDIENCE, sub: 'alice', iat: now, exp: now + 3600, ...extra };
}

function scopesOf(result: JwtResult): string[] {
  if ('failure' in result) throw new Error(`refused: ${result.failure}`);
  return [...result.scopes].sort();
}

let rsa: SigningKey;
let ec: SigningKey;
beforeAll(async () => {
  [rsa, ec] = await Promise.all([createSigningKey('RS256'), createSigningKey('ES256')]);
});
afterEach(() => {
  vi.useRealTimers();
});

describe('identity and scopes from claims', () => {
  const local = () => createJwtVerifier(issuers({ issuer: ISSUER, keys: [rsa.publicJwk, ec.publicJwk] }));

  it('builds the identity key from issuer and subject', async () => {
    const result = await local().verify(await signJwt(ec, claims()), AUDIENCE, undefined);
    expect(result).toMatchObject({
      key: `jwt:${ISSUER}|alice`,
      subject: 'alice',
      methods: ['jwt'],
      issuer: ISSUER,
      claims: { sub: 'alice', aud: AUDIENCE },
    });
  });

  it('reads space-separated scopes from `scope`', async () => {
    const token = await signJwt(rsa, claims({ scope: ' files:read  files:write ' }));
    expect(scopesOf(await local().verify(token, AUDIENCE, undefined))).toEqual(['files:read', 'files:write']);
  });

  it('reads an array of scopes from `scp` when there is no `scope`', async () => {
    const token = await signJwt(rsa, claims({ scp: ['files:read', 7, 'files:admin'] }));
    expect(scopesOf(await local().verify(token, AUDIENCE, undefined))).toEqual(['files:admin', 'files:read']);
  });

  it('prefers `scope` over `scp`', async () => {
    const token = await signJwt(rsa, claims({ scope: 'a', scp: ['b'] }));
    expect(scopesOf(await local().verify(token, AUDIENCE, undefined))).toEqual(['a']);
  });

  it('reads only the configured scopeClaim when one is set', async () => {
    const verifier = createJwtVerifier(
      issuers({ issuer: ISSUER, keys: [rsa.publicJwk], scopeClaim: 'perms' }),
    );
    const withClaim = await signJwt(rsa, claims({ perms: ['files:read'], scope: 'files:admin' }));
    expect(scopesOf(await verifier.verify(withClaim, AUDIENCE, undefined))).toEqual(['files:read']);
    const without = await signJwt(rsa, claims({ scope: 'files:admin', scp: ['files:admin'] }));
    expect(scopesOf(await verifier.verify(without, AUDIENCE, undefined))).toEqual([]);
  });

  it('grants no scopes to a token without any scope claim', async () => {
    expect(scopesOf(await local().verify(await signJwt(rsa, claims()), AUDIENCE, undefined))).toEqual([]);
  });

  it('takes the subject from subjectClaim, and refuses a token without one', async () => {
    const verifier = createJwtVerifier(
      issuers({ issuer: ISSUER, keys: [rsa.publicJwk], subjectClaim: 'client_id' }),
    );
    const ok = await verifier.verify(
      await signJwt(rsa, claims({ client_id: 'ci-bot' })),
      AUDIENCE,
      undefined,
    );
    expect(ok).toMatchObject({ key: `jwt:${ISSUER}|ci-bot`, subject: 'ci-bot' });
    expect(await verifier.verify(await signJwt(rsa, claims()), AUDIENCE, undefined)).toEqual({
      failure: 'no_subject',
    });
    const noSub = claims();
    delete noSub.sub;
    expect(await local().verify(await signJwt(rsa, noSub), AUDIENCE, undefined)).toEqual({
      failure: 'no_subject',
    });
  });

  it('refuses a token without `exp`', async () => {
    const noExp = claims();
    delete noExp.exp;
    expect(await local().verify(await signJwt(rsa, noExp), AUDIENCE, undefined)).toEqual({
      failure: 'claims',
    });
  });

  it('holds a certificate-bound token (RFC 8705) to its certificate, even from the cache', async () => {
    const verifier = local();
    const token = await signJwt(ec, claims({ cnf: { 'x5t#S256': 'thumb-A' } }));
    expect(await verifier.verify(token, AUDIENCE, 'thumb-A')).toMatchObject({ subject: 'alice' });
    expect(await verifier.verify(token, AUDIENCE, 'thumb-B')).toEqual({ failure: 'certificate_binding' });
    expect(await verifier.verify(token, AUDIENCE, undefined)).toEqual({ failure: 'certificate_binding' });
    const malformed = await signJwt(ec, claims({ cnf: { 'x5t#S256': 42 } }));
    expect(await verifier.verify(malformed, AUDIENCE, 'thumb-A')).toEqual({ failure: 'claims' });
  });
});

describe('the verified-token cache', () => {
  let jwks: JwksServer;
  beforeAll(async () => {
    jwks = await startJwksServer([rsa, ec]);
  });
  afterAll(async () => {
    await jwks.close();
  });
  afterEach(() => {
    jwks.setAvailable(true);
    for (const key of [rsa, ec]) if (!jwks.kids().includes(key.kid)) jwks.add(key);
  });
  const remote = (extra: Record<string, unknown> = {}) =>
    createJwtVerifier(issuers({ issuer: ISSUER, jwksUri: jwks.url, clockToleranceSec: 5, ...extra }));

  it('past jwksCacheMaxAgeSec re-reads the JWKS before serving a cached token: while it is down the token is jwks_unavailable, then served again', async () => {
    const start = Date.now();
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(start);
    const verifier = remote({ jwksCooldownMs: 0 });
    const cachedToken = await signJwt(rsa, claims({ exp: nowSec() + 3600 }));
    expect(await verifier.verify(cachedToken, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });

    // The identity provider goes down. Within the age bound nothing is fetched and the token is served…
    jwks.setAvailable(false);
    vi.setSystemTime(start + JWKS_MAX_AGE_MS - 1000);
    const fetched = jwks.fetches;
    expect(await verifier.verify(cachedToken, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });
    expect(jwks.fetches).toBe(fetched);
    // …past it, the set must be read again first: the IdP's fault, not the token's.
    vi.setSystemTime(start + JWKS_MAX_AGE_MS + 1000);
    expect(await verifier.verify(cachedToken, AUDIENCE, undefined)).toMatchObject({
      failure: 'jwks_unavailable',
      issuer: ISSUER,
    });
    expect(jwks.fetches).toBe(fetched + 1);

    jwks.setAvailable(true);
    expect(await verifier.verify(cachedToken, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });
  });

  it('answers a cached token without fetching the JWKS again', async () => {
    const verifier = remote();
    const token = await signJwt(ec, claims());
    await verifier.verify(token, AUDIENCE, undefined);
    const fetched = jwks.fetches;
    // Withdraw the key without the verifier knowing: only a cached answer can still accept the token.
    jwks.remove(ec.kid);
    jwks.setAvailable(false);
    for (let i = 0; i < 5; i++) {
      expect(await verifier.verify(token, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });
    }
    expect(jwks.fetches).toBe(fetched);
  });

  it('keys the cache by audience: a cached token is not good for another resource', async () => {
    const verifier = remote();
    const token = await signJwt(ec, claims());
    expect(await verifier.verify(token, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });
    expect(await verifier.verify(token, 'https://mcp.example.com/other/mcp', undefined)).toEqual({
      failure: 'claims',
    });
    expect(await verifier.verify(token, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });
  });

  it.each([60, 300])(
    'stops a token whose key was removed within jwksCacheMaxAgeSec (%i s), cached or not',
    async (maxAgeSec) => {
      const start = Date.now();
      vi.useFakeTimers({ toFake: ['Date'] });
      vi.setSystemTime(start);
      const verifier = remote({ jwksCacheMaxAgeSec: maxAgeSec });
      const cached = await signJwt(rsa, claims({ exp: nowSec() + 3600 }));
      const unseen = await signJwt(rsa, claims({ exp: nowSec() + 3600, jti: 'unseen' }));
      expect(await verifier.verify(cached, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });

      // Revocation at the identity provider: the RSA key is withdrawn.
      jwks.remove(rsa.kid);
      vi.setSystemTime(start + maxAgeSec * 1000 + 1);
      expect(await verifier.verify(cached, AUDIENCE, undefined)).toEqual({ failure: 'unknown_key' });
      expect(await verifier.verify(unseen, AUDIENCE, undefined)).toEqual({ failure: 'unknown_key' });
      // Tokens signed by a key still published are unaffected.
      expect(await verifier.verify(await signJwt(ec, claims()), AUDIENCE, undefined)).toMatchObject({
        subject: 'alice',
      });
    },
  );

  it('drops a cached token when a refetch for an unknown kid shows its key is gone', async () => {
    const verifier = remote({ jwksCooldownMs: 0 });
    const old = await signJwt(rsa, claims());
    expect(await verifier.verify(old, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });
    const next = await createSigningKey('ES256');
    jwks.add(next);
    jwks.remove(rsa.kid);
    // Still cached: nothing has told the verifier about the rotation yet.
    expect(await verifier.verify(old, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });
    // A token from the new key makes it refetch; the old key's tokens go with the old key.
    expect(await verifier.verify(await signJwt(next, claims()), AUDIENCE, undefined)).toMatchObject({
      subject: 'alice',
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await verifier.verify(old, AUDIENCE, undefined)).toEqual({ failure: 'unknown_key' });
    jwks.remove(next.kid);
  });

  it('a verifier built for a reloaded policy holds none of the tokens the running one cached', async () => {
    const start = Date.now();
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(start);
    const verifier = remote();
    const token = await signJwt(ec, claims({ iat: nowSec(), exp: nowSec() + 3600 }));
    await verifier.verify(token, AUDIENCE, undefined);
    // A minute earlier the token's `iat` is in the future: only the cache still answers it.
    vi.setSystemTime(start - 60_000);
    expect(await verifier.verify(token, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });
    // A reload builds a new router and with it a new verifier (server/router.ts): the cache is
    // per verifier, so nothing accepted under the old policy is answered from memory.
    expect(await remote().verify(token, AUDIENCE, undefined)).toEqual({ failure: 'claims' });
    // The running verifier still answers from its cache: the token was not re-judged by it.
    expect(await verifier.verify(token, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });
  });
});

describe('an unreachable identity provider', () => {
  /** A verifier whose JWKS failures are recorded as the gateway's observer hears them. */
  function observed(jwksUri: string, extra: Record<string, unknown> = {}) {
    const seen: { issuer: string; kind: JwksErrorKind; status?: number }[] = [];
    const verifier = createJwtVerifier(issuers({ issuer: ISSUER, jwksUri, ...extra }), {
      onJwksError: (issuer, kind, detail) => seen.push({ issuer, kind, ...detail }),
    });
    return { verifier, seen };
  }

  it('reports a JWKS endpoint that is down as jwks_unavailable (unreachable), with a Retry-After', async () => {
    const jwks = await startJwksServer([rsa]);
    const url = jwks.url;
    await jwks.close();
    const { verifier, seen } = observed(url);
    expect(await verifier.verify(await signJwt(rsa, claims()), AUDIENCE, undefined)).toEqual({
      failure: 'jwks_unavailable',
      issuer: ISSUER,
      retryAfterSec: 5,
    });
    expect(seen).toEqual([{ issuer: ISSUER, kind: 'unreachable' }]);
  });

  it.each([
    [503, 'status'],
    [500, 'status'],
    [302, 'status'],
    ['invalid-json', 'invalid'],
    ['not-a-key-set', 'invalid'],
  ] as const)(
    'reports a JWKS endpoint answering %s as jwks_unavailable (%s), not as a bad token',
    async (fault, kind) => {
      const jwks = await startJwksServer([rsa]);
      try {
        jwks.setFault(fault);
        const { verifier, seen } = observed(jwks.url);
        expect(await verifier.verify(await signJwt(rsa, claims()), AUDIENCE, undefined)).toMatchObject({
          failure: 'jwks_unavailable',
        });
        expect(seen).toEqual([
          { issuer: ISSUER, kind, ...(typeof fault === 'number' ? { status: fault } : {}) },
        ]);
      } finally {
        await jwks.close();
      }
    },
  );

  it('after a failed fetch, does not ask the IdP again until the backoff has passed', async () => {
    const jwks = await startJwksServer([rsa]);
    try {
      jwks.setAvailable(false);
      const { verifier, seen } = observed(jwks.url, { jwksCooldownMs: 1000 });
      const token = await signJwt(rsa, claims());
      expect(await verifier.verify(token, AUDIENCE, undefined)).toMatchObject({
        failure: 'jwks_unavailable',
      });
      jwks.setAvailable(true);
      for (let i = 0; i < 20; i++) {
        expect(await verifier.verify(token, AUDIENCE, undefined)).toEqual({
          failure: 'jwks_unavailable',
          issuer: ISSUER,
          retryAfterSec: 1,
        });
      }
      expect(jwks.fetches, 'one fetch for 21 verifications').toBe(1);
      expect(seen).toHaveLength(1);
      await new Promise((resolve) => setTimeout(resolve, 1100));
      expect(await verifier.verify(token, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });
    } finally {
      await jwks.close();
    }
  });

  it('still judges tokens that need no fetch while the IdP is down: bad ones are never jwks_unavailable', async () => {
    const jwks = await startJwksServer([rsa]);
    try {
      const { verifier } = observed(jwks.url);
      const good = await signJwt(rsa, claims());
      expect(await verifier.verify(good, AUDIENCE, undefined)).toMatchObject({ subject: 'alice' });
      jwks.setAvailable(false);
      const [header, payload] = good.split('.') as [string, string, string];
      const forged = await signJwt(await createSigningKey('RS256', rsa.kid), claims({ sub: 'mallory' }));
      expect(await verifier.verify(forged, AUDIENCE, undefined)).toEqual({ failure: 'bad_signature' });
      expect(await verifier.verify(`${header}.${payload}.AAAA`, AUDIENCE, undefined)).toEqual({
        failure: 'bad_signature',
      });
      expect(await verifier.verify('not.a.jwt', AUDIENCE, undefined)).toEqual({ failure: 'malformed' });
      const now = nowSec();
      expect(
        await verifier.verify(
          await signJwt(rsa, claims({ iat: now - 600, exp: now - 60 })),
          AUDIENCE,
          undefined,
        ),
      ).toEqual({ failure: 'expired' });
      expect(jwks.fetches).toBe(1);
    } finally {
      await jwks.close();
    }
  });
});
