import { describe, expect, it } from 'vitest';
import { isRefusal } from '../../../src/errors.js';
import type { Authorized } from '../../../src/exchange.js';
import type { RpcMessage } from '../../../src/jsonrpc/parse.js';
import { createConcurrency } from '../../../src/ratelimit/concurrency.js';
import type { Limiter, MultiDecision } from '../../../src/ratelimit/limiter.js';
import { createMemoryLimiter } from '../../../src/ratelimit/memory.js';
import { createMessageAdmission, createRequestAdmission } from '../../../src/server/admit.js';
import { onExchange, testRouter } from '../../support/exchange.js';

const limits = { maxConcurrentPerIdentity: 1, maxStreamsPerIdentity: 1, maxConcurrentTotal: 10 };
const plain = testRouter().routes[0]!;
const limited = testRouter('    rateLimits: [{ per: identity, limit: 2/minute }]\n    failMode: closed')
  .routes[0]!;

/** An exchange made authorized for `messages` (what the stages before admission would have said). */
function authorized(
  exchange: Parameters<Parameters<typeof onExchange>[1]>[0],
  messages: RpcMessage[],
): Authorized {
  exchange.body = { batch: false, forward: '', messages };
  exchange.version = '2025-06-18';
  exchange.decisions = [];
  return exchange as Authorized;
}
const call: RpcMessage = { kind: 'request', id: 1, method: 'tools/call', params: { name: 'read_file' } };
const listen: RpcMessage = { kind: 'request', id: 2, method: 'subscriptions/listen', params: {} };

describe('createRequestAdmission', () => {
  it('takes a request slot, refuses the next one over the cap, and gives it back at finish', async () => {
    const concurrency = createConcurrency(limits);
    const admit = createRequestAdmission(concurrency);
    const { result, exchange } = await onExchange(plain, (ex) => {
      const first = admit(ex);
      const second = concurrency.request(ex.identity.key);
      return { first, second };
    });
    expect(result.first).toBeUndefined();
    expect(result.second, 'the cap of one is held by the exchange').toBeUndefined();
    expect(exchange.finished).toBe(true);
    expect(concurrency.request('apiKey:reader'), 'released at finish').toBeDefined();
  });

  it('refuses a GET whose identity has its streams in use, and keeps nothing', async () => {
    const concurrency = createConcurrency(limits);
    const held = concurrency.stream('apiKey:reader');
    const { result, exchange } = await onExchange(plain, createRequestAdmission(concurrency), {
      method: 'GET',
    });
    expect(isRefusal(result) && result.reason).toBe('concurrency_limited');
    expect(exchange.allowed).toBe(false);
    held?.();
    expect(concurrency.request('apiKey:reader')).toBeDefined();
  });

  it('allows a GET or DELETE once admitted (no message to decide)', async () => {
    const { result, exchange } = await onExchange(plain, createRequestAdmission(createConcurrency(limits)), {
      method: 'DELETE',
    });
    expect(result).toBeUndefined();
    expect(exchange.allowed).toBe(true);
  });
});

describe('createMessageAdmission', () => {
  it('reserves the stream slot of a subscriptions/listen call before any rate token is charged', async () => {
    const concurrency = createConcurrency(limits);
    const held = concurrency.stream('apiKey:reader');
    let charged = 0;
    const memory = createMemoryLimiter();
    const limiter: Limiter = {
      ...memory,
      consumeAll: (charges) => {
        charged++;
        return memory.consumeAll(charges);
      },
    };
    const admit = createMessageAdmission({ concurrency, limiter });
    const { result } = await onExchange(limited, (ex) => admit(authorized(ex, [listen])));
    expect(isRefusal(result) && result.reason).toBe('concurrency_limited');
    expect(charged).toBe(0);
    held?.();
  });

  it('charges every rule, sets the limit headers, and refuses past the limit naming it', async () => {
    const admit = createMessageAdmission({
      concurrency: createConcurrency(limits),
      limiter: createMemoryLimiter(),
    });
    const first = await onExchange(limited, (ex) => admit(authorized(ex, [call])));
    expect(first.result).toBeUndefined();
    expect(first.exchange.limitHeaders?.ratelimit).toMatch(/^"r0";r=1;t=/);
    await onExchange(limited, (ex) => admit(authorized(ex, [call])));
    const third = await onExchange(limited, (ex) => admit(authorized(ex, [call])));
    expect(isRefusal(third.result) && third.result).toMatchObject({
      reason: 'rate_limited',
      ids: [1],
      data: { limit: '2/minute', per: 'identity' },
    });
  });

  it('refuses with limiter_unavailable when the limiter cannot answer on a failMode: closed route', async () => {
    const degraded: MultiDecision = {
      allowed: true,
      retryAfterSec: 0,
      degraded: true,
      remaining: [1],
      resetSec: [1],
    };
    const limiter = { ...createMemoryLimiter(), consumeAll: () => degraded } as Limiter;
    const admit = createMessageAdmission({ concurrency: createConcurrency(limits), limiter });
    const closed = await onExchange(limited, (ex) => admit(authorized(ex, [call])));
    expect(isRefusal(closed.result) && closed.result.reason).toBe('limiter_unavailable');
    const open = testRouter('    rateLimits: [{ per: identity, limit: 2/minute }]\n    failMode: open')
      .routes[0]!;
    const through = await onExchange(open, (ex) => admit(authorized(ex, [call])));
    expect(through.result).toBeUndefined();
    expect(through.exchange.failedOpen, 'counted as fail-open at finish').toBe(true);
  });
});
