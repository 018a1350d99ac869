import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type GcraState, gcra } from '../../../src/ratelimit/gcra.js';
import { parseRate, type Rate } from '../../../src/ratelimit/limiter.js';

/** Runs events at the given instants from an empty state; returns each decision and the final TAT. */
function run(rate: Rate, instants: readonly number[], start?: GcraState) {
  let tat: GcraState | undefined = start;
  const decisions = instants.map((now) => {
    const result = gcra(tat, rate, now);
    tat = result.tat;
    return result;
  });
  return { decisions, tat };
}

const allowedCount = (decisions: readonly { allowed: boolean }[]) =>
  decisions.filter((d) => d.allowed).length;

describe('parseRate', () => {
  it.each([
    ['600/minute', { limit: 600, periodMs: 60_000 }],
    ['1/second', { limit: 1, periodMs: 1_000 }],
    ['20/hour', { limit: 20, periodMs: 3_600_000 }],
  ])('reads %s', (spec, rate) => {
    expect(parseRate(spec)).toEqual(rate);
  });

  it('carries a burst when given', () => {
    expect(parseRate('20/minute', 5)).toEqual({ limit: 20, periodMs: 60_000, burst: 5 });
  });
});

describe('gcra: burst', () => {
  it('allows `limit` events at one instant when no burst is set, and refuses the next', () => {
    const { decisions } = run(parseRate('10/second'), Array(11).fill(0));
    expect(decisions.map((d) => d.allowed)).toEqual([...Array(10).fill(true), false]);
  });

  it('allows exactly `burst` events at one instant when burst is set', () => {
    const { decisions } = run(parseRate('20/minute', 5), Array(8).fill(1_000));
    expect(allowedCount(decisions)).toBe(5);
    expect(decisions[5]?.allowed).toBe(false);
  });

  it('allows a burst larger than the limit', () => {
    const { decisions } = run(parseRate('2/second', 6), Array(7).fill(0));
    expect(allowedCount(decisions)).toBe(6);
  });

  it('allows a burst of one event at a time at the steady rate', () => {
    const rate = parseRate('2/second', 1);
    expect(run(rate, [0, 0]).decisions.map((d) => d.allowed)).toEqual([true, false]);
    expect(run(rate, [0, 499]).decisions.map((d) => d.allowed)).toEqual([true, false]);
    expect(run(rate, [0, 500, 1_000, 1_500]).decisions.every((d) => d.allowed)).toBe(true);
  });

  it('refills one event per emission interval after a burst', () => {
    const rate = parseRate('3/second');
    const { tat } = run(rate, [0, 0, 0]);
    expect(gcra(tat, rate, 0).allowed).toBe(false);
    expect(gcra(tat, rate, 332).allowed).toBe(false);
    expect(gcra(tat, rate, 334).allowed).toBe(true);
  });

  it('does not bank more than the burst while idle', () => {
    const rate = parseRate('4/second');
    const { tat } = run(rate, [0]);
    // An hour of silence still allows only `burst` at once.
    const later = run(rate, Array(6).fill(3_600_000), tat);
    expect(allowedCount(later.decisions)).toBe(4);
  });
});

/**
 * Production calls gcra with `Date.now()` (about 1.8e12 ms), where a double's spacing is 2^-12 ms:
 * `now + interval - now` is not `interval` when the interval is not a whole number of milliseconds
 * (6/second, 17/minute, 7/hour…), and the comparison against `burst × interval` must not turn
 * that rounding into a refusal.
 */
describe('gcra: at real clock values (Date.now() scale)', () => {
  const NOW = Date.parse('2026-05-01T00:00:00Z') + 123;

  it.each(['6/second', '7/second', '17/minute', '7/hour', '3/second', '600/minute'])(
    'allows the first event of an idle key with burst 1 (%s)',
    (spec) => {
      const rate = parseRate(spec, 1);
      expect(gcra(undefined, rate, NOW).allowed).toBe(true);
      // …and keeps allowing one per interval.
      const interval = rate.periodMs / rate.limit;
      const instants = Array.from({ length: 5 }, (_, i) => NOW + i * Math.ceil(interval));
      expect(allowedCount(run(rate, instants).decisions)).toBe(5);
    },
  );

  it.each(['6/second', '7/second', '11/second', '17/minute', '7/hour', '3/second', '20/minute'])(
    'allows a full burst of %s at one instant',
    (spec) => {
      const rate = parseRate(spec);
      const { decisions } = run(rate, Array(rate.limit + 1).fill(NOW));
      expect(allowedCount(decisions)).toBe(rate.limit);
    },
  );
});

describe('gcra: retryAfter', () => {
  it('is 0 when allowed', () => {
    expect(gcra(undefined, parseRate('1/minute'), 0)).toMatchObject({ allowed: true, retryAfterSec: 0 });
  });

  it('is the whole seconds until the next event would be allowed', () => {
    const rate = parseRate('1/minute');
    const { tat } = run(rate, [0]);
    expect(gcra(tat, rate, 0)).toMatchObject({ allowed: false, retryAfterSec: 60 });
    expect(gcra(tat, rate, 30_000)).toMatchObject({ allowed: false, retryAfterSec: 30 });
    expect(gcra(tat, rate, 59_001)).toMatchObject({ allowed: false, retryAfterSec: 1 });
    expect(gcra(tat, rate, 60_000).allowed).toBe(true);
  });

  it('rounds up and is at least one second', () => {
    const rate = parseRate('10/second');
    const { tat } = run(rate, Array(10).fill(0));
    const refused = gcra(tat, rate, 0);
    expect(refused).toMatchObject({ allowed: false, retryAfterSec: 1 });
    const hourly = parseRate('2/hour', 1);
    const after = run(hourly, [0]).tat;
    // 30 minutes to wait, minus 1.5 s already waited: 1798.5 s rounds up to 1799.
    expect(gcra(after, hourly, 1_500).retryAfterSec).toBe(1_799);
  });

  it('grows with the backlog of a burst', () => {
    const rate = parseRate('6/minute', 3);
    const { tat } = run(rate, [0, 0, 0]);
    expect(gcra(tat, rate, 0).retryAfterSec).toBe(10);
  });
});

