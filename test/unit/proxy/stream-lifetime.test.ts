/**
 * The answer-lifetime mechanism alone (fake timers, fake responses): expiry timers are clamped to
 * the 2^31-1 ms Node can hold and re-armed, so a far expiry neither fires at once nor is lost; one
 * timer serves every held answer; a reload's revalidation closes what no longer authenticates.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Identity } from '../../../src/auth/identity.js';
import {
  type AnswerLifetimeDeps,
  createAnswerLifetimes,
  type HeldAnswer,
  MAX_TIMER_MS,
} from '../../../src/proxy/stream-lifetime.js';

const DAY = 86_400_000;

function fakeAnswer(identity: Partial<Identity> & { key: string }, policy: object = POLICY) {
  const res = new EventEmitter() as EventEmitter & { destroyed: boolean; destroy(): void };
  res.destroyed = false;
  res.destroy = () => {
    if (res.destroyed) return;
    res.destroyed = true;
    res.emit('close');
  };
  const answer: HeldAnswer = {
    req: {} as IncomingMessage,
    res: res as unknown as ServerResponse,
    route: '/mcp',
    policy,
    identity: { subject: identity.key, methods: [], scopes: new Set(), ...identity },
  };
  return { answer, closed: () => res.destroyed };
}
const POLICY = {};

function lifetimes(overrides: Partial<AnswerLifetimeDeps> = {}) {
  const closes: string[] = [];
  const made = createAnswerLifetimes({
    current: (answer) => answer.policy === POLICY,
    reauthenticate: async (answer) => answer.identity,
    onClose: (answer, why) => closes.push(`${answer.identity.key}:${why}`),
    onError: (err) => {
      throw err;
    },
    ...overrides,
  });
  return { made, closes };
}

describe('createAnswerLifetimes: expiry', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('an expiry 40 days away is not fired at once (timer overflow) and still fires at 40 days', () => {
    const { made, closes } = lifetimes();
    const far = fakeAnswer({ key: 'jwt:far', expiresAt: Date.now() + 40 * DAY });
    made.hold(far.answer);
    vi.advanceTimersByTime(1_000);
    expect(far.closed()).toBe(false);
    vi.advanceTimersByTime(MAX_TIMER_MS); // the clamped timer fires and re-arms
    expect(far.closed()).toBe(false);
    vi.advanceTimersByTime(40 * DAY - MAX_TIMER_MS - 1_001);
    expect(far.closed()).toBe(false);
    vi.advanceTimersByTime(2);
    expect(far.closed()).toBe(true);
    expect(closes).toEqual(['jwt:far:expired']);
  });

  it('one timer serves many answers, each closed at its own expiry, the earliest first', () => {
    const { made } = lifetimes();
    const late = fakeAnswer({ key: 'a', expiresAt: Date.now() + 5_000 });
    const early = fakeAnswer({ key: 'b', expiresAt: Date.now() + 1_000 });
    const never = fakeAnswer({ key: 'c' });
    made.hold(late.answer);
    made.hold(early.answer);
    made.hold(never.answer);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(1_000);
    expect([early.closed(), late.closed(), never.closed()]).toEqual([true, false, false]);
    vi.advanceTimersByTime(4_000);
    expect([late.closed(), never.closed()]).toEqual([true, false]);
    expect(made.size()).toBe(1);
  });

  it('an answer held with an already expired credential is closed at once; a closed one is let go', () => {
    const { made } = lifetimes();
    const stale = fakeAnswer({ key: 'a', expiresAt: Date.now() });
    made.hold(stale.answer);
    expect(stale.closed()).toBe(true);
    const done = fakeAnswer({ key: 'b', expiresAt: Date.now() + 1_000 });
    made.hold(done.answer);
    done.answer.res.destroy();
    expect(made.size()).toBe(0);
  });
});

describe('createAnswerLifetimes: revalidation', () => {
  it('closes what no longer authenticates or authenticates as someone else; keeps the rest', async () => {
    const revoked = fakeAnswer({ key: 'apiKey:bob' });
    const moved = fakeAnswer({ key: 'apiKey:carol' });
    const kept = fakeAnswer({ key: 'apiKey:alice' });
    const { made, closes } = lifetimes({
      reauthenticate: async (answer) => {
        if (answer.identity.key === 'apiKey:bob') return undefined;
        if (answer.identity.key === 'apiKey:carol') return { ...answer.identity, key: 'apiKey:mallory' };
        return answer.identity;
      },
    });
    for (const a of [revoked, moved, kept]) made.hold(a.answer);
    await made.revalidate();
    expect([revoked.closed(), moved.closed(), kept.closed()]).toEqual([true, true, false]);
    expect(closes).toEqual(['apiKey:bob:revoked', 'apiKey:carol:revoked']);
  });

  it('an answer authenticated under a policy a reload replaced is re-checked when it is held', async () => {
    const { made } = lifetimes({ reauthenticate: async () => undefined });
    const stale = fakeAnswer({ key: 'apiKey:bob' }, { old: true });
    made.hold(stale.answer);
    await new Promise((resolve) => setImmediate(resolve));
    expect(stale.closed()).toBe(true);
  });

  it('keeps the identity a reload re-authenticated (same key, other scopes) for what the answer delivers next', async () => {
    const reduced: Identity = { key: 'apiKey:alice', subject: 'alice', methods: [], scopes: new Set(['t']) };
    const { made } = lifetimes({ reauthenticate: async () => reduced });
    const held = fakeAnswer({ key: 'apiKey:alice', scopes: new Set(['t', 'secret']) });
    made.hold(held.answer);
    expect(made.identityOf(held.answer.res)?.scopes).toEqual(new Set(['t', 'secret']));
    await made.revalidate();
    expect(held.closed()).toBe(false);
    expect(made.identityOf(held.answer.res)).toBe(reduced);
    held.answer.res.destroy();
    expect(made.identityOf(held.answer.res), 'closed: no longer held').toBeUndefined();
    expect(made.size()).toBe(0);
  });

  it('a re-check that throws (a bug) closes the answer and reports the error', async () => {
    const errors: unknown[] = [];
    const { made } = lifetimes({
      reauthenticate: async () => {
        throw new Error('bug');
      },
      onError: (err) => errors.push(err),
    });
    const held = fakeAnswer({ key: 'a' });
    made.hold(held.answer);
    await made.revalidate();
    expect(held.closed()).toBe(true);
    expect(errors).toHaveLength(1);
  });
});
