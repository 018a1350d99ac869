import { expired, type GcraState, gcra, headroom } from './gcra.js';
import type { Decision, Limiter, MultiDecision, Rate } from './limiter.js';

/** The in-process limiter answers synchronously. */
export interface MemoryLimiter extends Limiter {
  peek(key: string, rate: Rate, now?: number): Decision;
  consume(key: string, rate: Rate, now?: number): Decision;
  consumeAll(charges: Parameters<Limiter['consumeAll']>[0], now?: number): MultiDecision;
}

/** At most one sweep for decayed keys per this many ms: a full table must not cost O(n) per request. */
const SWEEP_INTERVAL_MS = 1_000;

/**
 * The in-process limiter (one replica, or the fallback while Redis is down). Memory is bounded by
 * `maxKeys` (default 100 000), and a **live limit is never forgotten**: only state that has fully
 * decayed (its TAT has passed, so it carries no information) is ever dropped. Forgetting live
 * state instead — evicting the oldest key — would let a caller reset its own limit by minting
 * fresh keys (new tool names, new addresses) until its own key was pushed out.
 *
 * When the table is full of live keys, a charge to a key it does not hold yet cannot be recorded:
 * the decision is then marked `degraded`, exactly as when Redis cannot answer, so the route's
 * `failMode` decides (closed → 503 `limiter_unavailable`; open → let through and counted).
 * Keys already held keep being counted exactly.
 */
export function createMemoryLimiter(
  opts: {
    readonly maxKeys?: number;
    /** Called (at most once per sweep interval) when a new key finds the table full of live keys. */
    readonly onFull?: () => void;
  } = {},
): MemoryLimiter {
  const maxKeys = opts.maxKeys ?? 100_000;
  const tats = new Map<string, GcraState>();
  let sweptAt = Number.NEGATIVE_INFINITY;
  let reportedAt = Number.NEGATIVE_INFINITY;
  /** Whether a new key fits: decayed keys are swept out first (at most once a second). */
  const roomFor = (now: number): boolean => {
    if (tats.size < maxKeys) return true;
    if (now - sweptAt >= SWEEP_INTERVAL_MS || now < sweptAt) {
      sweptAt = now;
      for (const [key, tat] of tats) if (expired(tat, now)) tats.delete(key);
    }
    if (tats.size < maxKeys) return true;
    if (now - reportedAt >= SWEEP_INTERVAL_MS || now < reportedAt) {
      reportedAt = now;
      opts.onFull?.();
    }
    return false;
  };
  /** Writes a key's new state; `false` when it is new and there is no room (nothing written). */
  const store = (key: string, tat: GcraState, now: number): boolean => {
    if (!tats.has(key) && !roomFor(now)) return false;
    tats.set(key, tat);
    return true;
  };
  return {
    peek(key, rate, now = Date.now()) {
      const { allowed, retryAfterSec } = gcra(tats.get(key), rate, now);
      return { allowed, retryAfterSec };
    },
    consumeAll(charges, now = Date.now()) {
      const count = charges.length;
      // A working copy per key, so a key charged twice in one call counts twice.
      const working = new Map<string, GcraState>();
      const before: (GcraState | undefined)[] = new Array(count);
      const results: ReturnType<typeof gcra>[] = new Array(count);
      let allowed = true;
      let retryAfterSec = 0;
      for (let i = 0; i < count; i++) {
        const charge = charges[i] as (typeof charges)[number];
        const state = working.get(charge.key) ?? tats.get(charge.key);
        const result = gcra(state, charge.rate, now);
        before[i] = state;
        results[i] = result;
        if (result.allowed) working.set(charge.key, result.tat);
        else allowed = false;
        if (result.retryAfterSec > retryAfterSec) retryAfterSec = result.retryAfterSec;
      }
      let degraded = false;
      if (allowed) {
        // Every key that fits is charged even when one does not: under `failMode: open` the call
        // goes through, and the caller's existing counters must still count it.
        for (const [key, tat] of working) if (!store(key, tat, now)) degraded = true;
      }
      // Refused: nothing was written; each counter reports how it stands (0 where it refused).
      const remaining: number[] = new Array(count);
      const resetSec: number[] = new Array(count);
      for (let i = 0; i < count; i++) {
        const charge = charges[i] as (typeof charges)[number];
        const result = results[i] as ReturnType<typeof gcra>;
        const state = allowed ? result.tat : before[i];
        const room =
          state === undefined
            ? { remaining: charge.rate.burst ?? charge.rate.limit, resetSec: 0 }
            : headroom(state, charge.rate, now);
        remaining[i] = result.allowed ? room.remaining : 0;
        resetSec[i] = room.resetSec;
      }
      return degraded
        ? { allowed, retryAfterSec, remaining, resetSec, degraded }
        : { allowed, retryAfterSec, remaining, resetSec };
    },
    consume(key, rate, now = Date.now()) {
      const result = gcra(tats.get(key), rate, now);
      if (result.allowed && !store(key, result.tat, now))
        return { allowed: true, retryAfterSec: 0, degraded: true };
      return { allowed: result.allowed, retryAfterSec: result.retryAfterSec };
    },
  };
}
