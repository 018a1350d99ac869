import { expired, type GcraState, gcra } from './gcra.js';
import type { Limiter } from './limiter.js';

/**
 * The in-process limiter (one replica, or the fallback while Redis is down). Keys whose TAT has
 * passed carry no information and are pruned, so memory follows the keys active in the last period.
 */
export function createMemoryLimiter(opts: { readonly maxKeys?: number } = {}): Limiter {
  const maxKeys = opts.maxKeys ?? 100_000;
  const tats = new Map<string, GcraState>();
  let prunedAt = Number.NEGATIVE_INFINITY;
  /** Makes room for one key: expired keys go first (at most one sweep a second), then the oldest. */
  const makeRoom = (now: number) => {
    if (now - prunedAt >= 1_000) {
      prunedAt = now;
      for (const [key, tat] of tats) if (expired(tat, now)) tats.delete(key);
    }
    // Still full of live keys (a flood of distinct addresses): forget the oldest rather than grow.
    while (tats.size >= maxKeys) {
      const oldest = tats.keys().next().value;
      if (oldest === undefined) break;
      tats.delete(oldest);
    }
  };
  return {
    peek(key, rate, now = Date.now()) {
      const { allowed, retryAfterSec } = gcra(tats.get(key), rate, now);
      return { allowed, retryAfterSec };
    },
    consume(key, rate, now = Date.now()) {
      const result = gcra(tats.get(key), rate, now);
      if (result.allowed) {
        if (tats.size >= maxKeys && !tats.has(key)) makeRoom(now);
        tats.set(key, result.tat);
      }
      return { allowed: result.allowed, retryAfterSec: result.retryAfterSec };
    },
  };
}
