/**
 * `redis.commandTimeoutMs` measures Redis, not the gateway's own event loop: against a real, healthy
 * redis-server, a loop stalled for four times the timeout while a command is in flight still gets
 * Redis's answer (the reply was in the socket; a timer that fires before the poll phase must not
 * call it a timeout). A Redis that really stalls (DEBUG SLEEP) still times out.
 */
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRate } from '../../../src/ratelimit/limiter.js';
import { createMemoryLimiter } from '../../../src/ratelimit/memory.js';
import { createRedisLimiter, type RedisLimiter, replyWithin } from '../../../src/ratelimit/redis.js';
import { RedisTimeoutError } from '../../../src/ratelimit/redis-failures.js';
import { type RedisServer, startRedis, untilHealthy } from '../../support/redis.js';

const TIMEOUT_MS = 50;
const rate = parseRate('100000/hour');

/** Holds the event loop (and so every timer and socket) for `ms`. */
function stall(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy: nothing else in this process runs
  }
}

/** Runs `fn` after `depth` nested setImmediate hops (the limiter flushes, then ioredis writes). */
function after(depth: number, fn: () => void): void {
  if (depth === 0) fn();
  else setImmediate(() => after(depth - 1, fn));
}

let redis: RedisServer;
let limiter: RedisLimiter;
let admin: Redis;
const errors: string[] = [];

beforeAll(async () => {
  redis = await startRedis({ args: ['--enable-debug-command', 'local'] });
  limiter = createRedisLimiter(
    { url: redis.url, commandTimeoutMs: TIMEOUT_MS },
    { fallback: createMemoryLimiter(), logger: pino({ level: 'silent' }), onError: (k) => errors.push(k) },
  );
  admin = new Redis(redis.url);
  await untilHealthy(limiter);
});
afterAll(async () => {
  await limiter?.close();
  admin?.disconnect();
  await redis?.stop();
});

describe('redis command timeout vs. our own event-loop stalls', () => {
  it('a loop stalled 4× commandTimeoutMs with a command in flight still gets Redis’s answer', async () => {
    errors.length = 0;
    for (let trial = 0; trial < 16; trial++) {
      const decision = limiter.consumeAll([{ key: `pc:test:{stall}:${trial}`, rate }]);
      // The stall starts at different points of the command's way out: before and after the write.
      const depth = trial % 4;
      if (trial % 8 < 4) after(depth, () => stall(4 * TIMEOUT_MS));
      else setTimeout(() => stall(4 * TIMEOUT_MS), depth);
      const verdict = await decision;
      expect(verdict.degraded, `trial ${trial}`).toBeUndefined();
      expect(verdict.allowed).toBe(true);
    }
    expect(errors).toEqual([]);
    expect(limiter.healthy()).toBe(true);
  });

  it('a Redis that really stalls (DEBUG SLEEP) still times out, counted as a timeout', async () => {
    errors.length = 0;
    // Two seconds: on a loaded machine our own late timers restart the window (at most twice), and
    // a half-second sleep could end before the last window did (seen in CI under load).
    const sleeping = admin.call('DEBUG', 'SLEEP', '2');
    await new Promise((resolve) => setTimeout(resolve, 20));
    const started = performance.now();
    const verdict = await limiter.consumeAll([{ key: 'pc:test:{sleep}:a', rate }]);
    const took = performance.now() - started;
    expect(verdict.degraded).toBe(true);
    expect(errors).toEqual(['timeout']);
    expect(took).toBeGreaterThanOrEqual(TIMEOUT_MS - 5);
    // Never waited for Redis to wake up.
    expect(took).toBeLessThan(1_500);
    await sleeping;
    // Redis is back: answered by Redis again.
    errors.length = 0;
    const back = await limiter.consumeAll([{ key: 'pc:test:{sleep}:b', rate }]);
    expect(back.degraded).toBeUndefined();
    expect(errors).toEqual([]);
  });
});

describe('replyWithin', () => {
  it('times out a reply that never comes, with RedisTimeoutError', async () => {
    await expect(replyWithin(new Promise(() => undefined), 10)).rejects.toBeInstanceOf(RedisTimeoutError);
  });

  it('a reply that settles while the loop is stalled past the deadline wins over the timer', async () => {
    let answer: (value: string) => void = () => undefined;
    const reply = new Promise<string>((resolve) => {
      answer = resolve;
    });
    const raced = replyWithin(reply, 10);
    // The stall outlives the deadline; the reply comes in before the loop reaches its poll phase.
    setTimeout(() => {
      stall(40);
      answer('OK');
    }, 0);
    await expect(raced).resolves.toBe('OK');
  });

  it('a window our stall ate starts again: a reply just after a long stall is not a timeout', async () => {
    let answer: (value: string) => void = () => undefined;
    const reply = new Promise<string>((resolve) => {
      answer = resolve;
    });
    const raced = replyWithin(reply, 20);
    // Whatever starved us starved the reply too: it comes 5 ms after the loop is back.
    setTimeout(() => {
      stall(100);
      setTimeout(() => answer('OK'), 5);
    }, 0);
    await expect(raced).resolves.toBe('OK');
  });

  it('restarts are bounded: a reply that never comes times out even while the loop keeps stalling', async () => {
    const started = performance.now();
    const stalls = setInterval(() => stall(30), 5);
    try {
      await expect(replyWithin(new Promise(() => undefined), 20)).rejects.toBeInstanceOf(RedisTimeoutError);
    } finally {
      clearInterval(stalls);
    }
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('passes errors through unchanged', async () => {
    const err = new Error('Connection is closed.');
    await expect(replyWithin(Promise.reject(err), 10)).rejects.toBe(err);
  });
});
