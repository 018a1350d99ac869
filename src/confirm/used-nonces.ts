/**
 * Confirmations already taken, so that each is used once (DESIGN.md "human confirmation": the
 * bindings of a `requestState` "do not by themselves guarantee single-use"). With Redis every
 * replica shares them ({@link createRedisUsedNonces}); in process, one replica only. A nonce is
 * kept until its confirmation expires — after that its sealed state is refused as expired
 * anyway — so the store holds at most the confirmations of one timeout.
 */
export interface UsedNonces {
  /**
   * True the first time `nonce` is taken before `expiresAt`; false for every later try. Rejects
   * when the shared store cannot say (the confirmation is then refused, never taken twice).
   */
  consume(nonce: string, expiresAt: number, now: number): boolean | Promise<boolean>;
}

/** Used nonces in Redis: one `SET NX PX` per yes, so two replicas can never both take one. */
export function createRedisUsedNonces(redis: {
  claimOnce(key: string, ttlMs: number): Promise<boolean>;
}): UsedNonces {
  return {
    consume: (nonce, expiresAt, now) => redis.claimOnce(`portcullis:confirm:${nonce}`, expiresAt - now),
  };
}

/** Live confirmations remembered at most: beyond it a new yes is refused (fail closed), never forgotten. */
const MAX_USED = 100_000;

export function createUsedNonces(max = MAX_USED): UsedNonces {
  // Insertion order is expiry order (one timeout for all): expired entries leave from the front.
  const used = new Map<string, number>();
  return {
    consume(nonce, expiresAt, now) {
      for (const [old, until] of used) {
        if (until > now) break;
        used.delete(old);
      }
      if (used.has(nonce) || used.size >= max) return false;
      used.set(nonce, expiresAt);
      return true;
    },
  };
}
