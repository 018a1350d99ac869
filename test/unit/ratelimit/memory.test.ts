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

  it('when full of live keys, forgets none of them: a new key is not recorded and the answer is degraded', () => {
    const limiter = createMemoryLimiter({ maxKeys: 3 });
    for (const key of ['k1', 'k2', 'k3']) expect(limiter.consume(key, perMinute, 0).allowed).toBe(true);
    expect(limiter.consume('k4', perMinute, 1)).toEqual({ allowed: true, retryAfterSec: 0, degraded: true });
    // Every live key is still limited; k4 was never recorded.
    for (const key of ['k1', 'k2', 'k3']) expect(limiter.peek(key, perMinute, 2).allowed, key).toBe(false);
    expect(limiter.peek('k4', perMinute, 2).allowed).toBe(true);
  });

  it('a caller cannot reset its own limit by minting keys (the attack on insertion-order eviction)', () => {
    const maxKeys = 50;
    const limiter = createMemoryLimiter({ maxKeys });
    expect(limiter.consume('victim-of-itself', perMinute, 0).allowed).toBe(true);
    expect(limiter.consume('victim-of-itself', perMinute, 0).allowed).toBe(false);
    let degraded = 0;
    for (let i = 0; i < 2_000; i++) {
      if (limiter.consume(`minted-${i}`, perMinute, 1 + i).degraded === true) degraded++;
    }
    // Its own limit survived the flood; the flood beyond the bound was reported, not recorded.
    expect(limiter.consume('victim-of-itself', perMinute, 2_001).allowed).toBe(false);
    expect(degraded).toBe(2_000 - (maxKeys - 1));
  });

  it('frees room as state decays: once the TAT has passed, new keys are recorded again', () => {
    const limiter = createMemoryLimiter({ maxKeys: 2 });
    expect(limiter.consume('a', perSecond, 0).allowed).toBe(true); // TAT 250 ms
    expect(limiter.consume('b', perSecond, 0).allowed).toBe(true);
    expect(limiter.consume('c', perSecond, 100).degraded).toBe(true);
    // Decayed at 250 ms, swept at most once a second: by 1.1 s both are gone and `c` fits.
    expect(limiter.consume('c', perSecond, 1_100)).toEqual({ allowed: true, retryAfterSec: 0 });
  });

  it('reports a full table through onFull, at most once per second', () => {
    let full = 0;
    const limiter = createMemoryLimiter({ maxKeys: 1, onFull: () => full++ });
    limiter.consume('a', perMinute, 0);
    for (let i = 0; i < 100; i++) limiter.consume(`x${i}`, perMinute, i);
    expect(full).toBe(1);
    limiter.consume('y', perMinute, 1_500);
    expect(full).toBe(2);
  });

  it('keeps a key it refuses: a refused event never evicts anything', () => {
    const limiter = createMemoryLimiter({ maxKeys: 2 });
    expect(limiter.consume('a', perMinute, 0).allowed).toBe(true);
    expect(limiter.consume('b', perMinute, 0).allowed).toBe(true);
    for (let i = 0; i < 10; i++) expect(limiter.consume('b', perMinute, 1).allowed).toBe(false);
    expect(limiter.peek('a', perMinute, 2).allowed).toBe(false);
    expect(limiter.peek('b', perMinute, 2).allowed).toBe(false);
  });

  it('re-consuming a remembered key at the bound keeps its count, undegraded', () => {
    const limiter = createMemoryLimiter({ maxKeys: 2 });
    const rate = parseRate('3/minute');
    expect(limiter.consume('a', rate, 0).allowed).toBe(true);
    expect(limiter.consume('b', rate, 0).allowed).toBe(true);
    expect(limiter.consume('a', rate, 0)).toEqual({ allowed: true, retryAfterSec: 0 });
    expect(limiter.consume('a', rate, 0).allowed).toBe(true);
    expect(limiter.consume('a', rate, 0).allowed).toBe(false);
  });

  it('consumeAll at the bound: charges the keys it holds, marks the call degraded for the one it cannot', () => {
    const limiter = createMemoryLimiter({ maxKeys: 1 });
    const own = { key: 'identity', rate: parseRate('3/minute') };
    expect(limiter.consumeAll([own], 0).degraded).toBeUndefined();
    const verdict = limiter.consumeAll([own, { key: 'identity+new-tool', rate: perMinute }], 1);
    expect(verdict).toMatchObject({ allowed: true, degraded: true });
    // The identity's own counter was charged by the degraded call too.
    expect(limiter.consumeAll([own], 2).allowed).toBe(true);
    expect(limiter.consumeAll([own], 3).allowed).toBe(false);
  });

  it('defaults to a bound of 100 000 keys', () => {
    const limiter = createMemoryLimiter();
    for (let i = 0; i < 100_000; i++) limiter.consume(`k${i}`, perMinute, 0);
    expect(limiter.consume('one-more', perMinute, 0).degraded).toBe(true);
    expect(limiter.peek('k0', perMinute, 0).allowed).toBe(false);
    expect(limiter.peek('k99999', perMinute, 0).allowed).toBe(false);
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
