import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRate } from '../../../src/ratelimit/limiter.js';
import { createMemoryLimiter } from '../../../src/ratelimit/memory.js';

const perSecond = parseRate('4/second');
const perMinute = parseRate('2/minute', 1);

describe('createMemoryLimiter: semantics', () => {
  it('allows a burst under one key and refuses the next event with its Retry-After', () => {
    const limiter = createMemoryLimiter();
    const decisions = Array.from({ length: 5 }, () => limiter.consume('a', perSecond, 0));
    expect(decisions.map((d) => d.allowed)).toEqual([true, true, true, true, false]);
    expect(decisions[4]?.retryAfterSec).toBe(1);
    expect(decisions[0]).toEqual({ allowed: true, retryAfterSec: 0 });
  });

  it('keeps keys apart', () => {
    const limiter = createMemoryLimiter();
    expect(limiter.consume('a', perMinute, 0).allowed).toBe(true);
    expect(limiter.consume('a', perMinute, 0).allowed).toBe(false);
    expect(limiter.consume('b', perMinute, 0).allowed).toBe(true);
    expect(limiter.consume('a ', perMinute, 0).allowed).toBe(true);
  });

  it('peek consumes nothing', () => {
    const limiter = createMemoryLimiter();
    for (let i = 0; i < 100; i++) expect(limiter.peek('a', perMinute, 0).allowed).toBe(true);
    expect(limiter.consume('a', perMinute, 0).allowed).toBe(true);
    expect(limiter.peek('a', perMinute, 0)).toEqual({ allowed: false, retryAfterSec: 30 });
    expect(limiter.peek('a', perMinute, 30_000).allowed).toBe(true);
    expect(limiter.consume('a', perMinute, 30_000).allowed).toBe(true);
  });

  it('a refused consume consumes nothing', () => {
    const limiter = createMemoryLimiter();
    expect(limiter.consume('a', perMinute, 0).allowed).toBe(true);
    for (let t = 0; t < 30_000; t += 100) expect(limiter.consume('a', perMinute, t).allowed).toBe(false);
    expect(limiter.consume('a', perMinute, 30_000).allowed).toBe(true);
  });

  it('peek and consume agree (property)', () => {
    const event = fc.record({ key: fc.constantFrom('a', 'b', 'c'), dt: fc.integer({ min: 0, max: 400 }) });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 60 }), (events) => {
        const limiter = createMemoryLimiter();
        let now = 0;
        for (const { key, dt } of events) {
          now += dt;
          const peeked = limiter.peek(key, perSecond, now);
          const consumed = limiter.consume(key, perSecond, now);
          if (peeked.allowed !== consumed.allowed || peeked.retryAfterSec !== consumed.retryAfterSec)
            return false;
        }
        return true;
      }),
      { numRuns: 200 },
    );
  });

  it('uses the current time when none is given', () => {
    const limiter = createMemoryLimiter();
    expect(limiter.consume('a', perMinute).allowed).toBe(true);
    expect(limiter.consume('a', perMinute).allowed).toBe(false);
    expect(limiter.peek('a', perMinute).allowed).toBe(false);
  });
});

