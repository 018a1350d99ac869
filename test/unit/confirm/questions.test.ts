import { describe, expect, it, vi } from 'vitest';
import { createOpenQuestions, type QuestionStore } from '../../../src/confirm/questions.js';

const alice = { identity: 'apiKey:alice', route: '/mcp', session: 'up-1' };

/** A store with Redis's semantics for these commands, shared by the replicas given it. */
function sharedStore() {
  const keys = new Set<string>();
  const listeners: ((message: string) => void)[] = [];
  const store = (): QuestionStore => ({
    open: async (key) => {
      keys.add(key);
    },
    take: async (key) => keys.delete(key),
    publish: async (message) => {
      for (const listen of listeners) listen(message);
    },
    subscribe: async (onMessage) => {
      listeners.push(onMessage);
      return async () => undefined;
    },
  });
  return store;
}

describe('open questions (legacy confirmation)', () => {
  it('takes one answer, from the asker only, once', async () => {
    const questions = createOpenQuestions();
    const waiting = await questions.open('q1', alice, 60_000);
    expect(await questions.answer('q1', { ...alice, identity: 'apiKey:bob' }, 'yes')).toBe(false);
    expect(await questions.answer('q1', { ...alice, session: 'up-2' }, 'yes')).toBe(false);
    expect(await questions.answer('q1', { ...alice, route: '/other' }, 'yes')).toBe(false);
    expect(await questions.answer('q2', alice, 'yes')).toBe(false);
    expect(await questions.answer('q1', alice, 'no')).toBe(true);
    expect(await questions.answer('q1', alice, 'yes')).toBe(false);
    expect(await waiting.verdict).toBe('no');
  });

  it('expires after its time, and an answer after that finds nothing', async () => {
    vi.useFakeTimers();
    try {
      const questions = createOpenQuestions();
      const waiting = await questions.open('q1', alice, 5_000);
      vi.advanceTimersByTime(5_000);
      expect(await waiting.verdict).toBe('expired');
      expect(await questions.answer('q1', alice, 'yes')).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  it('a caller gone ends it as gone', async () => {
    const questions = createOpenQuestions();
    const waiting = await questions.open('q1', alice, 60_000);
    waiting.cancel();
    expect(await waiting.verdict).toBe('gone');
    expect(await questions.answer('q1', alice, 'yes')).toBe(false);
  });

  it('with a shared store: an answer reaching another replica is taken there and published to the asker, once', async () => {
    const store = sharedStore();
    const one = createOpenQuestions(store());
    const two = createOpenQuestions(store());
    const waiting = await one.open('q1', alice, 60_000);
    const [first, second] = await Promise.all([
      two.answer('q1', alice, 'yes'),
      one.answer('q1', alice, 'yes'),
    ]);
    expect([first, second].filter(Boolean)).toHaveLength(1);
    expect(await waiting.verdict).toBe('yes');
    expect(await two.answer('q1', alice, 'yes')).toBe(false);
  });

  it('with a shared store that fails: opening and answering reject (nothing asked, nothing taken)', async () => {
    const broken: QuestionStore = {
      open: () => Promise.reject(new Error('down')),
      take: () => Promise.reject(new Error('down')),
      publish: () => Promise.reject(new Error('down')),
      subscribe: () => Promise.reject(new Error('down')),
    };
    const questions = createOpenQuestions(broken);
    await expect(questions.open('q1', alice, 60_000)).rejects.toThrow('down');
    await expect(questions.answer('q1', alice, 'yes')).rejects.toThrow('down');
    await questions.close();
  });

  it('a subscription that failed (Redis down at the first question) is tried again with the next one', async () => {
    const shared = sharedStore();
    let up = false;
    let tries = 0;
    const flaky = (): QuestionStore => {
      const inner = shared();
      return {
        ...inner,
        open: (key, ttl) => (up ? inner.open(key, ttl) : Promise.reject(new Error('down'))),
        subscribe: (onMessage) => {
          tries++;
          return up ? inner.subscribe(onMessage) : Promise.reject(new Error('down'));
        },
      };
    };
    const one = createOpenQuestions(flaky());
    const two = createOpenQuestions(flaky());
    await expect(one.open('q0', alice, 60_000)).rejects.toThrow('down');
    await Promise.resolve();
    up = true;
    const waiting = await one.open('q1', alice, 60_000);
    expect(await two.answer('q1', alice, 'yes')).toBe(true);
    expect(await waiting.verdict).toBe('yes');
    expect(tries).toBe(2);
  });

  it('an unanswered question takes its shared key with it: a late answer on another replica finds nothing', async () => {
    const store = sharedStore();
    const one = createOpenQuestions(store());
    const two = createOpenQuestions(store());
    const waiting = await one.open('q1', alice, 60_000);
    waiting.cancel();
    expect(await waiting.verdict).toBe('gone');
    await Promise.resolve();
    expect(await two.answer('q1', alice, 'yes')).toBe(false);
  });

  it('ignores messages on the channel that are not an answer', async () => {
    let publish: (message: string) => void = () => undefined;
    const store: QuestionStore = {
      open: async () => undefined,
      take: async () => true,
      publish: async () => undefined,
      subscribe: async (onMessage) => {
        publish = onMessage;
        return async () => undefined;
      },
    };
    const questions = createOpenQuestions(store);
    const waiting = await questions.open('q1', alice, 60_000);
    await Promise.resolve();
    publish('not json');
    publish('{"a":1}');
    publish('["key","maybe"]');
    waiting.cancel();
    expect(await waiting.verdict).toBe('gone');
  });
});
