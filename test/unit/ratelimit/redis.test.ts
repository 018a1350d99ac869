/**
 * `createRedisLimiter` against a real redis-server: GCRA in one Lua script gives the same answers
 * as the in-process limiter for the same calls at (nearly) the same times; `consumeAll` charges
 * every counter or none; `peek` consumes nothing (authentication-failure damping). Every decision
 * here must come from Redis itself: the fallback answering would be a failure (`onError`).
 */
import fc from 'fast-check';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Charge, type Decision, parseRate, type Rate } from '../../../src/ratelimit/limiter.js';
import { createMemoryLimiter } from '../../../src/ratelimit/memory.js';
import { createRedisLimiter, type RedisLimiter, slotGroup } from '../../../src/ratelimit/redis.js';
import { type RedisServer, startRedis, untilHealthy } from '../../support/redis.js';

let redis: RedisServer;
let limiter: RedisLimiter;
let admin: Redis;
const errors: string[] = [];
let counter = 0;
/** A key no other test (or property run) touches. */
const fresh = (name: string) => `pc:test:{t${++counter}}:${name}`;

beforeAll(async () => {
  redis = await startRedis();
  limiter = createRedisLimiter(
    { url: redis.url, commandTimeoutMs: 2_000 },
    { fallback: createMemoryLimiter(), logger: pino({ level: 'silent' }), onError: (k) => errors.push(k) },
  );
  admin = new Redis(redis.url);
  await untilHealthy(limiter);
});
afterAll(async () => {
  await limiter?.close();
  admin?.disconnect();
  await redis?.stop();
});
afterEach(() => {
  expect(errors, 'every answer must come from Redis, not the fallback').toEqual([]);
});

/** Retry-After and reset are whole seconds computed from each side's own clock reading. */
function closeTo(actual: number, expected: number): boolean {
  return Math.abs(actual - expected) <= 1;
}

