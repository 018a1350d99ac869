/**
 * How the Redis limiter fails, class by class, against real redis-servers put into each state:
 * - the store failing — no connection, no answer in time (DEBUG SLEEP), LOADING (DEBUG RELOAD,
 *   slowed), READONLY (REPLICAOF: the failover seen from a demoted primary), MASTERDOWN, BUSY (a
 *   script hogging the server), OOM (maxmemory), CLUSTERDOWN (no slot served), TRYAGAIN (a
 *   multi-key call in a slot being migrated) — is answered by the fallback, marked `degraded` so
 *   the route's failMode decides, and counted;
 * - NOSCRIPT (SCRIPT FLUSH) is loaded and retried once, and served by Redis;
 * - a script error (a key of the wrong type, a corrupt counter) rejects with RedisLimiterBroken:
 *   the fallback is never asked, so nothing is allowed (the pipeline answers 500 `internal`);
 * - a reply of the wrong shape is RedisLimiterBroken too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis, ReplyError } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Charge, parseRate } from '../../../src/ratelimit/limiter.js';
import { createMemoryLimiter, type MemoryLimiter } from '../../../src/ratelimit/memory.js';
import { checkedReply, createRedisLimiter, type RedisLimiter } from '../../../src/ratelimit/redis.js';
import {
  classifyRedisFailure,
  RedisLimiterBroken,
  RedisTimeoutError,
} from '../../../src/ratelimit/redis-failures.js';
import { freePort } from '../../support/gateway.js';
import { type RedisServer, startClusterNode, startRedis, untilHealthy } from '../../support/redis.js';

const rate = parseRate('100000/hour');
let counter = 0;
/** A key no other test touches, in a slot of its own. */
const fresh = (name: string) => `pc:fail:{f${++counter}}:${name}`;

/** A limiter on `url` whose counted failures and fallback calls the test reads. */
interface Observed {
  readonly limiter: RedisLimiter;
  /** `onError` kinds, in order. */
  readonly errors: string[];
  /** How many times the in-process fallback was asked. */
  fallbackCalls(): number;
}

const opened: Observed[] = [];

function observed(url: string, commandTimeoutMs = 2_000): Observed {
  const memory = createMemoryLimiter();
  let calls = 0;
  const fallback: MemoryLimiter = {
    peek(key, r, now) {
      calls++;
      return memory.peek(key, r, now);
    },
    consume(key, r, now) {
      calls++;
      return memory.consume(key, r, now);
    },
    consumeAll(charges, now) {
      calls++;
      return memory.consumeAll(charges, now);
    },
  };
  const errors: string[] = [];
  const limiter = createRedisLimiter(
    { url, commandTimeoutMs },
    { fallback, logger: pino({ level: 'silent' }), onError: (kind) => errors.push(kind) },
  );
  const made = { limiter, errors, fallbackCalls: () => calls };
  opened.push(made);
  return made;
}

/** The route's fail mode applies: the fallback answered, marked degraded, and it was counted as `kind`. */
async function expectFailMode(
  on: Observed,
  kind: 'unavailable' | 'timeout',
  charges?: Charge[],
): Promise<void> {
  const decision = charges
    ? await on.limiter.consumeAll(charges)
    : await on.limiter.consume(fresh('fail-mode'), rate);
  expect(decision).toMatchObject({ allowed: true, degraded: true });
  expect(on.errors).toEqual([kind]);
  expect(on.fallbackCalls()).toBe(1);
}

/** Served by Redis itself: not degraded, nothing counted, the fallback never asked. */
async function expectServed(on: Observed): Promise<void> {
  const decision = await on.limiter.consume(fresh('served'), rate);
  expect(decision).toEqual({ allowed: true, retryAfterSec: 0 });
  expect(on.errors).toEqual([]);
  expect(on.fallbackCalls()).toBe(0);
}

/** `times` polls of `check`, 20 ms apart, until it holds. */
async function until(check: () => Promise<boolean>, what: string, times = 250): Promise<void> {
  for (let i = 0; i < times; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`never: ${what}`);
}

