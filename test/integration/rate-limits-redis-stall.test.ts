/**
 * Our own stalls are never blamed on Redis: a gateway whose event loop stalls again and again for
 * three times `redis.commandTimeoutMs` (as a large body or a GC pause would) while calls flow on a
 * `failMode: closed` route, with a healthy real redis-server, refuses none of them 503
 * `limiter_unavailable` and counts no Redis error; the limit is still enforced by Redis.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { toolCall } from '../support/modern-call.js';
import { type RedisServer, startRedis } from '../support/redis.js';
import { counterValue, metricsText } from '../support/wire.js';

const agent = newApiKey('pk_');
const TIMEOUT_MS = 50;

function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy: the gateway runs in this process, so its loop stalls too
  }
}

describe('event-loop stalls longer than redis.commandTimeoutMs', () => {
  let redis: RedisServer;
  let upstream: Peer;
  let gateway: TestGateway;

  beforeAll(async () => {
    redis = await startRedis();
    upstream = await startV2Server({ response: 'json' });
    gateway = await startTestGateway({
      policy: `redis: { url: "${redis.url}", commandTimeoutMs: ${TIMEOUT_MS} }
identities:
  apiKeys: [{ id: agent, hash: "${agent.hash}", scopes: [t] }]
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    tools: { echo: t }
    rateLimits: [{ per: identity, limit: 30/hour }]
    failMode: closed
`,
    });
    const deadline = Date.now() + 5_000;
    while ((await fetch(`${gateway.adminUrl}/readyz`)).status !== 200) {
      if (Date.now() > deadline) throw new Error('gateway never ready');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
    await redis?.stop();
  });

  it('no spurious 503 and no Redis error counted while the loop keeps stalling', async () => {
    const stalls = setInterval(() => stall(3 * TIMEOUT_MS), 200);
    const statuses: number[] = [];
    try {
      const worker = async (w: number) => {
        for (let i = 0; i < 6; i++) {
          const answer = await toolCall(
            `${gateway.url}/mcp`,
            'echo',
            { text: `${w}-${i}` },
            { key: agent.key },
          );
          statuses.push(answer.status);
        }
      };
      await Promise.all(Array.from({ length: 4 }, (_, w) => worker(w)));
    } finally {
      clearInterval(stalls);
    }
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    const metrics = await metricsText(gateway);
    expect(counterValue(metrics, 'portcullis_redis_errors_total', { kind: 'timeout' })).toBe(0);
    expect(counterValue(metrics, 'portcullis_redis_errors_total', { kind: 'unavailable' })).toBe(0);
    // Redis kept counting: 24 of the 30 spent, so of 7 more calls one meets a 429 (Redis's own verdict).
    const more = await Promise.all(
      Array.from({ length: 7 }, (_, i) =>
        toolCall(`${gateway.url}/mcp`, 'echo', { text: `m${i}` }, { key: agent.key }),
      ),
    );
    expect(more.filter((a) => a.status === 200)).toHaveLength(6);
    expect(more.filter((a) => a.status === 429)).toHaveLength(1);
    // And it kept serving.
    expect((await fetch(`${gateway.adminUrl}/healthz`)).status).toBe(200);
  });
});
