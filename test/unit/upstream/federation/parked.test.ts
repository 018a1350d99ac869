import { afterEach, describe, expect, it, vi } from 'vitest';
import { Cancellation } from '../../../../src/cancellation.js';
import type { MemberMessage } from '../../../../src/upstream/federation/answers.js';
import {
  type CallStream,
  nextOutcome,
  type Parked,
  ParkedCalls,
} from '../../../../src/upstream/federation/parked.js';
import { INPUT_WAIT_MS, NO_CLIENT } from '../../../../src/upstream/input-required.js';
import type { UpstreamRequest } from '../../../../src/upstream/upstream.js';

async function* streamOf(...messages: MemberMessage[]): CallStream {
  yield* messages;
  return undefined;
}

function parked(overrides: Partial<Parked> = {}): Parked {
  return {
    request: {} as UpstreamRequest,
    link: { version: '2025-11-25', id: 's', translate: 'toLegacy' },
    callId: 1,
    stream: streamOf(),
    cancellation: new Cancellation(),
    capabilities: new Set(['elicitation']),
    identity: 'apiKey:a',
    server: 'legacy',
    asked: 7,
    key: 'portcullis-1',
    ...overrides,
  };
}

afterEach(() => vi.useRealTimers());

describe('parked calls', () => {
  it('resume only for their identity, on their server, with the answer asked for, once', () => {
    const expired = vi.fn();
    const calls = new ParkedCalls(expired);
    const state = calls.park(parked());
    const answer = { 'portcullis-1': { action: 'accept' } };
    expect(calls.take(state, 'apiKey:b', 'legacy', answer)).toBeUndefined();
    expect(calls.take(state, 'apiKey:a', 'other', answer)).toBeUndefined();
    expect(calls.take(state, 'apiKey:a', 'legacy', { 'portcullis-2': {} })).toBeUndefined();
    expect(calls.take(state, 'apiKey:a', 'legacy', { 'portcullis-1': 'yes' })).toBeUndefined();
    expect(calls.take('forged', 'apiKey:a', 'legacy', answer)).toBeUndefined();
    expect(calls.take(state, 'apiKey:a', 'legacy', answer)?.input).toEqual({ action: 'accept' });
    expect(calls.take(state, 'apiKey:a', 'legacy', answer)).toBeUndefined();
    expect(expired).not.toHaveBeenCalled();
  });

  it('expire when no retry comes in time, and at shutdown', () => {
    vi.useFakeTimers();
    const expired = vi.fn();
    const calls = new ParkedCalls(expired);
    const late = parked({ key: 'portcullis-2' });
    const state = calls.park(late);
    vi.advanceTimersByTime(INPUT_WAIT_MS - 1);
    expect(expired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(expired).toHaveBeenCalledWith(late);
    expect(calls.take(state, 'apiKey:a', 'legacy', { 'portcullis-2': {} })).toBeUndefined();
    const left = parked();
    calls.park(left);
    calls.close();
    expect(expired).toHaveBeenLastCalledWith(left);
  });
});

describe('a 2025-era call stream read for a 2026-07-28 client', () => {
  it('asks the client what it declared it can answer; answers the rest for it; skips others’ answers', async () => {
    const replies: MemberMessage[] = [];
    const stream = streamOf(
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1 } },
      { jsonrpc: '2.0', id: 9, result: {} },
      { jsonrpc: '2.0', id: 3, method: 'sampling/createMessage', params: {} },
      { jsonrpc: '2.0', id: 4, method: 'elicitation/create', params: { message: 'Name?' } },
      { jsonrpc: '2.0', id: 1, result: { content: [] } },
    );
    const capabilities = new Set(['elicitation']);
    const first = await nextOutcome(stream, 1, capabilities, (m) => replies.push(m));
    expect(first).toEqual({
      asks: { jsonrpc: '2.0', id: 4, method: 'elicitation/create', params: { message: 'Name?' } },
    });
    expect(replies).toEqual([{ jsonrpc: '2.0', id: 3, error: NO_CLIENT }]);
    expect(await nextOutcome(stream, 1, capabilities, (m) => replies.push(m))).toEqual({
      response: { jsonrpc: '2.0', id: 1, result: { content: [] } },
    });
    expect(await nextOutcome(stream, 1, capabilities, (m) => replies.push(m))).toEqual({
      unreadable: 'no_answer',
    });
  });
});
