/**
 * The Redis limiter against a real redis-server: two gateways share one limit; with Redis killed a
 * `failMode: open` route keeps serving (counting in process) and a `closed` one answers 503 within
 * the command timeout, without a crash; limits apply again once Redis is back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { postModern } from '../support/modern-call.js';
import { type RedisServer, startRedis } from '../support/redis.js';
import { untilStatus } from '../support/wait.js';

const agent = newApiKey('pk_');

function call(base: string, route: string, id: number): Promise<Response> {
  const params = { name: 'echo', arguments: { text: 'x' } };
  return postModern(`${base}${route}`, { method: 'tools/call', params, id, key: agent.key });
}

describe('rate limits in Redis', () => {
  let redis: RedisServer;
  let upstream: Peer;
  let one: TestGateway;
  let two: TestGateway;

  beforeAll(async () => {
    redis = await startRedis();
    upstream = await startV2Server({ response: 'json' });
    const policy = `redis: { url: "${redis.url}", commandTimeoutMs: 100 }
identities:
  apiKeys: [{ id: agent, hash: "${agent.hash}", scopes: [t] }]
routes:
  - route: /open/mcp
    resource: http://127.0.0.1/open/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    default: allow
    rateLimits: [{ per: identity, limit: 10/hour }]
    failMode: open
  - route: /closed/mcp
    resource: http://127.0.0.1/closed/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    default: allow
    rateLimits: [{ per: identity, limit: 1000/hour }]
    failMode: closed
`;
    one = await startTestGateway({ policy });
    two = await startTestGateway({ policy });
    // Let both connect.
    await new Promise((resolve) => setTimeout(resolve, 300));
  });
  afterAll(async () => {
    await Promise.all([one?.close(), two?.close()]);
    await upstream?.close();
    await redis?.stop();
  });

  it('two gateways sharing one Redis enforce one combined limit', async () => {
    const answers = await Promise.all(
      Array.from({ length: 30 }, (_, i) => call(i % 2 === 0 ? one.url : two.url, '/open/mcp', i)),
    );
    await Promise.all(answers.map((a) => a.text()));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(10);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(20);
  });

  it('with Redis down: open keeps serving, closed answers 503 fast, /readyz reflects it; then recovers', async () => {
    await redis.stop();
    const started = performance.now();
    const closed = await call(one.url, '/closed/mcp', 100);
    expect(closed.status).toBe(503);
    expect(await closed.json()).toMatchObject({
      error: { code: -31094, data: { reason: 'limiter_unavailable' } },
    });
    expect(performance.now() - started).toBeLessThan(2_000);
    // Counting in process per replica: the open route still serves.
    const open = await call(two.url, '/open/mcp', 101);
    expect(open.status).toBe(200);
    await open.text();
    expect((await fetch(`${one.adminUrl}/readyz`)).status).toBe(503);
    expect(await (await fetch(`${one.adminUrl}/metrics`)).text()).toMatch(
      /portcullis_redis_errors_total\{kind="[a-z]+"\} [1-9]/,
    );

    await redis.start();
    // ioredis reconnects by itself (capped backoff).
    const status = await untilStatus(() => call(one.url, '/closed/mcp', 102), 200, {
      timeoutMs: 8_000,
      everyMs: 200,
    });
    expect(status).toBe(200);
    expect((await fetch(`${one.adminUrl}/readyz`)).status).toBe(200);
  });
});