describe('createRedisLimiter: consume and peek', () => {
  it('allows the burst, then refuses with Retry-After; a refused event consumes nothing', async () => {
    const rate = parseRate('4/minute', 2); // one event per 15 s, two at once
    const key = fresh('a');
    const memory = createMemoryLimiter();
    const decisions: Decision[] = [];
    for (let i = 0; i < 2; i++) decisions.push(await limiter.consume(key, rate));
    const state = await admin.get(key);
    expect(state).toMatch(/^\d+,\d+(\.\d+)?(e[+-]?\d+)?$/);
    for (let i = 0; i < 3; i++) decisions.push(await limiter.consume(key, rate));
    expect(await admin.get(key), 'refusals must not write').toBe(state);
    const now = Date.now();
    const expected = Array.from({ length: 5 }, () => memory.consume(key, rate, now));
    expect(decisions).toEqual(expected);
    expect(decisions.map((d) => [d.allowed, d.retryAfterSec])).toEqual([
      [true, 0],
      [true, 0],
      [false, 15],
      [false, 15],
      [false, 15],
    ]);
    // The key expires once its TAT has passed (plus a second): state never outlives its meaning.
    const ttl = await admin.pttl(key);
    expect(ttl).toBeGreaterThan(29_000);
    expect(ttl).toBeLessThanOrEqual(31_000);
  });

  it('damping: peek consumes nothing, then agrees with consume once the budget is spent', async () => {
    const rate = parseRate('20/minute'); // authFailures' default
    const key = fresh('auth:203.0.113.7');
    for (let i = 0; i < 30; i++)
      expect(await limiter.peek(key, rate)).toEqual({ allowed: true, retryAfterSec: 0 });
    expect(await admin.exists(key), 'peek must write nothing').toBe(0);
    for (let i = 0; i < 20; i++) {
      expect(await limiter.peek(key, rate)).toEqual({ allowed: true, retryAfterSec: 0 });
      expect(await limiter.consume(key, rate)).toEqual({ allowed: true, retryAfterSec: 0 });
    }
    const spent = await admin.get(key);
    const peeked = await limiter.peek(key, rate);
    expect(peeked).toEqual({ allowed: false, retryAfterSec: 3 });
    expect(await limiter.consume(key, rate)).toEqual(peeked);
    expect(await limiter.peek(key, rate)).toEqual(peeked);
    expect(await admin.get(key)).toBe(spent);
    // Another address is untouched.
    expect(await limiter.peek(fresh('auth:203.0.113.8'), rate)).toEqual({ allowed: true, retryAfterSec: 0 });
  });

  it('a burst fired all at once allows exactly the burst, also when the interval is not whole ms', async () => {
    // 3600000/7, 60000/11 and 60000/36 ms are not exact in six decimals and round up; 60000/7 and
    // 3600000/13 round down; 6/minute is exact. Whatever the rounding, a burst fired at once (its
    // scripts run within the same millisecond) must allow exactly `burst` events, each reporting
    // its own place in it: burst - 1, …, 1, 0 remaining, never less than 0.
    const rates = [
      parseRate('7/hour'),
      parseRate('11/minute'),
      parseRate('36/minute', 4),
      parseRate('7/minute'),
      parseRate('13/hour'),
      parseRate('6/minute'),
    ];
    const name = (rate: Rate) => `${rate.limit}/${rate.periodMs}ms burst ${rate.burst ?? rate.limit}`;
    const seen: Record<string, number[][]> = {};
    const expected: Record<string, number[][]> = {};
    for (const rate of rates) {
      const burst = rate.burst ?? rate.limit;
      seen[name(rate)] = [];
      expected[name(rate)] = Array.from({ length: 6 }, () => Array.from({ length: burst }, (_, i) => i));
      for (let round = 0; round < 6; round++) {
        const key = fresh('burst');
        const decisions = await Promise.all(
          Array.from({ length: burst + 3 }, () => limiter.consumeAll([{ key, rate }])),
        );
        seen[name(rate)]?.push(
          decisions
            .filter((d) => d.allowed)
            .map((d) => d.remaining[0] ?? Number.NaN)
            .sort((x, y) => x - y),
        );
      }
    }
    expect(seen).toEqual(expected);
  });
});

describe('createRedisLimiter: consumeAll', () => {
  it('charges every counter or none: a refused multi-key call leaves every key unchanged', async () => {
    const a: Charge = { key: fresh('a'), rate: parseRate('2/hour') };
    const b: Charge = { key: fresh('b'), rate: parseRate('100/hour') };
    const c: Charge = { key: fresh('c'), rate: parseRate('10/minute') };
    for (let i = 0; i < 2; i++) {
      const ok = await limiter.consumeAll([a, b]);
      expect(ok.allowed).toBe(true);
      expect(ok.remaining).toEqual([1 - i, 99 - i]);
    }
    const before = await admin.mget(a.key, b.key, c.key);
    expect(before[2]).toBeNull();
    for (const order of [
      [b, a, c],
      [c, b, a],
      [a, c],
    ]) {
      const refused = await limiter.consumeAll(order);
      expect(refused.allowed).toBe(false);
      expect(refused.degraded).toBeUndefined();
      expect(closeTo(refused.retryAfterSec, 1800)).toBe(true);
      expect(await admin.mget(a.key, b.key, c.key), 'nothing may be written').toEqual(before);
    }
    expect(await admin.exists(c.key)).toBe(0);
    // The untouched counters still have exactly what they had.
    const after = await limiter.consumeAll([b, c]);
    expect(after.allowed).toBe(true);
    expect(after.remaining).toEqual([97, 9]);
  });

  it('a refused call reports each counter as it stands, as the in-process limiter does', async () => {
    // What the 429's `RateLimit` header is built from: the counter that refused has 0 left, the
    // others still have what they had (nothing was charged).
    const wide: Charge = { key: fresh('wide'), rate: parseRate('50/hour') };
    const narrow: Charge = { key: fresh('narrow'), rate: parseRate('2/hour') };
    const memory = createMemoryLimiter();
    for (let i = 0; i < 2; i++) {
      expect((await limiter.consumeAll([wide, narrow])).allowed).toBe(true);
      memory.consumeAll([wide, narrow]);
    }
    const fromRedis = await limiter.consumeAll([wide, narrow]);
    const inProcess = memory.consumeAll([wide, narrow]);
    expect(inProcess.allowed).toBe(false);
    expect(fromRedis.allowed).toBe(false);
    expect(fromRedis.remaining).toEqual(inProcess.remaining); // [48, 0]
    // `wide` was not charged: it is back to full in 2 × 72 s, not 3 × 72 s.
    expect(fromRedis.resetSec[0]).toBe(inProcess.resetSec[0]); // 144
  });

  it('a key charged twice in one call (a batch of two requests) counts twice', async () => {
    const rate = parseRate('3/hour');
    const key = fresh('batch');
    const pair = await limiter.consumeAll([
      { key, rate },
      { key, rate },
    ]);
    expect(pair.allowed).toBe(true);
    // Two of three spent: one more event, then refusals.
    expect((await limiter.consume(key, rate)).allowed).toBe(true);
    expect((await limiter.consume(key, rate)).allowed).toBe(false);
  });
});