describe('gcra: a refused event consumes nothing', () => {
  it('returns the TAT it was given when it refuses', () => {
    const rate = parseRate('2/second');
    const { tat } = run(rate, [0, 0]);
    const refused = gcra(tat, rate, 10);
    expect(refused.allowed).toBe(false);
    expect(refused.tat).toBe(tat);
  });

  it('lets a client hammering while refused back in as soon as the interval passes', () => {
    const rate = parseRate('1/second');
    // 1000 refused attempts in the first second do not push the next allowed event out.
    const instants = [0, ...Array.from({ length: 1_000 }, (_, i) => i), 1_000];
    const { decisions } = run(rate, instants);
    expect(decisions[0]?.allowed).toBe(true);
    expect(decisions.slice(1, -1).every((d) => !d.allowed)).toBe(true);
    expect(decisions.at(-1)?.allowed).toBe(true);
  });
});

describe('gcra: properties', () => {
  const rates = fc.record(
    {
      limit: fc.integer({ min: 1, max: 50 }),
      periodMs: fc.constantFrom(1_000, 60_000, 3_600_000),
      burst: fc.integer({ min: 1, max: 20 }),
    },
    { requiredKeys: ['limit', 'periodMs'] },
  );
  /** Where the clock starts: zero, or a real `Date.now()` value (where doubles are coarser). */
  const origins = fc.oneof(fc.constant(0), fc.integer({ min: 1.6e12, max: 2.1e12 }));
  /** Arrival instants: non-decreasing, with repeats (many events at one instant). */
  const arrivals = (periodMs: number) =>
    fc
      .tuple(
        origins,
        fc.array(fc.integer({ min: 0, max: Math.floor(periodMs / 4) }), { minLength: 1, maxLength: 150 }),
      )
      .map(([origin, gaps]) => {
        let now = origin;
        return gaps.map((gap) => {
          // Half the gaps are zero: bursts at one instant.
          now += gap % 2 === 0 ? 0 : gap;
          return now;
        });
      });
  const scenario = rates.chain((rate) => fc.tuple(fc.constant(rate), arrivals(rate.periodMs)));

  it('never allows more than `burst` events at one instant', () => {
    fc.assert(
      fc.property(scenario, ([rate, instants]) => {
        const burst = rate.burst ?? rate.limit;
        const { decisions } = run(rate, instants);
        const perInstant = new Map<number, number>();
        instants.forEach((now, i) => {
          if (decisions[i]?.allowed) perInstant.set(now, (perInstant.get(now) ?? 0) + 1);
        });
        return [...perInstant.values()].every((count) => count <= burst);
      }),
      { numRuns: 300 },
    );
  });

  it('never allows more than burst + elapsed / interval events in any window (the long-run rate)', () => {
    fc.assert(
      fc.property(scenario, ([rate, instants]) => {
        const burst = rate.burst ?? rate.limit;
        const interval = rate.periodMs / rate.limit;
        const { decisions } = run(rate, instants);
        const allowed = instants.filter((_, i) => decisions[i]?.allowed);
        for (let i = 0; i < allowed.length; i++) {
          for (let j = i; j < allowed.length; j++) {
            const count = j - i + 1;
            const elapsed = (allowed[j] as number) - (allowed[i] as number);
            if (count > burst + elapsed / interval + 1e-9) return false;
          }
        }
        return true;
      }),
      { numRuns: 200 },
    );
  });

  it('allows the full rate to a client that keeps asking (no starvation)', () => {
    fc.assert(
      fc.property(rates, origins, fc.integer({ min: 1, max: 5 }), (rate, origin, periods) => {
        const burst = rate.burst ?? rate.limit;
        const interval = rate.periodMs / rate.limit;
        // One attempt every quarter interval (whole milliseconds, as clocks give) for `periods` periods.
        const step = Math.max(1, Math.floor(interval / 4));
        const horizon = periods * rate.periodMs;
        const instants: number[] = [];
        for (let t = 0; t <= horizon; t += step) instants.push(origin + t);
        const count = allowedCount(run(rate, instants).decisions);
        const ceiling = burst + horizon / interval;
        // At most the GCRA bound; at least the burst and then one event per interval, each late by
        // at most one step of sampling.
        const floor = Math.min(instants.length, burst + Math.floor(horizon / (interval + step)));
        return count <= ceiling + 1e-9 && count >= floor - 1;
      }),
      { numRuns: 100 },
    );
  });

  it('a refused event is allowed after exactly its Retry-After, and refused TATs never move', () => {
    fc.assert(
      fc.property(scenario, ([rate, instants]) => {
        let tat: GcraState | undefined;
        for (const now of instants) {
          const result = gcra(tat, rate, now);
          if (!result.allowed) {
            if (result.tat !== tat || result.retryAfterSec < 1) return false;
            if (!gcra(tat, rate, now + result.retryAfterSec * 1000).allowed) return false;
          }
          tat = result.tat;
        }
        return true;
      }),
      { numRuns: 300 },
    );
  });
});
