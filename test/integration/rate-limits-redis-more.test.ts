/**
 * The Redis limiter through the gateway, against real redis-servers started here: a three-node
 * Redis Cluster enforces the same limits (every rule of a request in one slot); a `SCRIPT FLUSH`
 * between calls is recovered from (on NOSCRIPT the limiter sends the script with EVAL, once) with
 * exact counts; a Redis stalled by `DEBUG SLEEP` costs each call about `commandTimeoutMs`,
 * `failMode: open` serving and `closed` answering 503; a script that fails in Redis is 500
 * `internal` even on a `failMode: open` route (a bug never lets traffic through unlimited); and a
 * refusal answers as the in-process limiter's does.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { postModern } from '../support/modern-call.js';
import { type RedisCluster, type RedisServer, startRedis, startRedisCluster } from '../support/redis.js';
import { untilStatus } from '../support/wait.js';
import { counterValue, metricsText } from '../support/wire.js';

const agent = newApiKey('pk_');

function call(base: string, route: string, id: number, tool = 'echo'): Promise<Response> {
  const params = { name: tool, arguments: { text: 'x', a: 1, b: 2 } };
  return postModern(`${base}${route}`, { method: 'tools/call', params, id, key: agent.key });
}

/** Status and the `RateLimit` header's remaining count of each answer; bodies read. */
async function settle(answers: Response[]): Promise<{ status: number; remaining: number | undefined }[]> {
  return Promise.all(
    answers.map(async (a) => {
      await a.text();
      const match = /;r=(\d+);/.exec(a.headers.get('ratelimit') ?? '');
      return { status: a.status, remaining: match ? Number(match[1]) : undefined };
    }),
  );
}

function route(path: string, upstream: string, rateLimits: string, failMode: 'open' | 'closed'): string {
  return `  - route: ${path}
    resource: http://127.0.0.1${path}
    upstream: ${upstream}
    authentication: { methods: [apiKey] }
    default: allow
    rateLimits: ${rateLimits}
    failMode: ${failMode}
`;
}

function identities(): string {
  return `identities:
  apiKeys: [{ id: agent, hash: "${agent.hash}", scopes: [t] }]
`;
}

/** Waits until `/readyz` says Redis is reachable (routes with `failMode: closed` need it). */
async function ready(gateway: TestGateway): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const answer = await fetch(`${gateway.adminUrl}/readyz`);
    await answer.text();
    if (answer.status === 200) return;
    if (Date.now() > deadline) throw new Error('the gateway never became ready (Redis not connected)');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function redisErrors(gateway: TestGateway): Promise<number> {
  return counterValue(await metricsText(gateway), 'portcullis_redis_errors_total', {});
}

let upstream: Peer;
beforeAll(async () => {
  upstream = await startV2Server({ response: 'json' });
});
afterAll(async () => {
  await upstream?.close();
});

/**
 * A redis-server of the describe block's own, an admin client on it, and a gateway limiting
 * `routes` (built by {@link route}) through it; all stopped after the block.
 */
function withOwnRedis(opts: {
  commandTimeoutMs: number;
  /** Built once the upstream runs (in `beforeAll`). */
  routes: () => string;
  args?: string[];
}): {
  gateway: TestGateway;
  admin: Redis;
} {
  const env = {} as { gateway: TestGateway; admin: Redis; redis: RedisServer };
  beforeAll(async () => {
    env.redis = await startRedis(opts.args === undefined ? {} : { args: opts.args });
    env.admin = new Redis(env.redis.url);
    env.gateway = await startTestGateway({
      policy: `redis: { url: "${env.redis.url}", commandTimeoutMs: ${opts.commandTimeoutMs} }
${identities()}routes:
${opts.routes()}`,
    });
    await ready(env.gateway);
  });
  afterAll(async () => {
    await env.gateway?.close();
    env.admin?.disconnect();
    await env.redis?.stop();
  });
  return env;
}