describe('createRedisLimiter: calls made in one turn share one script run', () => {
  it('each call is decided alone and in order: a refused call charges nothing for the ones after it', async () => {
    const shared: Charge = { key: fresh('shared'), rate: parseRate('3/hour') };
    const spent: Charge = { key: fresh('spent'), rate: parseRate('1/hour') };
    expect((await limiter.consume(spent.key, spent.rate)).allowed).toBe(true);
    const runsBefore = await scriptRuns();
    // Issued in the same turn: one run. The second is refused by `spent`, so `shared` is charged
    // by the first and third only, and the fourth — one more than `shared` allows — is refused.
    const [first, second, third, fourth, fifth] = await Promise.all([
      limiter.consumeAll([shared]),
      limiter.consumeAll([shared, spent]),
      limiter.consumeAll([shared]),
      limiter.consumeAll([shared, shared]),
      limiter.peek(shared.key, shared.rate),
    ]);
    expect([first, second, third, fourth].map((d) => d.allowed)).toEqual([true, false, true, false]);
    // A refused call reports each counter as it stands, exactly as the in-process limiter does.
    const memory = createMemoryLimiter();
    memory.consume(spent.key, spent.rate);
    const inProcess = [[shared], [shared, spent], [shared], [shared, shared]].map((c) =>
      memory.consumeAll(c),
    );
    expect([first, second, third, fourth].map((d) => d.remaining)).toEqual(inProcess.map((d) => d.remaining));
    expect(second.remaining).toEqual([2, 0]);
    expect(fourth.remaining).toEqual([1, 0]);
    expect(fifth).toEqual({ allowed: true, retryAfterSec: 0 });
    expect((await scriptRuns()) - runsBefore, 'five calls in one turn are one script run').toBe(1);
    expect((await limiter.consume(shared.key, shared.rate)).allowed).toBe(true);
    expect((await limiter.consume(shared.key, shared.rate)).allowed).toBe(false);
  });

  it('more calls than one run takes are split and still allow exactly the burst', async () => {
    const rate = parseRate('100/hour');
    const key = fresh('many');
    const decisions = await Promise.all(
      Array.from({ length: 250 }, () => limiter.consumeAll([{ key, rate }])),
    );
    expect(decisions.filter((d) => d.allowed)).toHaveLength(100);
    expect(decisions.slice(100).every((d) => !d.allowed && d.retryAfterSec === 36)).toBe(true);
  });
});

