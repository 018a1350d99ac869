import { gcra } from './gcra.js';
import type { Limiter } from './limiter.js';

/**
 * The in-process limiter (one replica, or the fallback while Redis is down). Keys whose TAT has
 * passed carry no information and are pruned, so memory follows the keys active in the last period.
 */
export function createMemoryLimiter(opts: { readonly maxKeys?: number } = {}): Limiter {
  const maxKeys = opts.maxKeys ?? 100_000;
  const tats = new Map<string, number>();
  const prune = (now: number) => {
    for (const [key, tat] of tats) if (tat <= now) tats.delete(key);
    // Still full of live keys (a flood of distinct addresses): forget the oldest rather than grow.
    for (const key of tats.keys()) {
      if (tats.size < maxKeys) break;
      tats.delete(key);
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
        if (tats.size >= maxKeys) prune(now);
        tats.set(key, result.tat);
      }
      return { allowed: result.allowed, retryAfterSec: result.retryAfterSec };
    },
  };
}