describe('rate limits in a three-node Redis Cluster', () => {
  let cluster: RedisCluster;
  let one: TestGateway;
  let two: TestGateway;

  beforeAll(async () => {
    cluster = await startRedisCluster(3);
    const nodes = cluster.nodes.map((n) => JSON.stringify(n)).join(', ');
    // `closed`: were Redis not answering (a CROSSSLOT error, a timeout), the calls would be 503s.
    const policy = `redis: { cluster: { nodes: [${nodes}] }, commandTimeoutMs: 1000 }
${identities()}routes:
${route(
  '/c/mcp',
  upstream.url,
  `
      - { per: identity, limit: 10/hour }
      - { per: identity+tool, tools: [echo], limit: 20/hour }
      - { per: client, limit: 100/hour }
      - { per: route, limit: 1000/hour }`,
  'closed',
)}`;
    one = await startTestGateway({ policy });
    two = await startTestGateway({ policy });
    await Promise.all([ready(one), ready(two)]);
  });
  afterAll(async () => {
    await Promise.all([one?.close(), two?.close()]);
    await cluster?.stop();
  });

  it('two gateways allow exactly 10 of 30 parallel calls at 10/hour; every rule lives in one slot', async () => {
    const answers = await settle(
      await Promise.all(
        Array.from({ length: 30 }, (_, i) => call(i % 2 === 0 ? one.url : two.url, '/c/mcp', i)),
      ),
    );
    expect(answers.filter((a) => a.status === 200)).toHaveLength(10);
    expect(answers.filter((a) => a.status === 429)).toHaveLength(20);
    // Each allowed call saw its own place in the shared count.
    expect(
      answers
        .filter((a) => a.status === 200)
        .map((a) => a.remaining)
        .sort((x, y) => (x ?? 0) - (y ?? 0)),
    ).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(await redisErrors(one)).toBe(0);
    expect(await redisErrors(two)).toBe(0);

    // The route's four counters sit together on exactly one of the three masters.
    const held = await Promise.all(
      cluster.servers.map(async (server) => {
        const client = new Redis(server.port, '127.0.0.1');
        try {
          return await client.keys('pc:rl|{/c/mcp}|*');
        } finally {
          client.disconnect();
        }
      }),
    );
    expect(held.map((keys) => keys.length).sort()).toEqual([0, 0, 4]);
  });
});

describe('SCRIPT FLUSH on the server between calls', () => {
  const env = withOwnRedis({
    commandTimeoutMs: 1000,
    routes: () => route('/f/mcp', upstream.url, '[{ per: identity, limit: 10/hour }]', 'closed'),
  });

  const cachedScripts = async () =>
    Number(/number_of_cached_scripts:(\d+)/.exec(await env.admin.info('memory'))?.[1] ?? Number.NaN);

  it('the limiter loads the script again and the counts stay exact', async () => {
    const { gateway, admin } = env;
    const first = await settle([await call(gateway.url, '/f/mcp', 1)]);
    const second = await settle([await call(gateway.url, '/f/mcp', 2)]);
    expect([...first, ...second]).toEqual([
      { status: 200, remaining: 9 },
      { status: 200, remaining: 8 },
    ]);
    expect(await cachedScripts()).toBeGreaterThanOrEqual(1);

    expect(await admin.script('FLUSH')).toBe('OK');
    expect(await cachedScripts()).toBe(0);
    const after: { status: number; remaining: number | undefined }[] = [];
    for (const id of [3, 4, 5]) after.push(...(await settle([await call(gateway.url, '/f/mcp', id)])));
    expect(after).toEqual([
      { status: 200, remaining: 7 },
      { status: 200, remaining: 6 },
      { status: 200, remaining: 5 },
    ]);
    expect(await cachedScripts()).toBe(1);

    // Again, now with many calls hitting NOSCRIPT at once: 5 left of 10.
    await admin.script('FLUSH');
    const parallel = await settle(
      await Promise.all(Array.from({ length: 12 }, (_, i) => call(gateway.url, '/f/mcp', 10 + i))),
    );
    expect(parallel.filter((a) => a.status === 200).map((a) => a.remaining)).toEqual(
      expect.arrayContaining([0, 1, 2, 3, 4]),
    );
    expect(parallel.filter((a) => a.status === 200)).toHaveLength(5);
    expect(parallel.filter((a) => a.status === 429)).toHaveLength(7);
    // Never the fallback: no 503 on this closed route, no Redis error counted.
    expect(await redisErrors(gateway)).toBe(0);
    const denied = await call(gateway.url, '/f/mcp', 99);
    expect(denied.status).toBe(429);
    await denied.text();
  });
});

