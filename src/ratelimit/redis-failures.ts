import { ReplyError } from 'ioredis';

/**
 * How a call to the shared limiter failed — a closed vocabulary, decided by the error's class and
 * by Redis's error code, never by message text:
 * - `timeout`: Redis did not answer within `redis.commandTimeoutMs` (the gateway's own clock).
 * - `unreachable`: no connection — refused, reset, closed, not ready (ioredis rejects at once: its
 *   offline queue is off).
 * - `unavailable`: Redis answered that it cannot serve now — loading, a replica after a failover,
 *   a cluster resharding or down, a long script running, out of memory.
 * - `noscript`: its script cache was emptied (restart, failover, `SCRIPT FLUSH`): load and retry once.
 * - `broken`: the script failed, or answered something it never answers — a fault of the gateway
 *   (or of data in Redis), never of the store being away. It is not answered from the fallback:
 *   `failMode: open` must not turn a bug into unlimited traffic.
 * The first three are the store failing: the route's `failMode` decides, and it is counted.
 */
export type RedisFailure = 'timeout' | 'unreachable' | 'unavailable' | 'noscript' | 'broken';

/** Redis did not answer within `redis.commandTimeoutMs` (measured by redis.ts `replyWithin`). */
export class RedisTimeoutError extends Error {
  constructor() {
    super('redis command timed out');
    this.name = 'RedisTimeoutError';
  }
}

/**
 * The shared limiter failed in a way that is a bug, not an outage: a script error, or a reply of
 * the wrong shape. Thrown to the caller, which answers 500 `internal` (logged with the stack,
 * counted); `cause` holds what Redis said.
 */
export class RedisLimiterBroken extends Error {
  constructor(what: 'script' | 'reply', options?: { cause?: unknown }) {
    super(
      what === 'script'
        ? 'the rate-limit script failed in Redis'
        : 'the rate-limit script answered an unexpected shape',
      options,
    );
    this.name = 'RedisLimiterBroken';
  }
}

/**
 * Error replies that mean "not now" from a Redis that is otherwise sound: the route's fail mode
 * applies. `MISCONF` (writes stopped after a failed snapshot) and `NOREPLICAS` (fewer replicas
 * than `min-replicas-to-write`) are the same kind of refusal as `OOM`: the store's state, not ours.
 */
const UNAVAILABLE_CODES: ReadonlySet<string> = new Set([
  'LOADING',
  'READONLY',
  'MASTERDOWN',
  'CLUSTERDOWN',
  'TRYAGAIN',
  'BUSY',
  'OOM',
  'MISCONF',
  'NOREPLICAS',
]);

/** ioredis re-exports redis-errors' class untyped; every error reply it decodes is one. */
const ReplyErrorClass: abstract new (...args: never[]) => Error = ReplyError;

/**
 * Whether an error was raised by code rather than by a socket: JavaScript's own error classes come
 * from a bug (ours or the client's), never from the network, which ioredis reports as plain
 * `Error`s, `AbortError`s and errno errors.
 */
function isProgrammingError(err: Error): boolean {
  return (
    err instanceof TypeError ||
    err instanceof RangeError ||
    err instanceof ReferenceError ||
    err instanceof SyntaxError ||
    err instanceof EvalError ||
    err instanceof URIError
  );
}

/** Classifies what a limiter call to Redis rejected with. */
export function classifyRedisFailure(err: unknown): RedisFailure {
  if (err instanceof RedisTimeoutError) return 'timeout';
  if (err instanceof RedisLimiterBroken) return 'broken';
  if (err instanceof ReplyErrorClass) {
    const code = replyCode(err);
    if (code === 'NOSCRIPT') return 'noscript';
    // Anything else — ERR (a Lua runtime error), WRONGTYPE (a key the script cannot read),
    // CROSSSLOT, an unknown code — is the script failing, not the store being away.
    return UNAVAILABLE_CODES.has(code) ? 'unavailable' : 'broken';
  }
  if (!(err instanceof Error) || isProgrammingError(err)) return 'broken';
  return 'unreachable';
}

/**
 * A Redis error reply's code: the first word of the reply, up to the first space (RESP: "the
 * first word after the `-` … represents the kind of error returned"). It is the protocol's
 * machine-readable field — `READONLY`, `NOSCRIPT` — compared exactly; the prose after it is
 * never read. ioredis keeps the reply whole in `message`.
 */
function replyCode(err: Error): string {
  const space = err.message.indexOf(' ');
  return space === -1 ? err.message : err.message.slice(0, space);
}
