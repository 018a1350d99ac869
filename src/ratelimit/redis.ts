import { readFileSync } from 'node:fs';
import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import type { Charge, Decision, Limiter, MultiDecision, Rate } from './limiter.js';
import type { MemoryLimiter } from './memory.js';

/**
 * GCRA for every charged key in one atomic script and one round trip (DESIGN.md step 7). State per
 * key is "at,ahead" (see gcra.ts: the TAT as a small offset from when it was written keeps the
 * arithmetic exact). Time is Redis's own (`TIME`), so replicas with skewed clocks agree. If any key
 * refuses, nothing is written. Keys share the `{route}` hash tag: one Cluster slot.
 *
 * ARGV: write (1: charge, 0: only look), then per key: interval ms, tolerance ms.
 * Returns: allowed (0/1), retry-after ms, then per key: remaining, reset ms.
 */
const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local write = tonumber(ARGV[1]) == 1
local n = #KEYS
-- Working state per distinct key: a key charged twice in one call counts twice.
local state = {}
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
local before, after = {}, {}
local allowed, retry = 1, 0
for i = 1, n do
  local interval = tonumber(ARGV[2 * i])
  local tol = tonumber(ARGV[2 * i + 1])
  local ahead = current(KEYS[i])
  before[i] = ahead
  local nxt = ahead + interval
  if nxt <= tol + 0.000001 then
    state[KEYS[i]] = nxt
    after[i] = nxt
  else
    allowed = 0
    after[i] = ahead
    retry = math.max(retry, nxt - tol)
  end
end
local out = { allowed, math.ceil(retry) }
local written = {}
for i = 1, n do
  local interval = tonumber(ARGV[2 * i])
  local tol = tonumber(ARGV[2 * i + 1])
  -- Refused: nothing is written and each counter reports how it stands.
  local ahead = after[i]
  if allowed == 0 then ahead = before[i] end
  if allowed == 1 and write and not written[KEYS[i]] then
    written[KEYS[i]] = true
    local final = state[KEYS[i]]
    redis.call('SET', KEYS[i], now .. ',' .. string.format('%.17g', final), 'PX', math.ceil(final) + 1000)
  end
  local remaining = math.max(0, math.floor((tol - ahead + 0.000001) / interval))
  if allowed == 0 and before[i] + interval > tol + 0.000001 then remaining = 0 end
  out[#out + 1] = remaining
  out[#out + 1] = math.ceil(ahead)
end
return out
`;

type Client = Redis | Cluster;
type GcraCommand = (numKeys: number, ...args: (string | number)[]) => Promise<number[]>;

export interface RedisLimiter extends Limiter {
  /** Whether the last command reached Redis (for /readyz). */
  readonly healthy: () => boolean;
  close(): Promise<void>;
}

/**
 * The shared limiter: Redis standalone, Sentinel or Cluster. A Redis that is down or slower than
 * `commandTimeoutMs` never piles requests up: the offline queue is off and every command times
 * out; the caller's `fallback` (the in-process limiter, per replica) answers instead and the
 * failure is counted. Reconnection is ioredis's own, with a capped backoff.
 */
export function createRedisLimiter(
  config: NonNullable<Config['redis']>,
  deps: {
    readonly fallback: MemoryLimiter;
    readonly logger: Logger;
    readonly onError: (kind: string) => void;
  },
): RedisLimiter {
  const options: RedisOptions = {
    commandTimeout: config.commandTimeoutMs,
    connectTimeout: Math.max(1_000, config.commandTimeoutMs * 10),
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2_000),
    lazyConnect: false,
    // Concurrent requests share one write and one read per event-loop turn.
    enableAutoPipelining: true,
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
  client.defineCommand('portcullisGcra', { lua: SCRIPT });
  let healthy = false;
  client.on('ready', () => {
    healthy = true;
    deps.logger.info('redis limiter connected');
  });
  client.on('error', (err: Error) => {
    healthy = false;
    deps.logger.warn({ code: (err as NodeJS.ErrnoException).code ?? err.name }, 'redis limiter error');
  });
  const gcra = (client as unknown as { portcullisGcra: GcraCommand }).portcullisGcra.bind(client);

  async function run(charges: readonly Charge[], write: boolean): Promise<MultiDecision> {
    const args: number[] = [write ? 1 : 0];
    for (const { rate } of charges) args.push(...intervalAndTolerance(rate));
    const out = await gcra(charges.length, ...charges.map((c) => c.key), ...args);
    const [allowed = 0, retryMs = 0] = out;
    const remaining: number[] = [];
    const resetSec: number[] = [];
    for (let i = 0; i < charges.length; i++) {
      remaining.push(out[2 + 2 * i] ?? 0);
      resetSec.push(Math.ceil((out[3 + 2 * i] ?? 0) / 1000));
    }
    return {
      allowed: allowed === 1,
      retryAfterSec: allowed === 1 ? 0 : Math.max(1, Math.ceil(retryMs / 1000)),
      remaining,
      resetSec,
    };
  }

  /** Redis, or — when it is down or slow — the in-process fallback, counted. */
  async function guarded<T extends Decision>(redis: () => Promise<T>, local: () => T): Promise<T> {
    try {
      const result = await redis();
      healthy = true;
      return result;
    } catch (err) {
      // Not a bug but the store failing (down, slow, NOSCRIPT after a failover is retried by
      // ioredis itself): answer from the fallback, marked so a `failMode: closed` route refuses.
      if (!(err instanceof Error)) throw err;
      healthy = false;
      deps.onError(/timed out/i.test(err.message) ? 'timeout' : 'unavailable');
      return { ...local(), degraded: true };
    }
  }

  return {
    healthy: () => healthy,
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
      client.disconnect();
    },
  };
}

function toDecision(result: MultiDecision): Decision {
  return { allowed: result.allowed, retryAfterSec: result.retryAfterSec };
}

function intervalAndTolerance(rate: Rate): [number, number] {
  const interval = rate.periodMs / rate.limit;
  return [interval, interval * (rate.burst ?? rate.limit)];
}

function hostPort(node: string): { host: string; port: number } {
  const colon = node.lastIndexOf(':');
  return colon === -1
    ? { host: node, port: 6379 }
    : { host: node.slice(0, colon), port: Number(node.slice(colon + 1)) };
}
