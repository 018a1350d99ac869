import type { Decision, Rate } from './limiter.js';

/**
 * GCRA (generic cell rate algorithm): one number per key, the theoretical arrival time (TAT).
 * Each event pushes the TAT by the emission interval T = period / limit; an event is allowed when
 * the pushed TAT is at most `burst × T` ahead of now. Returns the new TAT when allowed.
 */
export function gcra(tat: number | undefined, rate: Rate, now: number): Decision & { readonly tat: number } {
  const interval = rate.periodMs / rate.limit;
  const tolerance = interval * (rate.burst ?? rate.limit);
  const next = Math.max(tat ?? now, now) + interval;
  if (next - now <= tolerance) return { allowed: true, retryAfterSec: 0, tat: next };
  return {
    allowed: false,
    retryAfterSec: Math.max(1, Math.ceil((next - tolerance - now) / 1000)),
    tat: tat ?? now,
  };
}