describe('the rate-limit script failing in Redis', () => {
  const env = withOwnRedis({
    commandTimeoutMs: 1000,
    // 100/hour: one call's counter lives 36 s in Redis (at 1000/hour, 3.6 s — less than a loaded
    // CI machine may take before the test looks for it).
    routes: () => route('/s/mcp', upstream.url, '[{ per: identity, limit: 100/hour }]', 'open'),
  });

  it('is 500 internal on a failMode: open route, counted; the upstream sees nothing; never the fallback', async () => {
    const { gateway, admin } = env;
    const warm = await call(gateway.url, '/s/mcp', 1);
    expect(warm.status).toBe(200);
    await warm.text();
    // The counter the call charges now holds a list: the script's GET fails with WRONGTYPE.
    const keys = await admin.keys('pc:rl|*');
    expect(keys).toHaveLength(1);
    await admin.del(keys[0] as string);
    await admin.lpush(keys[0] as string, 'planted');
    const before = await metricsText(gateway);
    const seen = upstream.requests.length;

    const broken = await call(gateway.url, '/s/mcp', 2);
    expect(broken.status).toBe(500);
    expect(await broken.json()).toMatchObject({
      jsonrpc: '2.0',
      error: { code: -32603, data: { reason: 'internal' } },
    });
    expect(upstream.requests.length, 'nothing forwarded').toBe(seen);
    const after = await metricsText(gateway);
    const moved = (name: string, labels: Record<string, string>) =>
      counterValue(after, name, labels) - counterValue(before, name, labels);
    expect(moved('portcullis_internal_errors_total', { where: 'request' })).toBe(1);
    // Not an outage: no Redis error counted, nothing let through on the fallback.
    expect(moved('portcullis_redis_errors_total', {})).toBe(0);
    expect(moved('portcullis_ratelimit_fail_open_total', {})).toBe(0);

    await admin.del(keys[0] as string);
    const healed = await call(gateway.url, '/s/mcp', 3);
    expect(healed.status).toBe(200);
    await healed.text();
  });
});