let dir: string;
let redis: RedisServer;
let admin: Redis;
let main: Observed;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-failures-'));
  // `--dir`: DEBUG RELOAD writes its snapshot there, not into the working directory.
  redis = await startRedis({ args: ['--enable-debug-command', 'local', '--dir', dir] });
  admin = new Redis(redis.url);
});
beforeEach(async () => {
  main = observed(redis.url);
  await untilHealthy(main.limiter);
  await expectServed(main);
});
afterAll(async () => {
  await Promise.all(opened.map((o) => o.limiter.close()));
  admin?.disconnect();
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('the store failing: the route’s fail mode, counted', () => {
  it('no connection (nothing listens): unavailable', async () => {
    const nowhere = observed(`redis://127.0.0.1:${await freePort()}`);
    await expectFailMode(nowhere, 'unavailable');
    expect(nowhere.limiter.healthy()).toBe(false);
  });

  it('no answer within commandTimeoutMs (DEBUG SLEEP): timeout', async () => {
    const quick = observed(redis.url, 50);
    await untilHealthy(quick.limiter);
    const sleeper = new Redis(redis.url);
    try {
      const sleeping = sleeper.debug('SLEEP', '0.4');
      await new Promise((resolve) => setTimeout(resolve, 50));
      await expectFailMode(quick, 'timeout');
      await sleeping;
    } finally {
      sleeper.disconnect();
    }
  });

  it('LOADING (the dataset being loaded: DEBUG RELOAD, slowed per key)', async () => {
    await admin.debug('POPULATE', 2000, 'pc:fail:populated');
    await admin.config('SET', 'key-load-delay', '500');
    await admin.config('SET', 'loading-process-events-interval-bytes', '1024');
    const loader = new Redis(redis.url);
    try {
      const reloading = loader.debug('RELOAD');
      await until(async () => /loading:1/.test(await admin.info('persistence')), 'loading:1');
      await expectFailMode(main, 'unavailable');
      await reloading;
    } finally {
      await admin.config('SET', 'key-load-delay', '0');
      loader.disconnect();
    }
  });

  it('READONLY (a primary demoted by a failover: REPLICAOF)', async () => {
    try {
      // A primary that is gone: the replica keeps its data and serves reads, refuses writes.
      await admin.replicaof('127.0.0.1', String(await freePort()));
      await expectFailMode(main, 'unavailable');
    } finally {
      await admin.replicaof('NO', 'ONE');
    }
  });

  it('MASTERDOWN (a replica without its primary that serves no stale data)', async () => {
    try {
      await admin.config('SET', 'replica-serve-stale-data', 'no');
      await admin.replicaof('127.0.0.1', String(await freePort()));
      await expectFailMode(main, 'unavailable');
    } finally {
      await admin.replicaof('NO', 'ONE');
      await admin.config('SET', 'replica-serve-stale-data', 'yes');
    }
  });

  it('BUSY (another script running past busy-reply-threshold)', async () => {
    await admin.config('SET', 'busy-reply-threshold', '20');
    const hog = new Redis(redis.url);
    try {
      const hogging = hog.eval('local i = 0 while true do i = i + 1 end', 0).catch((err: unknown) => err);
      await new Promise((resolve) => setTimeout(resolve, 100));
      await expectFailMode(main, 'unavailable');
      await admin.script('KILL');
      expect(await hogging).toBeInstanceOf(ReplyError);
    } finally {
      await admin.config('SET', 'busy-reply-threshold', '5000');
      hog.disconnect();
    }
  });

  it('OOM (maxmemory reached with noeviction)', async () => {
    try {
      await admin.config('SET', 'maxmemory', '1');
      await expectFailMode(main, 'unavailable');
    } finally {
      await admin.config('SET', 'maxmemory', '0');
    }
  });
});

describe('the store failing, Redis Cluster states', () => {
  let clusterDir: string;
  const nodes: RedisServer[] = [];
  beforeAll(() => {
    clusterDir = mkdtempSync(join(tmpdir(), 'portcullis-redis-failures-cluster-'));
  });
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    rmSync(clusterDir, { recursive: true, force: true });
  });

  it('CLUSTERDOWN (a node that serves no slot)', async () => {
    const node = await startClusterNode(clusterDir, 'lonely');
    nodes.push(node);
    const on = observed(node.url);
    await untilHealthy(on.limiter);
    await expectFailMode(on, 'unavailable');
  });

  it('TRYAGAIN (a call over several keys of a slot being migrated, one key already moved)', async () => {
    const a = await startClusterNode(clusterDir, 'a');
    const b = await startClusterNode(clusterDir, 'b');
    nodes.push(a, b);
    const nodeA = new Redis(a.url);
    const nodeB = new Redis(b.url);
    try {
      await nodeA.cluster('ADDSLOTSRANGE', 0, 16383);
      await nodeA.cluster('MEET', '127.0.0.1', b.port, b.bus);
      const idB = String(await nodeB.cluster('MYID'));
      await until(
        async () => String(await nodeA.cluster('INFO')).includes('cluster_state:ok'),
        'cluster_state:ok',
        500,
      );
      await until(async () => String(await nodeA.cluster('NODES')).includes(idB), 'node b known');
      // One slot (one hash tag): `present` still on A, `moved` absent — as if already on B.
      const present = 'pc:fail:{tryagain}:present';
      const moved = 'pc:fail:{tryagain}:moved';
      await nodeA.set(present, '0,0');
      await nodeA.cluster('SETSLOT', await nodeA.cluster('KEYSLOT', present), 'MIGRATING', idB);
      const on = observed(a.url);
      await untilHealthy(on.limiter);
      await expectFailMode(on, 'unavailable', [
        { key: present, rate },
        { key: moved, rate },
      ]);
    } finally {
      nodeA.disconnect();
      nodeB.disconnect();
    }
  });
});

