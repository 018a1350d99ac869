/**
 * Rate limits with the in-process limiter (one replica): exact counts under concurrency, the IETF
 * headers on every answer, a 429 an agent can act on, rules scoped to tools, and a refused
 * request that consumes nothing. (The Redis limiter is the rate-limit issue's next step.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { postModern } from '../support/modern-call.js';

const agent = newApiKey('pk_');
const other = newApiKey('pk_');

function call(base: string, key: string, tool: string, id: number): Promise<Response> {
  const params = { name: tool, arguments: { text: 'x', a: 1, b: 2 } };
  return postModern(`${base}/mcp`, { method: 'tools/call', params, id, key });
}

describe('rate limits (in-process)', () => {
  let upstream: Peer;
  let gateway: TestGateway;
  const calls = () =>
    upstream.requests.filter((r) => (r.body as { method?: string } | undefined)?.method === 'tools/call')
      .length;

  beforeAll(async () => {
    upstream = await startV2Server({ response: 'json' });
    gateway = await startTestGateway({
      policy: `identities:
  apiKeys:
    - { id: agent, hash: "${agent.hash}", scopes: [t] }
    - { id: other, hash: "${other.hash}", scopes: [t] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    default: allow
    rateLimits:
      - { per: identity, limit: 50/hour }
      - { per: identity+tool, tools: [add], limit: 2/hour }
    failMode: open
`,
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('a tool-scoped rule: 2 adds, then 429 with Retry-After, the IETF headers and which limit', async () => {
    for (const id of [1, 2]) {
      const ok = await call(gateway.url, agent.key, 'add', id);
      expect(ok.status).toBe(200);
      expect(ok.headers.get('ratelimit-policy')).toContain('"r1";q=2;w=3600');
      expect(ok.headers.get('ratelimit')).toMatch(/^"r1";r=\d+;t=\d+$/);
      await ok.text();
    }
    const before = calls();
    const refused = await call(gateway.url, agent.key, 'add', 3);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refused.headers.get('ratelimit')).toMatch(/^"r1";r=0;t=\d+$/);
    expect(await refused.json()).toMatchObject({
      id: 3,
      error: { code: -31093, data: { reason: 'rate_limited', limit: '2/hour', per: 'identity+tool' } },
    });
    expect(calls(), 'the upstream must see nothing').toBe(before);
  });

  it('allows exactly the limit under 200 parallel calls, and a refused call consumes nothing', async () => {
    // `other` has 50/hour for everything; echo is not limited per tool.
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => call(gateway.url, other.key, 'echo', 100 + i)),
    );
    const statuses = answers.map((a) => a.status);
    await Promise.all(answers.map((a) => a.text()));
    expect(statuses.filter((s) => s === 200)).toHaveLength(50);
    expect(statuses.filter((s) => s === 429)).toHaveLength(150);
    // The agent's refused `add` above consumed nothing of its identity budget: 50 - 2 echo-able calls remain.
    const first = await call(gateway.url, agent.key, 'echo', 999);
    expect(first.status).toBe(200);
    expect(first.headers.get('ratelimit')).toMatch(/^"r0";r=47;t=\d+$/);
    await first.text();
  });
});