describe('a Redis stalled by DEBUG SLEEP', () => {
  const env = withOwnRedis({
    args: ['--enable-debug-command', 'local'],
    commandTimeoutMs: 100,
    routes: () =>
      route('/open/mcp', upstream.url, '[{ per: identity, limit: 1000/hour }]', 'open') +
      route('/closed/mcp', upstream.url, '[{ per: identity, limit: 1000/hour }]', 'closed'),
  });

  it('each call answers within about commandTimeoutMs: open serves, closed answers 503; then recovers', async () => {
    const { gateway, admin } = env;
    for (const path of ['/open/mcp', '/closed/mcp']) {
      const warm = await call(gateway.url, path, 1);
      expect(warm.status).toBe(200);
      await warm.text();
    }
    const timeoutsBefore = counterValue(await metricsText(gateway), 'portcullis_redis_errors_total', {
      kind: 'timeout',
    });

    const sleepStarted = performance.now();
    const sleeping = admin.call('DEBUG', 'SLEEP', '1');
    await new Promise((resolve) => setTimeout(resolve, 50));

    const timed = async (path: string, id: number) => {
      const started = performance.now();
      const answer = await call(gateway.url, path, id);
      const body = (await answer.json()) as Record<string, unknown>;
      return { path, answer, body, ms: performance.now() - started };
    };
    const results = await Promise.all([
      ...Array.from({ length: 4 }, (_, i) => timed('/open/mcp', 10 + i)),
      ...Array.from({ length: 4 }, (_, i) => timed('/closed/mcp', 20 + i)),
    ]);
    // One more after the parallel ones: the stalled connection does not make later calls wait longer.
    results.push(await timed('/closed/mcp', 30));
    // Everything above happened while Redis slept (else the 503s below would prove nothing).
    expect(performance.now() - sleepStarted).toBeLessThan(1_000);
    expect((await fetch(`${gateway.adminUrl}/readyz`)).status).toBe(503);

    for (const { path, answer, body, ms } of results) {
      expect(ms, `${path} took ${ms} ms`).toBeLessThan(1_000);
      if (path === '/open/mcp') {
        expect(answer.status, JSON.stringify(body)).toBe(200);
        expect(body).toMatchObject({ result: {} });
      } else {
        expect(answer.status, JSON.stringify(body)).toBe(503);
        expect(answer.headers.get('retry-after')).toBe('1');
        expect(body).toMatchObject({ error: { code: -31094, data: { reason: 'limiter_unavailable' } } });
      }
    }

    expect(await sleeping).toBe('OK');
    // Redis answers again: the closed route serves, the gateway is ready, and it never fell over.
    const status = await untilStatus(() => call(gateway.url, '/closed/mcp', 40), 200, {
      timeoutMs: 5_000,
      everyMs: 100,
    });
    expect(status).toBe(200);
    expect((await fetch(`${gateway.adminUrl}/readyz`)).status).toBe(200);
    expect((await fetch(`${gateway.adminUrl}/healthz`)).status).toBe(200);
    const timeoutsAfter = counterValue(await metricsText(gateway), 'portcullis_redis_errors_total', {
      kind: 'timeout',
    });
    expect(timeoutsAfter - timeoutsBefore).toBeGreaterThanOrEqual(5);
  });
});

describe('a refusal answers the same with Redis as in process', () => {
  let redis: RedisServer;
  let shared: TestGateway;
  let local: TestGateway;

  beforeAll(async () => {
    redis = await startRedis();
    const rules = `
      - { per: identity, limit: 50/hour }
      - { per: identity+tool, tools: [add], limit: 2/hour }`;
    const routes = `${identities()}routes:
${route('/mcp', upstream.url, rules, 'closed')}`;
    shared = await startTestGateway({
      policy: `redis: { url: "${redis.url}", commandTimeoutMs: 1000 }\n${routes}`,
    });
    local = await startTestGateway({ policy: routes });
    await ready(shared);
  });
  afterAll(async () => {
    await Promise.all([shared?.close(), local?.close()]);
    await redis?.stop();
  });

  it('a tool-scoped rule: the same statuses, RateLimit headers and error data', async () => {
    const seen = async (gateway: TestGateway) => {
      const out: unknown[] = [];
      for (const [id, tool] of [
        [1, 'add'],
        [2, 'add'],
        [3, 'add'],
        [4, 'echo'],
      ] as const) {
        const answer = await call(gateway.url, '/mcp', id, tool);
        const body = (await answer.json()) as { error?: { data?: unknown } };
        out.push({
          id,
          status: answer.status,
          policy: answer.headers.get('ratelimit-policy'),
          // The reset (t) and Retry-After are whole seconds on each side's clock: compare the rule
          // and the remaining count exactly.
          ratelimit: answer.headers.get('ratelimit')?.replace(/;t=\d+$/, ''),
          retryAfter: answer.headers.has('retry-after'),
          error: body.error?.data,
        });
      }
      return out;
    };
    const inProcess = await seen(local);
    expect(inProcess[2]).toMatchObject({ status: 429, ratelimit: '"r1";r=0' });
    expect(await seen(shared)).toEqual(inProcess);
  });
});
