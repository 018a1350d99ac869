import { describe, expect, it } from 'vitest';
import type { RpcMessage } from '../../../src/jsonrpc/parse.js';
import { createConcurrency, opensStream } from '../../../src/ratelimit/concurrency.js';

const LIMITS = { maxConcurrentPerIdentity: 2, maxStreamsPerIdentity: 1, maxConcurrentTotal: 3 };

describe('createConcurrency: request slots', () => {
  it('gives an identity its cap of slots, refuses the next, and gives one again once released', () => {
    const slots = createConcurrency(LIMITS);
    const first = slots.request('alice');
    expect(first).toBeTypeOf('function');
    expect(slots.request('alice')).toBeTypeOf('function');
    expect(slots.request('alice')).toBeUndefined();
    first?.();
    expect(slots.request('alice')).toBeTypeOf('function');
  });

  it('counts each identity apart', () => {
    const slots = createConcurrency(LIMITS);
    slots.request('alice');
    slots.request('alice');
    expect(slots.request('alice')).toBeUndefined();
    expect(slots.request('bob')).toBeTypeOf('function');
  });

  it('refuses everyone once the total is reached, whatever their own count', () => {
    const slots = createConcurrency(LIMITS);
    slots.request('alice');
    slots.request('alice');
    const bob = slots.request('bob');
    expect(bob).toBeTypeOf('function');
    expect(slots.request('carol')).toBeUndefined();
    bob?.();
    expect(slots.request('carol')).toBeTypeOf('function');
  });

  it('releases a slot once however often its release is called', () => {
    const slots = createConcurrency(LIMITS);
    const first = slots.request('alice');
    slots.request('alice');
    first?.();
    first?.();
    first?.();
    // One slot came back, not three: alice holds one and may take exactly one more.
    expect(slots.request('alice')).toBeTypeOf('function');
    expect(slots.request('alice')).toBeUndefined();
  });

  it('does not count a refused request against the total', () => {
    const slots = createConcurrency({ ...LIMITS, maxConcurrentTotal: 2 });
    slots.request('alice');
    slots.request('alice');
    expect(slots.request('alice')).toBeUndefined();
    expect(slots.request('alice')).toBeUndefined();
    expect(slots.request('bob')).toBeUndefined();
  });
});

describe('createConcurrency: stream slots', () => {
  it('caps streams per identity, apart from request slots and from the total', () => {
    const slots = createConcurrency({ ...LIMITS, maxConcurrentTotal: 1 });
    expect(slots.request('alice')).toBeTypeOf('function');
    const stream = slots.stream('alice');
    expect(stream).toBeTypeOf('function');
    expect(slots.stream('alice')).toBeUndefined();
    expect(slots.stream('bob')).toBeTypeOf('function');
    stream?.();
    stream?.();
    expect(slots.stream('alice')).toBeTypeOf('function');
    expect(slots.stream('alice')).toBeUndefined();
  });
});

describe('opensStream', () => {
  const request = (method: string): RpcMessage => ({ kind: 'request', id: 1, method });

  it('is true when any request of the body is subscriptions/listen', () => {
    expect(opensStream([request('tools/list'), request('subscriptions/listen')])).toBe(true);
  });

  it('is false for ordinary requests, notifications and an empty body', () => {
    expect(opensStream([request('tools/call'), request('ping')])).toBe(false);
    expect(opensStream([{ kind: 'notification', method: 'subscriptions/listen' }])).toBe(false);
    expect(opensStream([])).toBe(false);
  });
});
