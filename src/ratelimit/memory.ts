import { expired, type GcraState, gcra, headroom } from './gcra.js';
import type { Decision, Limiter, MultiDecision, Rate } from './limiter.js';

/**
 * The in-process limiter (one replica, or the fallback while Redis is down). Keys whose TAT has
 * passed carry no information and are pruned, so memory follows the keys active in the last period.
 */
/** The in-process limiter answers synchronously. */
export interface MemoryLimiter extends Limiter {
  peek(key: string, rate: Rate, now?: number): Decision;
  consume(key: string, rate: Rate, now?: number): Decision;
  consumeAll(charges: Parameters<Limiter['consumeAll']>[0], now?: number): MultiDecision;
}

export function createMemoryLimiter(opts: { readonly maxKeys?: number } = {}): MemoryLimiter {
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
    consumeAll(charges, now = Date.now()) {
      // A working copy per key, so a key charged twice in one call counts twice.
      const working = new Map<string, GcraState | undefined>();
      const results = charges.map((charge) => {
        const before = working.has(charge.key) ? working.get(charge.key) : tats.get(charge.key);
        const result = gcra(before, charge.rate, now);
        if (result.allowed) working.set(charge.key, result.tat);
        return { charge, before, result };
      });
      const allowed = results.every(({ result }) => result.allowed);
      if (allowed) {
        for (const [key, tat] of working) {
          if (tat === undefined) continue;
          if (tats.size >= maxKeys && !tats.has(key)) makeRoom(now);
          tats.set(key, tat);
        }
      }
      // Refused: nothing was written; each counter reports how it stands (0 where it refused).
      const rooms = results.map(({ charge, before, result }) => {
        const state = allowed ? result.tat : before;
        return state === undefined
          ? { remaining: charge.rate.burst ?? charge.rate.limit, resetSec: 0 }
          : headroom(state, charge.rate, now);
      });
      return {
        allowed,
        retryAfterSec: Math.max(0, ...results.map(({ result }) => result.retryAfterSec)),
        remaining: results.map(({ result }, i) => (result.allowed ? (rooms[i]?.remaining ?? 0) : 0)),
        resetSec: rooms.map((room) => room.resetSec),
      };
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
