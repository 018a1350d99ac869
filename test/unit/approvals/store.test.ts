/** Pending approvals, in process and in a real redis-server: decided once, used once, gone at expiry. */
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ApprovalRequest,
  type ApprovalStore,
  createLocalApprovalStore,
  createRedisApprovalStore,
  isApprovalId,
  newApprovalId,
} from '../../../src/approvals/store.js';
import { createMemoryLimiter } from '../../../src/ratelimit/memory.js';
import { createRedisLimiter, type RedisLimiter } from '../../../src/ratelimit/redis.js';
import { type RedisServer, startRedis, untilHealthy } from '../../support/redis.js';

const alice = { issuer: 'https://idp.example.com/', subject: 'alice' };
const carol = { issuer: 'https://idp.example.com/', subject: 'carol', name: 'Carol' };

const request = (ttlMs = 60_000): ApprovalRequest => ({
  id: newApprovalId(),
  requester: { key: 'jwt:https://idp.example.com/|alice', ...alice },
  bindings: {
    identity: 'jwt:https://idp.example.com/|alice',
    route: '/mcp',
    tool: 'drop_table',
    argumentsHash: 'a'.repeat(64),
    pinHash: null,
    store: 'approvals',
  },
  arguments: '{\n  "table": "users"\n}',
  rule: 'tools.drop_table',
  createdAt: Date.now(),
  expiresAt: Date.now() + ttlMs,
});

function contract(name: string, make: () => ApprovalStore) {
  describe(`${name} approval store`, () => {
    it('creates a pending approval; one decision, by whom; one use', async () => {
      const store = make();
      const asked = request();
      await store.create(asked);
      expect(await store.get(asked.id)).toMatchObject({ ...asked, state: 'pending' });
      const decided = await store.decide(asked.id, 'approved', carol, 1_234);
      expect(decided).toMatchObject({ state: 'approved', decidedBy: carol, decidedAt: 1_234 });
      // Decided: a second decision, either way, changes nothing.
      expect(await store.decide(asked.id, 'denied', carol, 1_235)).toBeUndefined();
      expect((await store.get(asked.id))?.state).toBe('approved');
      const uses = await Promise.all([store.use(asked.id), store.use(asked.id), store.use(asked.id)]);
      expect(uses.filter(Boolean)).toHaveLength(1);
      expect((await store.get(asked.id))?.state).toBe('used');
    });

    it('a denied approval is never used; an unknown one is nothing', async () => {
      const store = make();
      const asked = request();
      await store.create(asked);
      expect((await store.decide(asked.id, 'denied', carol, 1))?.state).toBe('denied');
      expect(await store.use(asked.id)).toBe(false);
      expect(await store.get(newApprovalId())).toBeUndefined();
      expect(await store.decide(newApprovalId(), 'approved', carol, 1)).toBeUndefined();
      expect(await store.use(newApprovalId())).toBe(false);
    });

    it('is gone at its expiry: neither decided nor used after it', async () => {
      const store = make();
      const asked = request(150);
      await store.create(asked);
      await new Promise((resolve) => setTimeout(resolve, 250));
      expect(await store.get(asked.id)).toBeUndefined();
      expect(await store.decide(asked.id, 'approved', carol, 1)).toBeUndefined();
    });
  });
}

contract('in-process', () => createLocalApprovalStore());

let redis: RedisServer;
let limiter: RedisLimiter;
beforeAll(async () => {
  redis = await startRedis();
  limiter = createRedisLimiter(
    { url: redis.url, commandTimeoutMs: 500 },
    { fallback: createMemoryLimiter(), logger: pino({ level: 'silent' }), onError: () => undefined },
  );
  await untilHealthy(limiter);
});
afterAll(async () => {
  await limiter?.close();
  await redis?.stop();
});
contract('Redis', () => createRedisApprovalStore(limiter.approvals));

describe('the in-process store’s bounds', () => {
  it('refuses a new approval past its count or its bytes of arguments, never forgets a live one; expired ones make room', async () => {
    let clock = 1_000;
    const store = createLocalApprovalStore(() => clock, { count: 2, bytes: 100 });
    const sized = (args: string, ttlMs = 60_000): ApprovalRequest => ({
      ...request(),
      arguments: args,
      createdAt: clock,
      expiresAt: clock + ttlMs,
    });
    const first = sized('x'.repeat(40), 10);
    await store.create(first);
    await expect(store.create(sized('y'.repeat(70)))).rejects.toThrow('too many');
    await store.create(sized('z'.repeat(40)));
    await expect(store.create(sized('{}'))).rejects.toThrow('too many');
    expect(await store.get(first.id)).toBeDefined();
    clock += 20; // the first expires
    await store.create(sized('w'.repeat(40)));
    expect(await store.get(first.id)).toBeUndefined();
  });
});

describe('a decision in Redis', () => {
  it('is reported as taken once its compare-and-set has swapped, whatever Redis does next', async () => {
    const values = new Map<string, string>();
    let failReads = false;
    const redis = {
      setAll: async (entries: readonly (readonly [string, string])[]) => {
        for (const [k, v] of entries) values.set(k, v);
      },
      getAll: async (keys: readonly string[]) => {
        if (failReads) throw new Error('redis went away');
        return keys.map((k) => values.get(k) ?? null);
      },
      swap: async (stateKey: string, from: string, to: string) => {
        if (values.get(stateKey) !== from) return false;
        values.set(stateKey, to);
        failReads = true; // gone right after the write
        return true;
      },
      decided: { publish: async () => undefined, subscribe: async () => async () => undefined },
    };
    const store = createRedisApprovalStore(redis);
    const asked = request();
    await store.create(asked);
    expect(await store.decide(asked.id, 'approved', carol, 7)).toMatchObject({
      id: asked.id,
      state: 'approved',
      decidedBy: carol,
      decidedAt: 7,
    });
  });
});

describe('approval ids', () => {
  it('are 128 random bits, URL-safe; nothing else names one', () => {
    const id = newApprovalId();
    expect(isApprovalId(id)).toBe(true);
    expect(id).not.toBe(newApprovalId());
    for (const bad of ['', 'x', `${id}=`, `${id.slice(0, 21)}/`, '../../etc/passwd', `${id}a`])
      expect(isApprovalId(bad)).toBe(false);
  });
});
