import { STREAM_METHODS } from '../jsonrpc/methods.js';
import type { RpcMessage } from '../jsonrpc/parse.js';

/**
 * Concurrency caps, per replica (DESIGN.md step 8): requests in flight per identity and in total,
 * and open streams (GET streams and `subscriptions/listen` answers) per identity. Every slot is
 * taken before anything is forwarded — never after the upstream ran the call — and given back
 * exactly once, when its answer ends, however it ends.
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

/** Whether a body holds a request whose answer is a long-lived stream. */
export function opensStream(messages: readonly RpcMessage[]): boolean {
  for (const message of messages)
    if (message.kind === 'request' && STREAM_METHODS.has(message.method)) return true;
  return false;
}