describe('NOSCRIPT: the script is loaded and the call retried once', () => {
  it('after SCRIPT FLUSH: one EVALSHA refused, one EVAL, served by Redis', async () => {
    await admin.script('FLUSH');
    await admin.config('RESETSTAT');
    await expectServed(main);
    const stats = await admin.info('commandstats');
    expect(/cmdstat_evalsha:calls=1,[^\r\n]*failed_calls=1/.test(stats), stats).toBe(true);
    expect(/cmdstat_eval:calls=1,[^\r\n]*failed_calls=0/.test(stats), stats).toBe(true);
    // Loaded again: the next call is one EVALSHA.
    await expectServed(main);
    expect(await admin.info('commandstats')).toMatch(/cmdstat_evalsha:calls=2,/);
  });
});

describe('a broken script: RedisLimiterBroken, never the fallback', () => {
  it('a key of the wrong type (WRONGTYPE inside the script)', async () => {
    const key = fresh('list');
    await admin.lpush(key, 'planted');
    const failed = main.limiter.consume(key, rate);
    await expect(failed).rejects.toBeInstanceOf(RedisLimiterBroken);
    await expect(failed).rejects.toMatchObject({ cause: expect.any(ReplyError) });
    expect(main.errors).toEqual([]);
    expect(main.fallbackCalls()).toBe(0);
    // Redis itself is fine: the next call is served.
    await expectServed(main);
  });

  it('a corrupt counter (ERR: a Lua runtime error)', async () => {
    const key = fresh('corrupt');
    await admin.set(key, 'no comma here');
    await expect(main.limiter.consumeAll([{ key, rate }])).rejects.toBeInstanceOf(RedisLimiterBroken);
    await expect(main.limiter.peek(key, rate)).rejects.toBeInstanceOf(RedisLimiterBroken);
    expect(main.errors).toEqual([]);
    expect(main.fallbackCalls()).toBe(0);
  });

  it('a call batched with the failing one in the same turn is refused too, never allowed', async () => {
    const key = fresh('list');
    await admin.lpush(key, 'planted');
    const [bad, good] = await Promise.allSettled([
      main.limiter.consume(key, rate),
      main.limiter.consume(fresh('bystander'), rate),
    ]);
    expect(bad).toMatchObject({ status: 'rejected', reason: expect.any(RedisLimiterBroken) });
    expect(good).toMatchObject({ status: 'rejected', reason: expect.any(RedisLimiterBroken) });
    expect(main.fallbackCalls()).toBe(0);
  });
});

describe('checkedReply', () => {
  const batch = [{ charges: [1] }, { charges: [1, 2] }];
  it('accepts exactly 2 + 2 × keys non-negative integers per call, allowed 0 or 1', () => {
    expect(checkedReply([1, 0, 5, 3, 0, 12, 0, 0, 4, 7], batch)).toEqual([1, 0, 5, 3, 0, 12, 0, 0, 4, 7]);
  });
  it.each([
    ['not an array', 'OK'],
    ['one element short', [1, 0, 5, 3, 0, 12, 0, 0, 4]],
    ['one element more', [1, 0, 5, 3, 0, 12, 0, 0, 4, 7, 0]],
    ['a string element', [1, 0, '5', 3, 0, 12, 0, 0, 4, 7]],
    ['a negative number', [1, 0, 5, 3, 0, 12, 0, -1, 4, 7]],
    ['a fraction', [1, 0, 5, 3.5, 0, 12, 0, 0, 4, 7]],
    ['allowed neither 0 nor 1', [1, 0, 5, 3, 2, 12, 0, 0, 4, 7]],
    ['a nested array', [[1], 0, 5, 3, 0, 12, 0, 0, 4, 7]],
  ])('refuses %s', (_, reply) => {
    expect(() => checkedReply(reply, batch)).toThrow(RedisLimiterBroken);
  });
});

describe('classifyRedisFailure: errors that are no Redis reply', () => {
  it('the gateway’s own timeout', () => {
    expect(classifyRedisFailure(new RedisTimeoutError())).toBe('timeout');
  });
  it('socket and client errors (not a reply, not a bug class) are the store unreachable', () => {
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    expect(classifyRedisFailure(reset)).toBe('unreachable');
  });
  it('JavaScript’s own error classes and non-errors are bugs', () => {
    expect(classifyRedisFailure(new TypeError('x is not a function'))).toBe('broken');
    expect(classifyRedisFailure(new RangeError('too many arguments'))).toBe('broken');
    expect(classifyRedisFailure('a string')).toBe('broken');
    expect(classifyRedisFailure(new RedisLimiterBroken('reply'))).toBe('broken');
  });
});
