import { type Refusal, refuse } from '../errors.js';
import type { Authenticated, Authorized } from '../exchange.js';
import { requestIds } from '../jsonrpc/request.js';
import { type Concurrency, opensStream } from '../ratelimit/concurrency.js';
import type { Limiter, MaybePromise, MultiDecision } from '../ratelimit/limiter.js';
import { type RuleCharge, rateLimitHeaders } from '../ratelimit/rules.js';

/**
 * The request half of admission (DESIGN.md step 8, per replica), run right after authentication —
 * before the body is read, so a flood of slow bodies cannot exceed the caps: a slot per request in
 * flight, and one per GET stream. The slots are the exchange's reservations, given back when it
 * finishes, however it finishes.
 */
export function createRequestAdmission(
  concurrency: Concurrency,
): (exchange: Authenticated) => Refusal | undefined {
  return (exchange) => {
    const key = exchange.identity.key;
    const slot = concurrency.request(key);
    if (slot === undefined) return concurrencyLimited();
    exchange.requestSlot = slot;
    if (exchange.forwardMethod === 'GET') {
      const stream = concurrency.stream(key);
      if (stream === undefined) return concurrencyLimited();
      exchange.streamSlot = stream;
    }
    // A GET or DELETE carries no message for policy to decide: admitted, it is allowed.
    if (exchange.forwardMethod !== 'POST') exchange.allowed = true;
    return undefined;
  };
}

export interface MessageAdmissionDeps {
  readonly concurrency: Concurrency;
  readonly limiter: Limiter;
}

/**
 * The message half of admission (DESIGN.md step 8), once every message is authorized and before
 * any byte goes upstream:
 * 1. a `subscriptions/listen` answer is a stream: its stream slot is reserved first — never after
 *    the upstream ran the call, and before any rate token is charged;
 * 2. rate limits: every rule the request matches, charged together in one limiter call; a refusal
 *    charges nothing. When the shared limiter cannot answer, the route's `failMode` decides.
 */
export function createMessageAdmission(
  deps: MessageAdmissionDeps,
): (exchange: Authorized) => MaybePromise<Refusal | undefined> {
  const { concurrency, limiter } = deps;
  return (exchange) => {
    const { body, route } = exchange;
    if (opensStream(body.messages)) {
      const slot = concurrency.stream(exchange.identity.key);
      if (slot === undefined) return concurrencyLimited();
      exchange.listenSlot = slot;
    }
    const charges = route.rateLimits(body.messages, {
      identity: exchange.identity.key,
      client: exchange.clientAddress,
    });
    if (charges.length === 0) return undefined;
    // The in-process limiter answers at once: no promise, no microtask.
    const verdict = limiter.consumeAll(charges);
    return verdict instanceof Promise
      ? verdict.then((decided) => admitByRate(exchange, charges, decided))
      : admitByRate(exchange, charges, verdict);
  };
}

/** The rate limits' verdict applied: the route's `failMode`, the IETF headers, or a 429. */
function admitByRate(
  exchange: Authorized,
  charges: readonly RuleCharge[],
  verdict: MultiDecision,
): Refusal | undefined {
  const { body, route } = exchange;
  if (verdict.degraded && route.config.failMode === 'closed') {
    // The shared limiter cannot answer and this route would rather refuse than run unlimited.
    return refuse('limiter_unavailable', {
      ids: requestIds(body),
      batch: body.batch,
      headers: { 'retry-after': '1' },
    });
  }
  exchange.failedOpen = verdict.degraded === true && verdict.allowed;
  const limitHeaders = rateLimitHeaders(charges, verdict.remaining, verdict.resetSec);
  if (!verdict.allowed) return rateLimited(charges, verdict, limitHeaders, requestIds(body), body.batch);
  exchange.limitHeaders = limitHeaders;
  return undefined;
}

function concurrencyLimited(): Refusal {
  return refuse('concurrency_limited', { headers: { 'retry-after': '1' } });
}

/**
 * 429 `rate_limited`: `Retry-After`, the IETF headers, and a JSON-RPC error an agent can act on —
 * which limit, and when to retry.
 */
function rateLimited(
  charges: readonly RuleCharge[],
  verdict: MultiDecision,
  limitHeaders: Record<string, string>,
  ids: (string | number)[],
  batch: boolean,
): Refusal {
  let refusedAt = 0;
  verdict.resetSec.forEach((reset, i) => {
    if (verdict.remaining[i] === 0 && reset >= (verdict.resetSec[refusedAt] ?? 0)) refusedAt = i;
  });
  const rule = charges[refusedAt]?.rule;
  return refuse('rate_limited', {
    ids,
    batch,
    headers: { 'retry-after': String(verdict.retryAfterSec), ...limitHeaders },
    data: { limit: rule?.limit, per: rule?.per, retryAfterSec: verdict.retryAfterSec },
  });
}
