import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../../src/auth/identity.js';
import { assertionsOf } from '../../../../src/upstream/identity/assertions.js';
import { callerScopes } from '../../../../src/upstream/identity/bearer.js';
import { loadSigningKeys, signingKeyProblems } from '../../../../src/upstream/identity/signing-keys.js';
import { configProblems } from '../../../support/config.js';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-keys-'));
function keyFile(name: string, pem: string | Buffer): string {
  const path = join(dir, name);
  writeFileSync(path, pem);
  return path;
}
const ec = keyFile(
  'ec.pem',
  generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
);
const ed = keyFile(
  'ed.pem',
  generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }),
);
const ISSUER = 'https://gw.test';
const config = (signingKeys: string[]) => ({ issuer: ISSUER, signingKeys, assertionLifetimeSec: 300 });

const alice: Identity = {
  key: 'apiKey:alice',
  subject: 'alice',
  methods: ['apiKey'],
  scopes: new Set(['a', 'b']),
};

describe('assertions', () => {
  it('signs with the first key, publishes every key and verifies with a stock library', async () => {
    const keys = await loadSigningKeys([ed, ec]);
    const assertions = assertionsOf(config([ed, ec]), keys);
    const token = await assertions.token(alice, 'https://up.test', 'a b');
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'EdDSA', kid: keys[0]?.kid, typ: 'JWT' });
    const jwks = JSON.parse(assertions.jwks) as { keys: Record<string, unknown>[] };
    expect(jwks.keys.map((k) => k.alg)).toEqual(['EdDSA', 'ES256']);
    for (const key of jwks.keys) expect(key).not.toHaveProperty('d');
    const { payload } = await jwtVerify(token, createLocalJWKSet(jwks as never), {
      issuer: ISSUER,
      audience: 'https://up.test',
    });
    expect(payload).toMatchObject({
      sub: 'apiKey:alice',
      scope: 'a b',
      act: { sub: ISSUER, amr: ['apiKey'] },
    });
    expect((payload.exp as number) - (payload.iat as number)).toBe(300);
  });

  it('is cached per identity, audience and scope set until a minute before it expires', async () => {
    let now = 1_800_000_000_000;
    const assertions = assertionsOf(config([ec]), await loadSigningKeys([ec]), { now: () => now });
    const first = await assertions.token(alice, 'aud', 'a b');
    // Cached: handed out at once, without a promise.
    expect(assertions.token(alice, 'aud', 'a b')).toBe(first);
    expect(await assertions.token(alice, 'other-aud', 'a b')).not.toBe(first);
    expect(await assertions.token(alice, 'aud', 'a')).not.toBe(first);
    expect(await assertions.token({ ...alice, key: 'apiKey:bob' }, 'aud', 'a b')).not.toBe(first);
    now += 239_000;
    expect(assertions.token(alice, 'aud', 'a b')).toBe(first);
    now += 1_000;
    const renewed = await assertions.token(alice, 'aud', 'a b');
    expect(renewed).not.toBe(first);
    expect(decodeJwt(renewed).jti).not.toBe(decodeJwt(first).jti);
  });

  it('is not shared between the same subject acting directly, through an agent, or by another method', async () => {
    const assertions = assertionsOf(config([ec]), await loadSigningKeys([ec]));
    const user: Identity = {
      ...alice,
      key: 'jwt:https://idp/|u1',
      methods: ['jwt'],
      issuer: 'https://idp/',
      claims: {},
    };
    const direct = await assertions.token(user, 'aud', 'a');
    const viaAgent = await assertions.token({ ...user, claims: { act: { sub: 'agent-42' } } }, 'aud', 'a');
    expect(viaAgent).not.toBe(direct);
    expect((decodeJwt(viaAgent).act as { act?: unknown }).act).toEqual({ sub: 'agent-42' });
    expect((decodeJwt(direct).act as { act?: unknown }).act).toBeUndefined();
    const combined = await assertions.token({ ...user, methods: ['jwt', 'mtls'] }, 'aud', 'a');
    expect(combined).not.toBe(direct);
    // Key parts cannot run into each other: a newline in a subject is not a separator.
    const a = await assertions.token({ ...alice, key: 'apiKey:x\naud' }, 'b', '');
    const b = await assertions.token({ ...alice, key: 'apiKey:x' }, 'aud\nb', '');
    expect(decodeJwt(a).sub).toBe('apiKey:x\naud');
    expect(decodeJwt(b).sub).toBe('apiKey:x');
  });

  it('never vouches past the caller’s own credential', async () => {
    const now = 1_800_000_000_000;
    const assertions = assertionsOf(config([ec]), await loadSigningKeys([ec]), { now: () => now });
    const shortLived = { ...alice, expiresAt: now + 100_000 };
    const token = await assertions.token(shortLived, 'aud', '');
    expect(decodeJwt(token).exp).toBe((now + 100_000) / 1000);
    // The same subject with a credential that expires sooner gets an assertion of its own.
    const sooner = await assertions.token({ ...alice, expiresAt: now + 50_000 }, 'aud', '');
    expect(decodeJwt(sooner).exp).toBe((now + 50_000) / 1000);
    // A token's own exp, not the clock tolerance its check allows (expiresAt).
    const jwtCaller: Identity = {
      ...alice,
      key: 'jwt:https://idp/|u2',
      methods: ['jwt'],
      claims: { exp: (now + 60_000) / 1000 },
      expiresAt: now + 90_000,
    };
    expect(decodeJwt(await assertions.token(jwtCaller, 'aud', '')).exp).toBe((now + 60_000) / 1000);
  });

  it('carries a JWT caller’s issuer and its own delegation chain beneath the gateway', async () => {
    const assertions = assertionsOf(config([ec]), await loadSigningKeys([ec]));
    const caller: Identity = {
      key: 'jwt:https://idp/|u1',
      subject: 'u1',
      methods: ['jwt'],
      scopes: new Set(),
      issuer: 'https://idp/',
      claims: { sub: 'u1', act: { sub: 'agent', act: { sub: 'orchestrator' } } },
    };
    const payload = decodeJwt(await assertions.token(caller, 'aud', ''));
    expect(payload.act).toEqual({
      sub: ISSUER,
      amr: ['jwt'],
      caller_iss: 'https://idp/',
      act: { sub: 'agent', act: { sub: 'orchestrator' } },
    });
  });
});

