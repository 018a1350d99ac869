/**
 * Concurrency caps, per replica (DESIGN.md step 7): requests in flight per identity and in total,
 * and open SSE streams per identity. A slot is taken when a request is admitted and given back
 * exactly once, when its answer ends — however it ends.
 */
export interface ConcurrencyLimits {
  readonly maxConcurrentPerIdentity: number;
  readonly maxStreamsPerIdentity: number;
  readonly maxConcurrentTotal: number;
}

export type Release = () => void;

export interface Concurrency {
  /** A request slot for `identity`, or `undefined` when a cap is reached. */
  request(identity: string): Release | undefined;
  /** A stream slot for `identity`, or `undefined` when its cap is reached. */
  stream(identity: string): Release | undefined;
}

export function createConcurrency(limits: ConcurrencyLimits): Concurrency {
  let total = 0;
  const requests = new Map<string, number>();
  const streams = new Map<string, number>();
  const take = (
    counts: Map<string, number>,
    key: string,
    cap: number,
    onRelease: () => void,
  ): Release | undefined => {
    const held = counts.get(key) ?? 0;
    if (held >= cap) return undefined;
    counts.set(key, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (counts.get(key) ?? 1) - 1;
      if (left === 0) counts.delete(key);
      else counts.set(key, left);
      onRelease();
    };
  };
  return {
    request(identity) {
      if (total >= limits.maxConcurrentTotal) return undefined;
      const release = take(requests, identity, limits.maxConcurrentPerIdentity, () => {
        total--;
      });
      if (release !== undefined) total++;
      return release;
    },
    stream(identity) {
      return take(streams, identity, limits.maxStreamsPerIdentity, () => undefined);
    },
  };
}
