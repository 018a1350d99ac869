import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { ApprovalRedis } from '../approvals/store.js';
import type { Config } from '../config/schema.js';
import type { QuestionStore } from '../confirm/questions.js';
import type { Channel } from './channel.js';
import type { Charge, Decision, Limiter, MultiDecision, Rate } from './limiter.js';
import type { MemoryLimiter } from './memory.js';
import { classifyRedisFailure, RedisLimiterBroken, RedisTimeoutError } from './redis-failures.js';

/**
 * GCRA for every charged key in one atomic script and one round trip (DESIGN.md step 7). State per
 * key is "at,ahead" (see gcra.ts: the TAT as a small offset from when it was written keeps the
 * arithmetic exact). Time is Redis's own (`TIME`), so replicas with skewed clocks agree. Keys share
 * the `{route}` hash tag: one Cluster slot.
 *
 * One call evaluates a batch of limiter calls — every call made in the same event-loop turn for
 * the same slot — in order, each all-or-nothing as if it ran alone: a refused call writes nothing,
 * a later call sees what an earlier one charged. Batching is what keeps the shared limiter cheap:
 * one script run and one reply parse for many requests, on both sides.
 *
 * ARGV: number of calls, then per call: write (1: charge, 0: only look) and its number of keys,
 * then per key in KEYS order: interval ms, tolerance ms.
 * Returns per call: allowed (0/1), retry-after ms, then per key: remaining, reset ms.
 */
const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local eps = 0.000001
local calls = tonumber(ARGV[1])
-- Working state per distinct key across the whole batch; written once at the end.
local state, dirty = {}, {}
local function current(key)
  if state[key] == nil then
    local ahead = 0
    local stored = redis.call('GET', key)
    if stored then
      local comma = string.find(stored, ',')
      local at = tonumber(string.sub(stored, 1, comma - 1))
      ahead = math.max(tonumber(string.sub(stored, comma + 1)) - (now - at), 0)
    end
    state[key] = ahead
  end
  return state[key]
