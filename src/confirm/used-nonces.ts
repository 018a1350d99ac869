import { randomBytes } from 'node:crypto';

/**
 * Confirmations already taken, so that each is used once (DESIGN.md "human confirmation": the
 * bindings of a `requestState` "do not by themselves guarantee single-use"). With Redis every
 * replica shares them ({@link createRedisUsedNonces}); in process, one replica only. A nonce is
 * kept until its confirmation expires — after that its sealed state is refused as expired
 * anyway — so the store holds at most the confirmations of one timeout.
 */
export interface UsedNonces {
  /**
   * True the first time `nonce` is taken before `expiresAt`; false for every later try; `full`
   * when the store cannot remember another (refused, never forgotten). Rejects when the shared
   * store cannot say (the confirmation is then refused, never taken twice).
   */
  consume(nonce: string, expiresAt: number, now: number): boolean | 'full' | Promise<boolean>;
  /**
   * What a confirmation is sealed with so that it opens only where its nonce is remembered: a
   * random id per process in process (a restart forgets every nonce, so it forgets their
   * confirmations too), one name for every replica sharing Redis.
   */
  readonly scope: string;
}

/** How long past its expiry a nonce is kept in Redis: a replica whose clock runs behind still finds it. */
const CLOCK_SKEW_MS = 60_000;

/** Used nonces in Redis: one `SET NX PX` per yes, so two replicas can never both take one. */
export function createRedisUsedNonces(redis: {
  claimOnce(key: string, ttlMs: number): Promise<boolean>;
}): UsedNonces {
  return {
    scope: 'redis',
    consume: (nonce, expiresAt, now) =>
      redis.claimOnce(`portcullis:confirm:${nonce}`, expiresAt - now + CLOCK_SKEW_MS),
  };
}

/** Live confirmations remembered at most: beyond it a new yes is refused (fail closed), never forgotten. */
const MAX_USED = 100_000;

export function createUsedNonces(max = MAX_USED): UsedNonces {
  // Kept until their confirmation expires (the stage refuses from `expiresAt` on, so an evicted
  // nonce can never be presented again).
  const used = new Map<string, number>();
  const sweep = (now: number) => {
    for (const [old, until] of used) if (until <= now) used.delete(old);
  };
  return {
    scope: `process:${randomBytes(12).toString('base64url')}`,
    consume(nonce, expiresAt, now) {
      if (used.has(nonce)) return false;
      if (used.size >= max) {
        sweep(now);
        if (used.size >= max) return 'full';
      }
      used.set(nonce, expiresAt);
      return true;
    },
  };
}
