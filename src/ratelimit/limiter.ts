/**
 * The limiter interface every counter in the gateway goes through: authentication-failure damping
 * now, the per-route rate limits later. One implementation keeps state in process; the Redis one
 * (rate-limit issue) shares it across replicas with the same semantics.
 */
export interface Rate {
  /** Events allowed per `periodMs`. */
  readonly limit: number;
  readonly periodMs: number;
  /** Events allowed at once above the steady rate; defaults to `limit`. */
  readonly burst?: number;
}

export interface Decision {
  readonly allowed: boolean;
  /** When a refused event would next be allowed, in whole seconds (≥ 1 when refused). */
  readonly retryAfterSec: number;
  /** The shared store could not answer: this came from the in-process fallback. */
  readonly degraded?: boolean;
}

/** The in-process limiter answers at once; the Redis one after a round trip. */
export type MaybePromise<T> = T | Promise<T>;

/** One counter an event is charged to. */
export interface Charge {
  readonly key: string;
  readonly rate: Rate;
}

/** The outcome of charging several counters at once, per counter in order. */
export interface MultiDecision extends Decision {
  /** Events each counter still allows right now (0 where refused). */
  readonly remaining: readonly number[];
  /** Seconds until each counter is back to its full burst. */
  readonly resetSec: readonly number[];
}

/**
 * A shared store that cannot answer is not an error here: the call resolves from the in-process
 * fallback, marked `degraded`, and the route's `failMode` decides. A call rejects only on a fault
 * of the gateway's own (ratelimit/redis-failures.ts `RedisLimiterBroken`: the script failed or
 * answered an unexpected shape) — the caller answers 500 `internal` and lets nothing through.
 */
export interface Limiter {
  /** Whether one more event under `key` would be allowed now; consumes nothing. */
  peek(key: string, rate: Rate, now?: number): MaybePromise<Decision>;
  /** Records one event under `key` if allowed; a refused event consumes nothing. */
  consume(key: string, rate: Rate, now?: number): MaybePromise<Decision>;
  /**
   * Charges every counter, or none: if any refuses, nothing is consumed anywhere (DESIGN.md
   * step 7: all matching rules are checked together, and a refused request consumes nothing).
   */
  consumeAll(charges: readonly Charge[], now?: number): MaybePromise<MultiDecision>;
}

const PERIOD_MS = { second: 1_000, minute: 60_000, hour: 3_600_000 } as const;

/** Parses the policy file's `N/second|minute|hour` (validated at load). */
export function parseRate(spec: string, burst?: number): Rate {
  const [count, unit] = spec.split('/') as [string, keyof typeof PERIOD_MS];
  return { limit: Number(count), periodMs: PERIOD_MS[unit], ...(burst === undefined ? {} : { burst }) };
}