end
local out = {}
local k = 0
local a = 1 + 2 * calls
for c = 1, calls do
  local write = tonumber(ARGV[2 * c]) == 1
  local n = tonumber(ARGV[2 * c + 1])
  -- A key charged twice in one call (a batch of two requests) counts twice.
  local trial, before, after = {}, {}, {}
  local allowed, retry = 1, 0
  for i = 1, n do
    local key = KEYS[k + i]
    local interval = tonumber(ARGV[a + 2 * i - 1])
    local tol = tonumber(ARGV[a + 2 * i])
    local ahead = trial[key] or current(key)
    before[i] = ahead
    local nxt = ahead + interval
    if nxt <= tol + eps then
      trial[key] = nxt
      after[i] = nxt
    else
      allowed = 0
      after[i] = ahead
      retry = math.max(retry, nxt - tol)
    end
  end
  if allowed == 1 and write then
    for key, ahead in pairs(trial) do
      state[key] = ahead
      dirty[key] = true
    end
  end
  out[#out + 1] = allowed
  out[#out + 1] = math.ceil(retry)
  for i = 1, n do
    local interval = tonumber(ARGV[a + 2 * i - 1])
    local tol = tonumber(ARGV[a + 2 * i])
    -- Refused: each counter reports how it stands.
    local ahead = after[i]
    if allowed == 0 then ahead = before[i] end
    local remaining = math.max(0, math.floor((tol - ahead + eps) / interval))
    if allowed == 0 and before[i] + interval > tol + eps then remaining = 0 end
    out[#out + 1] = remaining
    out[#out + 1] = math.ceil(ahead)
  end
  k = k + n
  a = a + 2 * n
end
for key in pairs(dirty) do
  local final = state[key]
  redis.call('SET', key, now .. ',' .. string.format('%.17g', final), 'PX', math.ceil(final) + 1000)
end
return out
`;
/** EVALSHA names the script by this; computed once. */
const SCRIPT_SHA = createHash('sha1').update(SCRIPT).digest('hex');

/** At most this many limiter calls, and keys, in one script run: one run stays short for Redis. */
const MAX_BATCH = 64;
const MAX_KEYS = 2_048;

type Client = Redis | Cluster;

/** One limiter call waiting for its turn's script run. */
interface Pending {
  readonly charges: readonly Charge[];
  readonly write: boolean;
  readonly resolve: (decision: MultiDecision) => void;
  readonly reject: (err: unknown) => void;
}

export interface RedisLimiter extends Limiter {
  /** Whether the last command reached Redis (for /readyz). */
  readonly healthy: () => boolean;
  /**
   * Claims `key` for `ttlMs` — true for the one caller that claims it first, on any replica
   * (`SET NX PX`: one atomic command); rejects when Redis does not answer in time (the caller
   * fails closed: there is no fallback for "used once").
   */
  claimOnce(key: string, ttlMs: number): Promise<boolean>;
  /** Open legacy confirmations shared by every replica (`confirm/questions.ts`). */
  readonly questions: QuestionStore;
  /** Pending approvals shared by every replica (`approvals/store.ts`). */
  readonly approvals: ApprovalRedis;
  close(): Promise<void>;
}

/**
 * An approval's state change: `KEYS[1]` from `ARGV[1]` to `ARGV[2]` (and `KEYS[2]` to `ARGV[3]`
 * unless empty), keeping their expiry — or nothing, when it holds anything else. One script, so
 * two replicas can never both decide, or both use, one approval.
 */
const APPROVAL_SWAP = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
if ARGV[3] ~= '' then redis.call('SET', KEYS[2], ARGV[3], 'KEEPTTL') end
return 1
`;

/** Where a replica tells the others that an approval was decided (legacy sessions' notification). */
const DECIDED_CHANNEL = 'portcullis:approvals:decided';

/** The channel legacy confirmations' answers travel on, from the replica that took one to the one asking. */
const QUESTIONS_CHANNEL = 'portcullis:confirm:answers';

/**
 * The shared limiter: Redis standalone, Sentinel or Cluster. A Redis that is down, slower than
 * `commandTimeoutMs`, or answering that it cannot serve now (redis-failures.ts) never piles
 * requests up: the offline queue is off and every command times out; the caller's `fallback` (the
 * in-process limiter, per replica) answers instead, marked `degraded` so the route's `failMode`
 * decides, and the failure is counted. A script that fails or answers an unexpected shape is a
 * bug, not an outage: the call rejects with {@link RedisLimiterBroken} and nothing is allowed.
 * Reconnection is ioredis's own, with a capped backoff.
 */
export function createRedisLimiter(
  config: NonNullable<Config['redis']>,
  deps: {
    readonly fallback: MemoryLimiter;
    readonly logger: Logger;
    readonly onError: (kind: string) => void;
  },
): RedisLimiter {
  // `replyMapping` left out: ioredis 6 types it without `| undefined` for the constructors.
  const options: Omit<RedisOptions, 'replyMapping'> = {
    // RESP2: the script answers flat integer arrays, which every Redis, Valkey and managed service
    // speaks; RESP3 (ioredis 6's default) needs HELLO, which Redis before 6 and some proxies lack.
    protocol: 2,
    // No `commandTimeout`: ioredis's fires in the timers phase, before the poll phase reads a reply
    // already in the socket, so any event-loop stall longer than the timeout turned healthy replies
    // into timeouts. The gateway's own (replyWithin) waits for that poll phase first.
    connectTimeout: Math.max(1_000, config.commandTimeoutMs * 10),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    lazyConnect: false,
    // Off: the limiter batches every call of a turn into one script run itself (flush), and
    // autopipelining would hold that write back one more setImmediate — so a stall of our own loop
    // before the write would be timed as Redis's. Without it the command is written when sent.
    enableAutoPipelining: false,
    ...(config.tlsCA ? { tls: { ca: readFileSync(config.tlsCA) } } : {}),
  };
  let client: Client;
  if (config.cluster) {
    client = new Cluster(config.cluster.nodes.map(hostPort), {
      redisOptions: options,
      enableOfflineQueue: false,
      clusterRetryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    });
  } else if (config.sentinel) {
    client = new Redis({
      ...options,
      name: config.sentinel.name,
      sentinels: config.sentinel.nodes.map(hostPort),
    });
  } else {
    client = new Redis(config.url as string, options);
  }
  let healthy = false;
  client.on('ready', () => {
    healthy = true;
    deps.logger.info('redis limiter connected');
  });
  client.on('error', (err: Error) => {
    healthy = false;
    deps.logger.warn({ code: (err as NodeJS.ErrnoException).code ?? err.name }, 'redis limiter error');
  });

  /**
   * One script run. EVALSHA first (the script is not sent each time); when the server's script
   * cache has lost it (a restart, a failover to a replica that never ran it, SCRIPT FLUSH), EVAL
   * loads and runs it — once: EVAL cannot answer NOSCRIPT, so this never loops.
   */
  async function gcra(keys: readonly string[], args: readonly number[]): Promise<unknown> {
    try {
      return await client.evalsha(SCRIPT_SHA, keys.length, ...keys, ...args);
    } catch (err) {
      if (classifyRedisFailure(err) !== 'noscript') throw err;
      return client.eval(SCRIPT, keys.length, ...keys, ...args);
    }
  }

  /** Limiter calls waiting for this turn's script run, by Cluster slot group. */
  const waiting = new Map<string, Pending[]>();
  let flushScheduled = false;

  function run(charges: readonly Charge[], write: boolean): Promise<MultiDecision> {
    const first = charges[0];
    if (first === undefined)
      return Promise.resolve({ allowed: true, retryAfterSec: 0, remaining: [], resetSec: [] });
    return new Promise((resolve, reject) => {
      // One server takes any keys together; a Cluster only keys of one slot.
      const group = config.cluster ? slotGroup(first.key) : '';
      const queue = waiting.get(group);
      const call = { charges, write, resolve, reject };
      if (queue === undefined) waiting.set(group, [call]);
      else queue.push(call);
      if (!flushScheduled) {
        flushScheduled = true;
        // After this turn's I/O callbacks: every request read in the same turn shares one run.
        setImmediate(flush);
      }
    });
  }

  function flush(): void {
    flushScheduled = false;
    for (const queue of waiting.values()) {
      // Runs of at most MAX_BATCH calls and MAX_KEYS keys (one call with more keys runs alone).
      let run: Pending[] = [];
      let keys = 0;
      for (const call of queue) {
        if (run.length > 0 && (run.length === MAX_BATCH || keys + call.charges.length > MAX_KEYS)) {
          void send(run);
          run = [];
          keys = 0;
        }
        run.push(call);
        keys += call.charges.length;
      }
      if (run.length > 0) void send(run);
    }
    waiting.clear();
  }

  async function send(batch: readonly Pending[]): Promise<void> {
    const keys: string[] = [];
    const head: number[] = [batch.length];
    const rates: number[] = [];
    for (const { charges, write } of batch) {
      head.push(write ? 1 : 0, charges.length);
      for (const { key, rate } of charges) {
        keys.push(key);
        const interval = rate.periodMs / rate.limit;
        rates.push(interval, interval * (rate.burst ?? rate.limit));
      }
    }
    let out: readonly number[];
    try {
      const reply = await replyWithin(gcra(keys, [...head, ...rates]), config.commandTimeoutMs);
      out = checkedReply(reply, batch);
    } catch (err) {
      for (const call of batch) call.reject(err);
      return;
    }
    let at = 0;
    for (const { charges, resolve } of batch) {
      const allowed = out[at] === 1;
      const retryMs = out[at + 1] ?? 0;
      const remaining: number[] = [];
      const resetSec: number[] = [];
      for (let i = 0; i < charges.length; i++) {
        remaining.push(out[at + 2 + 2 * i] ?? 0);
        resetSec.push(Math.ceil((out[at + 3 + 2 * i] ?? 0) / 1000));
      }
      at += 2 + 2 * charges.length;
      resolve({
        allowed,
        retryAfterSec: allowed ? 0 : Math.max(1, Math.ceil(retryMs / 1000)),
        remaining,
        resetSec,
      });
    }
  }

  /**
   * Redis, or — when the store fails (redis-failures.ts) — the in-process fallback, counted. A
   * broken script is rethrown: the caller answers 500, never the fallback's "allowed".
   */
  async function guarded<T extends Decision>(redis: () => Promise<T>, local: () => T): Promise<T> {
    try {
      const result = await redis();
      healthy = true;
      return result;
    } catch (err) {
      const failure = classifyRedisFailure(err);
      if (failure === 'broken' || failure === 'noscript') {
        // `noscript` cannot reach here (gcra retries it with EVAL); were it to, it is ours to fix.
        throw err instanceof RedisLimiterBroken ? err : new RedisLimiterBroken('script', { cause: err });
      }
      // The store failing (away, slow, refusing for now): answer from the fallback, marked so a
      // `failMode: closed` route refuses.
      healthy = false;
      deps.onError(failure === 'timeout' ? 'timeout' : 'unavailable');
      return { ...local(), degraded: true };
    }
  }

  /** One command within `commandTimeoutMs`, its failure counted; rejects (callers fail closed). */
  async function command<T>(reply: Promise<T>): Promise<T> {
    try {
      const answered = await replyWithin(reply, config.commandTimeoutMs);
      healthy = true;
      return answered;
    } catch (err) {
      healthy = false;
      deps.onError(classifyRedisFailure(err) === 'timeout' ? 'timeout' : 'unavailable');
      throw err;
    }
  }

  /** Connections in subscriber mode, closed with the limiter. */
  const subscribers = new Set<Client>();
  /**
   * Publish and subscribe on one channel. A subscriber is a connection of its own (in subscriber
   * mode it can run nothing else). Its SUBSCRIBE waits in the offline queue until Redis answers,
   * and never gives up while Redis is away (`maxRetriesPerRequest: null`): a SUBSCRIBE that failed
   * once is not repeated by ioredis, one that succeeded is repeated after every reconnect.
   * Messages published while it is away are lost.
   */
  const channel = (name: string): Channel => ({
    publish: async (message) => {
      await command(client.publish(name, message));
    },
    async subscribe(onMessage) {
      const own =
        client instanceof Cluster
          ? client.duplicate(undefined, {
              enableOfflineQueue: true,
              redisOptions: { ...options, maxRetriesPerRequest: null },
            })
          : client.duplicate({ enableOfflineQueue: true, maxRetriesPerRequest: null });
      subscribers.add(own);
      own.on('error', () => undefined); // reported by the main connection's handler
      own.on('message', (from: string, message: string) => {
        if (from === name) onMessage(message);
      });
      const stop = async () => {
        subscribers.delete(own);
        own.disconnect();
      };
      try {
        await own.subscribe(name);
      } catch (err) {
        await stop();
        throw err;
      }
      return stop;
    },
  });

  const questions: QuestionStore = {
    open: async (key, ttlMs) => {
      await command(client.set(`portcullis:confirm:q:${key}`, '1', 'PX', Math.max(1, Math.ceil(ttlMs))));
    },
    take: async (key) => (await command(client.del(`portcullis:confirm:q:${key}`))) === 1,
    ...channel(QUESTIONS_CHANNEL),
  };

  const approvals: ApprovalRedis = {
    decided: channel(DECIDED_CHANNEL),
    async setAll(entries, ttlMs) {
      const multi = client.multi();
      for (const [key, value] of entries) multi.set(key, value, 'PX', Math.max(1, Math.ceil(ttlMs)));
      const replies = await command(multi.exec());
      if (replies === null || replies.some(([err]) => err !== null)) throw new RedisLimiterBroken('reply');
    },
    getAll: (keys) => command(client.mget(...keys)),
    swap: async (stateKey, from, to, extraKey, extra) =>
      (await command(client.eval(APPROVAL_SWAP, 2, stateKey, extraKey, from, to, extra))) === 1,
  };

  return {
    healthy: () => healthy,
    questions,
    approvals,
    claimOnce: async (key, ttlMs) =>
      (await command(client.set(key, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX'))) === 'OK',
    consumeAll: (charges) =>
      guarded(
        () => run(charges, true),
        () => deps.fallback.consumeAll(charges),
      ),
    peek: (key: string, rate: Rate) =>
      guarded(
        () => run([{ key, rate }], false).then(toDecision),
        () => deps.fallback.peek(key, rate),
      ),
    consume: (key: string, rate: Rate) =>
      guarded(
        () => run([{ key, rate }], true).then(toDecision),
        () => deps.fallback.consume(key, rate),
      ),
    async close() {
      for (const subscriber of subscribers) subscriber.disconnect();
      client.disconnect();
    },
  };
}

/** How often a timeout window is restarted because our own loop ate it (bounds the wait to 3 × ms). */
const MAX_WINDOW_RESTARTS = 2;

/**
 * `reply`, or a {@link RedisTimeoutError} when Redis has not answered within `ms`. The timeout must
 * measure Redis, not the gateway: Node runs expired timers *before* the poll phase that reads
 * sockets, so after an event-loop stall longer than `ms` (a large body parsed, a GC pause) a plain
 * timer fires while Redis's reply already sits unread in the socket — a spurious 503
 * `limiter_unavailable` on every `failMode: closed` route, counted as a Redis error. Two rules:
 * - the verdict waits one `setImmediate`, which runs after the next poll phase has read whatever
 *   arrived: a reply that has arrived is never a timeout;
 * - a timer that fires late by more than half its window means our loop was stalled for most of
 *   it, and whatever starved us (a saturated host) may have starved Redis's answer too: the window
 *   starts again, at most {@link MAX_WINDOW_RESTARTS} times.
 * A Redis that really is slow or stalled still times out: its timer fires on time.
 */
export function replyWithin<T>(reply: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    let restarts = 0;
    let due = performance.now() + ms;
    const expire = () => {
      if (settled) return;
      const late = performance.now() - due;
      if (late > ms / 2 && restarts < MAX_WINDOW_RESTARTS) {
        restarts++;
        due = performance.now() + ms;
        timer = setTimeout(expire, ms);
        return;
      }
      setImmediate(() => {
        if (settled) return;
        settled = true;
        reject(new RedisTimeoutError());
      });
    };
    let timer = setTimeout(expire, ms);
    reply.then(
      (value) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/**
 * The script's reply, checked before it is read: a flat array of non-negative integers, exactly
 * `2 + 2 × keys` per call, `allowed` 0 or 1. Anything else means the script or the server is not
 * what this code was written for — read blindly, a missing `allowed` would count as refused but a
 * shifted one could count as allowed — so it is {@link RedisLimiterBroken}, never a decision.
 */
export function checkedReply(
  reply: unknown,
  batch: readonly { readonly charges: readonly unknown[] }[],
): number[] {
  let expected = 0;
  for (const { charges } of batch) expected += 2 + 2 * charges.length;
  if (!Array.isArray(reply) || reply.length !== expected) throw new RedisLimiterBroken('reply');
  for (const value of reply) {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0)
      throw new RedisLimiterBroken('reply');
  }
  let at = 0;
  for (const { charges } of batch) {
    if (reply[at] !== 0 && reply[at] !== 1) throw new RedisLimiterBroken('reply');
    at += 2 + 2 * charges.length;
  }
  return reply as number[];
}

function toDecision(result: MultiDecision): Decision {
  return { allowed: result.allowed, retryAfterSec: result.retryAfterSec };
}

/**
 * What Redis Cluster hashes a key by: the text inside its first non-empty `{…}`, else the whole
 * key. Calls whose keys hash alike can share a script run.
 */
export function slotGroup(key: string): string {
  const open = key.indexOf('{');
  if (open !== -1) {
    const close = key.indexOf('}', open + 1);
    if (close > open + 1) return key.slice(open + 1, close);
  }
  return key;
}

function hostPort(node: string): { host: string; port: number } {
  const colon = node.lastIndexOf(':');
  return colon === -1
    ? { host: node, port: 6379 }
    : { host: node.slice(0, colon), port: Number(node.slice(colon + 1)) };
}
