/**
 * Identity to the upstream by signed assertion (`upstreamIdentity: { mode: assertion }`): an
 * upstream built with the official SDK v2 verifies every request's assertion with `jose` against
 * the gateway's own JWKS, and its `whoami` tool reports what it verified. The right subject per
 * caller, the caller's own credential never upstream, forgeries refused by that upstream, key
 * rotation by reload without a failed call, per-server identity on a federated route.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import {
  createRemoteJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  type JWTPayload,
  jwtVerify,
  SignJWT,
} from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import type { Gateway } from '../../src/server/gateway.js';
import { connectV2Client, listenRecording, type Peer, startV2Server } from '../fixtures/peers.js';
import { runBuiltCli } from '../support/cli.js';
import { startWatchedGateway } from '../support/gateway.js';
import { createSigningKey, type JwksServer, nowSec, signJwt, startJwksServer } from '../support/jwks.js';
import { sleep } from '../support/wait.js';
import { META } from '../support/wire.js';

const ISSUER = 'https://portcullis.test';
const AUDIENCE = 'https://notes.upstream';
const alice = newApiKey('pk_alice_');
/** How long the upstream trusts the key set it fetched. */
const JWKS_CACHE_MS = 300;
const bob = newApiKey('pk_bob_');

/** An upstream that trusts nothing but a valid assertion from the gateway for its own audience. */
interface VerifyingUpstream extends Peer {
  /** Payloads it verified, in order. */
  readonly verified: JWTPayload[];
  /** Requests it refused (no, bad or foreign assertion). */
  refused: number;
  /** Verifies `token` as the upstream does: resolves to its payload, rejects when it is refused. */
  verify(token: string): Promise<JWTPayload>;
}

async function startVerifyingUpstream(jwksUrl: () => string): Promise<VerifyingUpstream> {
  let keySet: ReturnType<typeof createRemoteJWKSet> | undefined;
  const verify = async (token: string) => {
    // A short cache, as an operator sets it for the rotation test to run in a second: the
    // library's defaults (10 min cache, 30 s cooldown) only stretch the same procedure.
    keySet ??= createRemoteJWKSet(new URL(jwksUrl()), { cacheMaxAge: JWKS_CACHE_MS, cooldownDuration: 50 });
    const { payload } = await jwtVerify(token, keySet, {
      issuer: ISSUER,
      audience: AUDIENCE,
      algorithms: ['ES256', 'EdDSA'],
    });
    return payload;
  };
  const handler = createMcpHandler(
    (ctx) => {
      const server = new McpServer({ name: 'verifying', version: '1.0.0' }, { capabilities: { tools: {} } });
      server.registerTool('whoami', { description: 'What the assertion said' }, async () => ({
        content: [{ type: 'text', text: JSON.stringify(ctx.authInfo?.extra?.claims ?? null) }],
      }));
      return server;
    },
    { responseMode: 'json', legacy: 'stateless', keepAliveMs: 0 },
  );
  const node = toNodeHandler(handler);
  const verified: JWTPayload[] = [];
  const upstream = {
    verified,
    refused: 0,
    verify,
  } as unknown as VerifyingUpstream;
  const peer = await listenRecording(
    async (req, res, body) => {
      const header = req.headers.authorization;
      let payload: JWTPayload;
      try {
        if (typeof header !== 'string' || !header.startsWith('Bearer ')) throw new Error('no assertion');
        payload = await verify(header.slice(7));
      } catch {
        upstream.refused++;
        res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
        return;
      }
      verified.push(payload);
      // The SDK's pass-through: the tool handler sees what this front verified.
      (req as typeof req & { auth: unknown }).auth = {
        token: header.slice(7),
        clientId: payload.sub,
        scopes: String(payload.scope ?? '').split(' '),
        extra: { claims: payload },
      };
      await node(req as never, res, body);
    },
    () => handler.close(),
  );
  return Object.assign(upstream, peer);
}

