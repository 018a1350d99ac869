/**
 * The caller's own delegation chain (the nested `act` claims of its token) in policy:
 * `maxDelegationDepth` refuses a chain deeper than the route allows for every request, before
 * anything reaches the upstream; `when` rules read it as `identity.claims.act`.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Peer, startV1Server, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, startWatchedGateway, type TestGateway } from '../support/gateway.js';
import { createSigningKey, nowSec, type SigningKey, signJwt } from '../support/jwks.js';
import { LEGACY, openSession } from '../support/raw-mcp.js';
import { sleep } from '../support/wait.js';
import { META } from '../support/wire.js';

const ISSUER = 'https://idp.test/';

describe('delegation chains in policy', () => {
  let signer: SigningKey;
  let upstream: Peer;
  let gateway: TestGateway;

  const token = (act?: unknown) =>
    signJwt(signer, {
      iss: ISSUER,
      sub: 'alice',
      aud: 'http://127.0.0.1/mcp',
      scope: 'notes:read',
      iat: nowSec(),
      exp: nowSec() + 300,
      ...(act === undefined ? {} : { act }),
    });
  const call = async (bearer: string, tool = 'echo') =>
    fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': tool,
        authorization: `Bearer ${bearer}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: tool, arguments: { text: 'hi' }, _meta: META },
      }),
    });

  beforeAll(async () => {
    signer = await createSigningKey('ES256');
    upstream = await startV2Server({ response: 'json' });
    gateway = await startTestGateway({
      policy: `identities:
  jwt: [{ issuer: "${ISSUER}", keys: [${JSON.stringify(signer.publicJwk)}], algorithms: [ES256] }]
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [jwt] }
    maxDelegationDepth: 1
    tools:
      echo: { scopes: notes:read, when: '!has(identity.claims.act) || identity.claims.act.sub == "agent-42"' }
`,
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('serves the user and the one agent a when rule names, acting for them', async () => {
    expect((await call(await token())).status).toBe(200);
    expect((await call(await token({ sub: 'agent-42' }))).status).toBe(200);
    const other = await call(await token({ sub: 'agent-7' }));
    expect(other.status).toBe(403);
    expect(((await other.json()) as { error: { data: { reason: string } } }).error.data.reason).toBe(
      'argument_denied',
    );
  });

  it('refuses a chain past maxDelegationDepth on every request, before the upstream hears of it', async () => {
    const before = upstream.requests.length;
    const deep = await token({ sub: 'agent-42', act: { sub: 'orchestrator' } });
    const refused = await call(deep);
    expect(refused.status).toBe(403);
    const body = (await refused.json()) as { error: { code: number; data: Record<string, unknown> } };
    expect(body.error.code).toBe(-31092);
    expect(body.error.data).toMatchObject({ reason: 'method_denied', rule: 'maxDelegationDepth' });
    // Not only calls: a GET stream and a DELETE are refused the same way.
    for (const method of ['GET', 'DELETE']) {
      const answer = await fetch(`${gateway.url}/mcp`, {
        method,
        headers: { accept: 'text/event-stream', authorization: `Bearer ${deep}`, 'mcp-session-id': 'x' },
      });
      expect(answer.status, method).toBe(403);
      await answer.arrayBuffer();
    }
    // A chain that is not one — hundreds of levels deep, an array, a string — does not
    // authenticate at all: no bound and no rule could judge it, no assertion could carry it.
    let act: Record<string, unknown> = { sub: 'bottom' };
    for (let i = 0; i < 300; i++) act = { sub: `a${i}`, act };
    for (const malformed of [
      act,
      [{ sub: 'agent-1' }, { sub: 'agent-2' }],
      'agent-1',
      { sub: 'a', act: 'b' },
    ]) {
      const answer = await call(await token(malformed));
      expect(answer.status).toBe(401);
      await answer.arrayBuffer();
    }
    expect(upstream.requests.length).toBe(before);
    const records = await gateway.auditRecords();
    const denied = records.filter(
      (r) => r.reason === 'method_denied' && JSON.stringify(r).includes('maxDelegationDepth'),
    );
    expect(denied.length).toBeGreaterThan(0);
    expect(JSON.stringify(denied[0])).toContain(`jwt:${ISSUER}|alice`);
  });
});

describe('a bound on delegation lowered by reload', () => {
  it('closes the open GET stream of a chain now too long, and leaves a direct caller’s open', async () => {
    const signer = await createSigningKey('ES256');
    const upstream = await startV1Server({ response: 'sse' });
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-delegation-'));
    const file = join(dir, 'portcullis.yaml');
    const policy = (max: number) => `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: ${JSON.stringify(join(dir, 'audit.jsonl'))} }
limits: { drainTimeoutMs: 1000 }
identities:
  jwt: [{ issuer: "${ISSUER}", keys: [${JSON.stringify(signer.publicJwk)}], algorithms: [ES256] }]
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [jwt] }
    maxDelegationDepth: ${max}
    default: allow
`;
    writeFileSync(file, policy(1));
    const gateway = await startWatchedGateway(file);
    try {
      const tokenActing = (act?: unknown) =>
        signJwt(signer, {
          iss: ISSUER,
          sub: 'alice',
          aud: 'http://127.0.0.1/mcp',
          iat: nowSec(),
          exp: nowSec() + 300,
          ...(act === undefined ? {} : { act }),
        });
      const stream = async (token: string) => {
        const session = await openSession(`${gateway.url}/mcp`, token);
        const answer = await fetch(`${gateway.url}/mcp`, {
          headers: {
            accept: 'text/event-stream',
            authorization: `Bearer ${token}`,
            'mcp-session-id': session,
            'mcp-protocol-version': LEGACY,
          },
        });
        expect(answer.status).toBe(200);
        return (answer.body as ReadableStream<Uint8Array>).getReader();
      };
      const endsWithin = async (reader: ReadableStreamDefaultReader<Uint8Array>, ms: number) =>
        Promise.race([
          (async () => {
            for (;;) if ((await reader.read()).done) return 'closed';
          })().catch(() => 'closed'),
          sleep(ms).then(() => 'still open'),
        ]);
      const delegated = await stream(await tokenActing({ sub: 'agent-42' }));
      const direct = await stream(await tokenActing());
      writeFileSync(file, policy(0));
      expect(['applied', 'unchanged']).toContain(await gateway.reload());
      expect(await endsWithin(delegated, 2_000)).toBe('closed');
      expect(await endsWithin(direct, 500)).toBe('still open');
      await direct.cancel();
    } finally {
      await gateway.close();
      await upstream.close();
    }
  });
});
