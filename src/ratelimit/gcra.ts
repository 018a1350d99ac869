import type { Decision, Rate } from './limiter.js';

/**
 * A key's GCRA state: its theoretical arrival time (TAT) kept as `at + ahead`, where `at` is when
 * it was last updated and `ahead` how far the TAT was ahead of that moment. Holding the small
 * `ahead` instead of the absolute TAT keeps the arithmetic exact: at epoch-millisecond magnitudes a
 * double only resolves ~0.0002 ms, and adding fractional intervals to it would round a burst's
 * last event into a refusal.
 */
export interface GcraState {
  readonly at: number;
  readonly ahead: number;
}

/** Slack far below any interval, far above the rounding of small magnitudes. */
const EPSILON_MS = 1e-6;

/**
 * GCRA (generic cell rate algorithm). Each event pushes the TAT by the emission interval
 * T = period / limit; an event is allowed when the pushed TAT is at most `burst × T` ahead of now.
 * A refused event leaves the state as it was (it consumes nothing).
 */
export function gcra(
  tat: GcraState | undefined,
  rate: Rate,
  now: number,
): Decision & { readonly tat: GcraState } {
  const interval = rate.periodMs / rate.limit;
  const tolerance = interval * (rate.burst ?? rate.limit);
  const ahead = tat === undefined ? 0 : Math.max(tat.ahead - (now - tat.at), 0);
  const next = ahead + interval;
  if (next <= tolerance + EPSILON_MS)
    return { allowed: true, retryAfterSec: 0, tat: { at: now, ahead: next } };
  return {
    allowed: false,
    retryAfterSec: Math.max(1, Math.ceil((next - tolerance - EPSILON_MS) / 1000)),
    tat: tat ?? { at: now, ahead: 0 },
  };
}

/** Events still allowed now, and seconds until the full burst is back, for a state just written. */
export function headroom(tat: GcraState, rate: Rate, now: number): { remaining: number; resetSec: number } {
  const interval = rate.periodMs / rate.limit;
  const tolerance = interval * (rate.burst ?? rate.limit);
  const ahead = Math.max(tat.ahead - (now - tat.at), 0);
  return {
    remaining: Math.max(0, Math.floor((tolerance - ahead + EPSILON_MS) / interval)),
    resetSec: Math.ceil(ahead / 1000),
  };
}

/** When the state carries no information any more: the TAT has passed. */
export function expired(tat: GcraState, now: number): boolean {
  return tat.at + tat.ahead <= now;
}