function writeKey(dir: string, name: string, type: 'ec' | 'ed25519'): { path: string; key: KeyObject } {
  const { privateKey } =
    type === 'ec' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const path = join(dir, `${name}.pem`);
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }));
  return { path, key: privateKey };
}

function call(base: string, route: string, credential: string, tool: string): Promise<Response> {
  return fetch(`${base}${route}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': tool,
      authorization: `Bearer ${credential}`,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: tool, arguments: {}, _meta: META },
    }),
  });
}

/** The claims `whoami` reported, through the gateway. */
async function whoami(base: string, route: string, credential: string, tool = 'whoami'): Promise<JWTPayload> {
  const answer = await call(base, route, credential, tool);
  expect(answer.status).toBe(200);
  const body = (await answer.json()) as { result: { content: { text: string }[] } };
  return JSON.parse(body.result.content[0]?.text ?? 'null') as JWTPayload;
}

describe('upstreamIdentity: mode assertion', () => {
  let dir: string;
  let file: string;
  let k1: { path: string; key: KeyObject };
  let k2: { path: string; key: KeyObject };
  let idp: JwksServer;
  let idpKey: Awaited<ReturnType<typeof createSigningKey>>;
  let upstream: VerifyingUpstream;
  let plain: Peer;
  let gateway: Gateway;

  const policy = (signingKeys: readonly string[]) => `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: ${JSON.stringify(join(dir, 'audit.jsonl'))} }
limits: { drainTimeoutMs: 1000 }
gatewayIdentity:
  issuer: ${ISSUER}
  signingKeys: ${JSON.stringify(signingKeys)}
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [notes:read] }
    - { id: bob, hash: "${bob.hash}", scopes: [notes:read, notes:write] }
  jwt:
    - { issuer: "https://idp.test/", jwksUri: "${idp.url}", algorithms: [ES256] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    upstreamIdentity: { mode: assertion, audience: "${AUDIENCE}" }
    authentication: { methods: [apiKey, jwt] }
    tools: { whoami: notes:read }
  - route: /narrow
    resource: http://127.0.0.1/narrow
    upstream: ${upstream.url}
    upstreamIdentity: { mode: assertion, audience: "${AUDIENCE}", scopes: call }
    authentication: { methods: [apiKey] }
    tools: { whoami: notes:read }
  - route: /elsewhere
    resource: http://127.0.0.1/elsewhere
    upstream: ${upstream.url}
    upstreamIdentity: { mode: assertion, audience: "https://another.upstream" }
    authentication: { methods: [apiKey] }
    tools: { whoami: notes:read }
  - route: /fed
    resource: http://127.0.0.1/fed
    servers:
      a: { upstream: "${upstream.url}", upstreamIdentity: { mode: assertion, audience: "${AUDIENCE}" } }
      b: { upstream: "${plain.url}" }
    authentication: { methods: [apiKey] }
    tools: { a__whoami: notes:read, b__echo: notes:read }
`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-assert-'));
    file = join(dir, 'portcullis.yaml');
    k1 = writeKey(dir, 'k1', 'ec');
    k2 = writeKey(dir, 'k2', 'ed25519');
    idpKey = await createSigningKey('ES256');
    idp = await startJwksServer([idpKey]);
    upstream = await startVerifyingUpstream(() => `${gateway.url}/.well-known/jwks.json`);
    plain = await startV2Server({ response: 'json', legacy: 'stateless' });
    writeFileSync(file, policy([k1.path]));
    gateway = await startWatchedGateway(file);
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
    await plain?.close();
    await idp?.close();
  });

  it('tells the upstream who calls: the subject, scopes and actor of each caller, verified with jose against the gateway JWKS', async () => {
    const a = await whoami(gateway.url, '/mcp', alice.key);
    expect(a).toMatchObject({
      iss: ISSUER,
      sub: 'apiKey:alice',
      aud: AUDIENCE,
      scope: 'notes:read',
      act: { sub: ISSUER, amr: ['apiKey'] },
    });
    expect(typeof a.jti).toBe('string');
    expect((a.exp as number) - (a.iat as number)).toBeLessThanOrEqual(300);
    const b = await whoami(gateway.url, '/mcp', bob.key);
    expect(b).toMatchObject({ sub: 'apiKey:bob', scope: 'notes:read notes:write' });
  });

  it('a JWT caller: subject by issuer and sub, its issuer and its own delegation chain in act', async () => {
    const token = await signJwt(idpKey, {
      iss: 'https://idp.test/',
      sub: 'user-7',
      aud: 'http://127.0.0.1/mcp',
      scope: 'notes:read',
      iat: nowSec(),
      exp: nowSec() + 600,
      act: { sub: 'agent-42' },
    });
    const claims = await whoami(gateway.url, '/mcp', token);
    expect(claims).toMatchObject({
      sub: 'jwt:https://idp.test/|user-7',
      scope: 'notes:read',
      act: { sub: ISSUER, amr: ['jwt'], caller_iss: 'https://idp.test/', act: { sub: 'agent-42' } },
    });
    // Never past the caller's own token.
    expect(claims.exp as number).toBeLessThanOrEqual(nowSec() + 600);
    // The caller's token never reached the upstream, in any header or body.
    const seen = JSON.stringify(upstream.requests) + JSON.stringify(plain.requests);
    expect(seen).not.toContain(token);
    expect(seen).not.toContain(alice.key);
    expect(seen).not.toContain(bob.key);
  });

  it('one assertion serves the calls of one caller until shortly before it expires (jti names the assertion)', async () => {
    const first = await whoami(gateway.url, '/mcp', alice.key);
    const second = await whoami(gateway.url, '/mcp', alice.key);
    expect(second.jti).toBe(first.jti);
    const other = await whoami(gateway.url, '/mcp', bob.key);
    expect(other.jti).not.toBe(first.jti);
  });

  it('scopes: call narrows the assertion to what the call needed', async () => {
    const claims = await whoami(gateway.url, '/narrow', bob.key);
    expect(claims).toMatchObject({ sub: 'apiKey:bob', scope: 'notes:read' });
  });

  it('the upstream refuses an assertion for another audience, a forged and an expired one', async () => {
    const before = upstream.refused;
    const wrongAudience = await call(gateway.url, '/elsewhere', alice.key, 'whoami');
    expect(wrongAudience.status).toBe(502); // the upstream's 401 is never relayed
    expect(upstream.refused).toBe(before + 1);

    const header = upstream.requests.at(-1)?.headers.authorization as string;
    const genuine = header.slice('Bearer '.length);
    const payload = decodeJwt(genuine);
    const { kid } = decodeProtectedHeader(genuine);
    // Same kid, another key: the signature does not verify.
    const forger = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
    const forged = await new SignJWT({ ...payload, aud: AUDIENCE, sub: 'apiKey:bob' })
      .setProtectedHeader({ alg: 'ES256', kid: kid as string })
      .sign(forger);
    await expect(upstream.verify(forged)).rejects.toThrow();
    // The gateway's own key, but expired.
    const expired = await new SignJWT({ ...payload, aud: AUDIENCE, iat: nowSec() - 900, exp: nowSec() - 600 })
      .setProtectedHeader({ alg: 'ES256', kid: kid as string })
      .sign(k1.key);
    await expect(upstream.verify(expired)).rejects.toThrow(/exp/);
    // A genuine one edited: the signature no longer matches.
    const [h, , s] = genuine.split('.');
    const edited = `${h}.${Buffer.from(JSON.stringify({ ...payload, aud: AUDIENCE, sub: 'apiKey:bob' })).toString('base64url')}.${s}`;
    await expect(upstream.verify(edited)).rejects.toThrow();
  });

  it('per server on a federated route: server a is told who calls, server b gets no Authorization at all', async () => {
    const claims = await whoami(gateway.url, '/fed', alice.key, 'a__whoami');
    expect(claims).toMatchObject({ sub: 'apiKey:alice', aud: AUDIENCE });
    const echo = await fetch(`${gateway.url}/fed`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'b__echo',
        authorization: `Bearer ${alice.key}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 2,
        method: 'tools/call',
        params: { name: 'b__echo', arguments: { text: 'hi' }, _meta: META },
      }),
    });
    expect(echo.status).toBe(200);
    expect(plain.requests.length).toBeGreaterThan(0);
    for (const request of plain.requests) expect(request.headers.authorization).toBeUndefined();
  });

  it('an SDK v2 client through the gateway: the tool sees the caller the gateway vouched for', async () => {
    const client = await connectV2Client(`${gateway.url}/mcp`, {
      headers: { authorization: `Bearer ${bob.key}` },
    });
    try {
      const result = await client.callTool({ name: 'whoami', arguments: {} });
      const text = (result.content as { text: string }[])[0]?.text ?? 'null';
      expect(JSON.parse(text)).toMatchObject({ sub: 'apiKey:bob', aud: AUDIENCE });
    } finally {
      await client.close();
    }
  });

  it('serves its JWKS on the main and the admin listener, and `portcullis keys jwks` writes the same', async () => {
    const main = await fetch(`${gateway.url}/.well-known/jwks.json`);
    const admin = await fetch(`${gateway.adminUrl}/.well-known/jwks.json`);
    expect(main.status).toBe(200);
    const document = (await main.json()) as { keys: Record<string, unknown>[] };
    expect(await admin.json()).toEqual(document);
    expect(document.keys).toHaveLength(1);
    expect(document.keys[0]).toMatchObject({ kty: 'EC', crv: 'P-256', alg: 'ES256', use: 'sig' });
    expect(document.keys[0]).not.toHaveProperty('d'); // the public half only
    const cli = await runBuiltCli(['keys', 'jwks', '--config', file]);
    expect(cli.code).toBe(0);
    expect(JSON.parse(cli.stdout)).toEqual(document);
  });

  it('rotates keys by reload without a failed call: the new key signs, the upstream fetches it', async () => {
    let failures = 0;
    let calls = 0;
    let running = true;
    const load = (async () => {
      while (running) {
        const answer = await call(gateway.url, '/mcp', bob.key, 'whoami');
        calls++;
        if (answer.status !== 200) failures++;
        await answer.arrayBuffer();
      }
    })();
    let claims: JWTPayload;
    try {
      // Publish the next key second; once the upstream's key-set cache has run out (it has
      // fetched the new key), move it first. Each step is a reload.
      writeFileSync(file, policy([k1.path, k2.path]));
      expect(await gateway.reload()).toBe('applied');
      await sleep(JWKS_CACHE_MS * 2);
      writeFileSync(file, policy([k2.path, k1.path]));
      expect(await gateway.reload()).toBe('applied');
      claims = await whoami(gateway.url, '/mcp', alice.key);
    } finally {
      running = false;
      await load;
    }
    expect(calls).toBeGreaterThan(0);
    expect(failures).toBe(0);
    expect(claims.sub).toBe('apiKey:alice');
    const header = upstream.requests.at(-1)?.headers.authorization as string;
    expect(decodeProtectedHeader(header.slice(7)).alg).toBe('EdDSA');
    const keys = ((await (await fetch(`${gateway.url}/.well-known/jwks.json`)).json()) as { keys: unknown[] })
      .keys;
    expect(keys).toHaveLength(2);
  });

  it('a policy whose signing key does not sign is refused at reload, and the running keys stay', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const bad = join(dir, 'rsa.pem');
    writeFileSync(bad, rsa.export({ type: 'pkcs8', format: 'pem' }));
    writeFileSync(file, policy([bad]));
    expect(await gateway.reload()).toBe('invalid');
    expect((await whoami(gateway.url, '/mcp', alice.key)).sub).toBe('apiKey:alice');
    const check = await runBuiltCli(['check', '--config', file]);
    expect(check.code).toBe(1);
    expect(check.stderr).toContain('must be an EC P-256 (ES256) or Ed25519 (EdDSA) private key');
  });
});