describe('the scope an upstream is told', () => {
  it('leaves out a scope a token spelled with a space or a control character', () => {
    const identity: Identity = {
      ...alice,
      scopes: new Set(['notes:read', 'notes:read admin', 'x\u0000y', 'ok']),
    };
    expect(callerScopes({ identity })).toBe('notes:read ok');
  });
});

describe('signing keys', () => {
  it('names every key that cannot sign, without quoting the file', () => {
    const rsa = keyFile(
      'rsa.pem',
      generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const p384 = keyFile(
      'p384.pem',
      generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const publicOnly = keyFile(
      'pub.pem',
      generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }),
    );
    const secretText = keyFile('text.pem', 'hunter2-not-a-key');
    const problems = signingKeyProblems({
      gatewayIdentity: config([ec, rsa, p384, publicOnly, secretText, join(dir, 'missing.pem')]),
    } as never);
    expect(problems).toEqual([
      `gatewayIdentity.signingKeys[1]: ${rsa} must be an EC P-256 (ES256) or Ed25519 (EdDSA) private key`,
      `gatewayIdentity.signingKeys[2]: ${p384} must be an EC P-256 (ES256) or Ed25519 (EdDSA) private key`,
      `gatewayIdentity.signingKeys[3]: ${publicOnly} is not a PEM private key`,
      `gatewayIdentity.signingKeys[4]: ${secretText} is not a PEM private key`,
      `gatewayIdentity.signingKeys[5]: ${join(dir, 'missing.pem')} cannot be read (ENOENT)`,
    ]);
  });
});

describe('upstreamIdentity in the policy file', () => {
  const route = (lines: string) => `gatewayIdentity: { issuer: https://gw.test, signingKeys: [k.pem] }
identities:
  anonymous: {}
routes:
  - route: /mcp
    resource: http://127.0.0.1:8443/mcp
    authentication: { methods: [anonymous] }
${lines}`;

  it('accepts an assertion on an HTTP route and on an HTTP server of a federated route', () => {
    expect(
      configProblems(
        route(`    upstream: http://127.0.0.1:3000/mcp
    upstreamIdentity: { mode: assertion, audience: https://up.test }
  - route: /fed
    resource: http://127.0.0.1:8443/fed
    authentication: { methods: [anonymous] }
    servers:
      a: { upstream: "http://127.0.0.1:3001/mcp", upstreamIdentity: { mode: assertion, audience: a } }
      b: { upstream: "http://127.0.0.1:3002/mcp" }`),
      ),
    ).toEqual([]);
  });

  it('refuses it without gatewayIdentity, beside a stdio upstream, at a federated route and beside an Authorization upstreamHeader', () => {
    const withoutIdentity = configProblems(
      route(`    upstream: http://127.0.0.1:3000/mcp
    upstreamIdentity: { mode: assertion, audience: https://up.test }`).replace(/^gatewayIdentity.*\n/, ''),
    );
    expect(withoutIdentity.join('\n')).toContain(
      'routes[0].upstreamIdentity: mode assertion needs gatewayIdentity (the issuer and the keys that sign)',
    );
    expect(
      configProblems(
        route(`    upstream: { command: [node, server.js] }
    upstreamIdentity: { mode: assertion, audience: a }`),
      ).join('\n'),
    ).toContain('routes[0].upstreamIdentity: applies to HTTP upstreams only');
    expect(
      configProblems(
        route(`    servers:
      a: { upstream: "http://127.0.0.1:3001/mcp" }
    upstreamIdentity: { mode: assertion, audience: a }`),
      ).join('\n'),
    ).toContain('routes[0].upstreamIdentity: is set per server on a federated route (servers.<name>)');
    expect(
      configProblems(
        route(`    upstream: http://127.0.0.1:3000/mcp
    upstreamHeaders: { AUTHORIZATION: "Bearer static" }
    upstreamIdentity: { mode: assertion, audience: a }`),
      ).join('\n'),
    ).toContain('cannot be set with upstreamIdentity, which sends the Authorization header');
    expect(
      configProblems(
        route(`    upstream: http://127.0.0.1:3000/mcp
    upstreamIdentity: { mode: passthrough }`),
      ).length,
    ).toBeGreaterThan(0);
  });
});
