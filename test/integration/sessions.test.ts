/**
 * Sealed sessions (DESIGN.md step 8) against a real legacy upstream (SDK v1, sessions): the client
 * only ever holds an id sealed to the route, the identity, the protocol version and the time;
 * anything else — another identity's id, a forged or truncated one, an expired one, one from
 * another route — is 404 with nothing forwarded. Two gateways with the same keys serve each
 * other's sessions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { startV1Server, type V1Peer } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

const alice = newApiKey('pk_');
const bob = newApiKey('pk_');
const SESSION_KEY = Buffer.alloc(32, 3).toString('base64');

function policy(upstream: string, sessions: string): string {
  return `${sessions}
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [files:read] }
    - { id: bob, hash: "${bob.hash}", scopes: [files:read] }
routes:
  - route: /a/mcp
    resource: http://127.0.0.1/a/mcp
    upstream: ${upstream}
    authentication: { methods: [apiKey] }
    tools: { echo: files:read }
  - route: /b/mcp
    resource: http://127.0.0.1/b/mcp
    upstream: ${upstream}
    authentication: { methods: [apiKey] }
    tools: { echo: files:read }
`;
}

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

async function initialize(base: string, key: string): Promise<string> {
  const answer = await fetch(base, {
    method: 'POST',
    headers: { ...HEADERS, authorization: `Bearer ${key}` },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
    }),
  });
  expect(answer.status).toBe(200);
  await answer.text();
  const sealed = answer.headers.get('mcp-session-id');
  expect(sealed).toMatch(/^[A-Za-z0-9_-]{40,}$/);
  return sealed as string;
}

function callEcho(base: string, key: string, session: string): Promise<Response> {
  return fetch(base, {
    method: 'POST',
    headers: {
      ...HEADERS,
      authorization: `Bearer ${key}`,
      'mcp-session-id': session,
      'mcp-protocol-version': '2025-11-25',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: { text: 'hi' } },
    }),
  });
}

describe('sealed sessions', () => {
  let upstream: V1Peer;
  let a: TestGateway;
  let b: TestGateway;
  let stranger: TestGateway;
  let shortLived: TestGateway;

  beforeAll(async () => {
    upstream = await startV1Server({ response: 'json' });
    const shared = `sessions: { keys: ["${SESSION_KEY}"] }`;
    a = await startTestGateway({ policy: policy(upstream.url, shared) });
    b = await startTestGateway({ policy: policy(upstream.url, shared) });
    stranger = await startTestGateway({ policy: policy(upstream.url, '') });
    shortLived = await startTestGateway({
      policy: policy(upstream.url, `sessions: { keys: ["${SESSION_KEY}"], maxAgeSec: 1 }`),
    });
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close(), stranger?.close(), shortLived?.close()]);
    await upstream?.close();
  });

  async function expectNotFound(answer: Response): Promise<void> {
    expect(answer.status).toBe(404);
    expect(await answer.json()).toMatchObject({
      error: { code: -32001, data: { reason: 'session_not_found' } },
    });
  }

  it('hands the client a sealed id, never the upstream’s, and the upstream sees only its own', async () => {
    const sealed = await initialize(`${a.url}/a/mcp`, alice.key);
    expect(upstream.sessionIds()).not.toContain(sealed);
    const answer = await callEcho(`${a.url}/a/mcp`, alice.key, sealed);
    expect(answer.status).toBe(200);
    await answer.text();
    const call = upstream.requests.findLast(
      (r) => (r.body as { method?: string } | undefined)?.method === 'tools/call',
    );
    expect(upstream.sessionIds()).toContain(call?.headers['mcp-session-id']);
  });

  it('refuses a session used by another identity, on another route, forged or truncated — forwarding nothing', async () => {
    const sealed = await initialize(`${a.url}/a/mcp`, alice.key);
    const before = upstream.requests.length;
    await expectNotFound(await callEcho(`${a.url}/a/mcp`, bob.key, sealed));
    await expectNotFound(await callEcho(`${a.url}/b/mcp`, alice.key, sealed));
    await expectNotFound(await callEcho(`${a.url}/a/mcp`, alice.key, sealed.slice(0, -4)));
    const flipped = `${sealed.slice(0, 30)}${sealed[30] === 'A' ? 'B' : 'A'}${sealed.slice(31)}`;
    await expectNotFound(await callEcho(`${a.url}/a/mcp`, alice.key, flipped));
    await expectNotFound(await callEcho(`${a.url}/a/mcp`, alice.key, upstream.sessionIds()[0] ?? 'x'));
    await expectNotFound(await callEcho(`${a.url}/a/mcp`, alice.key, 'A'.repeat(64)));
    expect(upstream.requests.length, 'the upstream must see nothing').toBe(before);
  });

  it('is served by any gateway with the same keys, and by none without them', async () => {
    const sealed = await initialize(`${a.url}/a/mcp`, alice.key);
    const elsewhere = await callEcho(`${b.url}/a/mcp`, alice.key, sealed);
    expect(elsewhere.status).toBe(200);
    await elsewhere.text();
    const before = upstream.requests.length;
    await expectNotFound(await callEcho(`${stranger.url}/a/mcp`, alice.key, sealed));
    expect(upstream.requests.length).toBe(before);
  });

  it('expires after sessions.maxAgeSec', async () => {
    const sealed = await initialize(`${shortLived.url}/a/mcp`, alice.key);
    const fresh = await callEcho(`${shortLived.url}/a/mcp`, alice.key, sealed);
    expect(fresh.status).toBe(200);
    await fresh.text();
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    const before = upstream.requests.length;
    await expectNotFound(await callEcho(`${shortLived.url}/a/mcp`, alice.key, sealed));
    expect(upstream.requests.length).toBe(before);
  });
});