describe('createRedisLimiter: a call with thousands of keys', () => {
  it('runs alone, and the calls beside it in the same turn are answered by Redis as usual', async () => {
    const rate = parseRate('10/hour');
    const many: Charge[] = Array.from({ length: 3_000 }, (_, i) => ({ key: fresh(`many${i}`), rate }));
    const small: Charge = { key: fresh('beside'), rate };
    const runsBefore = await scriptRuns();
    const [big, beside] = await Promise.all([limiter.consumeAll(many), limiter.consumeAll([small])]);
    expect(big.allowed).toBe(true);
    expect(big.degraded).toBeUndefined();
    expect(beside).toMatchObject({ allowed: true, remaining: [9] });
    expect(beside.degraded).toBeUndefined();
    expect((await scriptRuns()) - runsBefore).toBe(2);
  });
});

describe('slotGroup', () => {
  it('groups keys as Redis Cluster hashes them: the first non-empty {tag}, else the whole key', () => {
    expect(slotGroup('pc:rl:{/mcp}:0:alice')).toBe('/mcp');
    expect(slotGroup('pc:rl:{/mcp}:1:{x}')).toBe('/mcp');
    expect(slotGroup('auth:203.0.113.8')).toBe('auth:203.0.113.8');
    expect(slotGroup('a{}b{c}')).toBe('a{}b{c}');
    expect(slotGroup('a{b')).toBe('a{b');
  });
});

/** How many EVALSHA and EVAL commands the server has run (`INFO commandstats`). */
async function scriptRuns(): Promise<number> {
  const stats = await admin.info('commandstats');
  let runs = 0;
  for (const match of stats.matchAll(/^cmdstat_eval(?:sha)?:calls=(\d+)/gm)) runs += Number(match[1]);
  return runs;
}

describe('createRedisLimiter: same answers as createMemoryLimiter', () => {
  const rate = fc
    .record({
      limit: fc.integer({ min: 1, max: 60 }),
      unit: fc.constantFrom('minute', 'hour'),
      burst: fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }),
    })
    .map(({ limit, unit, burst }) => parseRate(`${limit}/${unit}`, burst));
  const key = fc.integer({ min: 0, max: 2 });
  const op = fc.oneof(
    fc.record({ kind: fc.constant('consume' as const), key }),
    fc.record({ kind: fc.constant('peek' as const), key }),
    fc.record({
      kind: fc.constant('all' as const),
      keys: fc.uniqueArray(key, { minLength: 1, maxLength: 3 }),
    }),
  );

  // Redis decides on its own clock (`TIME`), the in-process limiter on `Date.now()` read just after:
  // the two differ by a millisecond or so while every interval here is ≥ 1 s, so `allowed` and
  // `remaining` must match exactly; whole-second Retry-After and reset may straddle a boundary (±1).
  // A refused call's per-counter figures have their own test above.
  it('for random rates, bursts and call sequences made quickly (the clock barely moves)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(rate, rate, rate),
        fc.array(op, { minLength: 1, maxLength: 40 }),
        async (rates, ops) => {
          const memory = createMemoryLimiter();
          const keys = rates.map((r: Rate, i) => ({ key: fresh(`k${i}`), rate: r }));
          for (const [step, o] of ops.entries()) {
            const where = `step ${step} ${JSON.stringify(o)}`;
            if (o.kind === 'all') {
              const charges = o.keys.map((i) => keys[i] as Charge);
              const got = await limiter.consumeAll(charges);
              const want = memory.consumeAll(charges, Date.now());
              expect(got.allowed, where).toBe(want.allowed);
              expect(closeTo(got.retryAfterSec, want.retryAfterSec), where).toBe(true);
              if (want.allowed) {
                expect(got.remaining, where).toEqual(want.remaining);
                got.resetSec.forEach((r, i) => {
                  expect(closeTo(r, want.resetSec[i] ?? Number.NaN), where).toBe(true);
                });
              }
            } else {
              const { key: k, rate: r } = keys[o.key] as Charge;
              const got = await limiter[o.kind](k, r);
              const want = memory[o.kind](k, r, Date.now());
              expect(got.allowed, where).toBe(want.allowed);
              expect(closeTo(got.retryAfterSec, want.retryAfterSec), where).toBe(true);
            }
          }
        },
      ),
      { numRuns: 120 },
    );
  });
});