describe('createMemoryLimiter: pruning and bound', () => {
  it('prunes keys whose TAT has passed before forgetting any live key', () => {
    const limiter = createMemoryLimiter({ maxKeys: 3 });
    expect(limiter.consume('live-1', perMinute, 0).allowed).toBe(true); // TAT 30 s
    expect(limiter.consume('stale', perSecond, 0).allowed).toBe(true); // TAT 250 ms
    expect(limiter.consume('live-2', perMinute, 0).allowed).toBe(true);
    // Full: a new key at 1 s prunes the stale one only; both live keys are still remembered.
    expect(limiter.consume('new', perMinute, 1_000).allowed).toBe(true);
    expect(limiter.consume('live-1', perMinute, 1_000).allowed).toBe(false);
    expect(limiter.consume('live-2', perMinute, 1_000).allowed).toBe(false);
    expect(limiter.consume('new', perMinute, 1_000).allowed).toBe(false);
  });

  it('when full of live keys, forgets the oldest rather than grow', () => {
    const limiter = createMemoryLimiter({ maxKeys: 3 });
    for (const key of ['k1', 'k2', 'k3']) expect(limiter.consume(key, perMinute, 0).allowed).toBe(true);
    expect(limiter.consume('k4', perMinute, 1).allowed).toBe(true);
    // k1 was the oldest: forgotten, so it may act again; the others are still limited.
    expect(limiter.peek('k1', perMinute, 2).allowed).toBe(true);
    for (const key of ['k2', 'k3', 'k4']) expect(limiter.peek(key, perMinute, 2).allowed, key).toBe(false);
  });

  it('remembers at most maxKeys keys however many distinct keys arrive', () => {
    const maxKeys = 50;
    const limiter = createMemoryLimiter({ maxKeys });
    const keys = Array.from({ length: 2_000 }, (_, i) => `203.0.${Math.floor(i / 256)}.${i % 256}`);
    for (const key of keys) expect(limiter.consume(key, perMinute, 0).allowed).toBe(true);
    const remembered = keys.filter((key) => !limiter.peek(key, perMinute, 0).allowed);
    expect(remembered.length).toBeLessThanOrEqual(maxKeys);
    // The most recent keys are the ones remembered.
    expect(remembered.length).toBeGreaterThanOrEqual(maxKeys - 1);
    expect(remembered).toEqual(keys.slice(-remembered.length));
  });

  it('keeps a key it refuses: a refused event never evicts anything', () => {
    const limiter = createMemoryLimiter({ maxKeys: 2 });
    expect(limiter.consume('a', perMinute, 0).allowed).toBe(true);
    expect(limiter.consume('b', perMinute, 0).allowed).toBe(true);
    for (let i = 0; i < 10; i++) expect(limiter.consume('b', perMinute, 1).allowed).toBe(false);
    expect(limiter.peek('a', perMinute, 2).allowed).toBe(false);
    expect(limiter.peek('b', perMinute, 2).allowed).toBe(false);
  });

  it('re-consuming a remembered key at the bound keeps its count', () => {
    const limiter = createMemoryLimiter({ maxKeys: 2 });
    const rate = parseRate('3/minute');
    expect(limiter.consume('a', rate, 0).allowed).toBe(true);
    expect(limiter.consume('b', rate, 0).allowed).toBe(true);
    // Full: consuming `a` again may evict `a` itself, but its count is carried into the new entry.
    expect(limiter.consume('a', rate, 0).allowed).toBe(true);
    expect(limiter.consume('a', rate, 0).allowed).toBe(true);
    expect(limiter.consume('a', rate, 0).allowed).toBe(false);
  });

  it('defaults to a bound of 100 000 keys', () => {
    const limiter = createMemoryLimiter();
    for (let i = 0; i < 100_000; i++) limiter.consume(`k${i}`, perMinute, 0);
    expect(limiter.peek('k0', perMinute, 0).allowed).toBe(false);
    limiter.consume('one-more', perMinute, 0);
    expect(limiter.peek('k0', perMinute, 0).allowed).toBe(true);
    expect(limiter.peek('k1', perMinute, 0).allowed).toBe(false);
  });
});

describe('consumeAll', () => {
  it('charges every counter or none, and reports the headroom left', async () => {
    const { createMemoryLimiter } = await import('../../../src/ratelimit/memory.js');
    const { parseRate } = await import('../../../src/ratelimit/limiter.js');
    const limiter = createMemoryLimiter();
    const wide = { key: 'wide', rate: parseRate('10/minute') };
    const narrow = { key: 'narrow', rate: parseRate('1/minute') };
    const first = limiter.consumeAll([wide, narrow], 0);
    expect(first).toMatchObject({ allowed: true, remaining: [9, 0] });
    const second = limiter.consumeAll([wide, narrow], 1);
    expect(second.allowed).toBe(false);
    expect(second.retryAfterSec).toBe(60);
    // Nothing was charged to `wide` by the refused request.
    expect(limiter.consumeAll([wide], 2)).toMatchObject({ allowed: true, remaining: [8] });
  });
});
