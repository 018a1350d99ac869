import type { AuthFailure } from '../auth/authenticate.js';
import { delegationDepth } from '../auth/delegation.js';
import type { Identity } from '../auth/identity.js';
import { type Refusal, refuse } from '../errors.js';
import type { Authenticated, Guarded } from '../exchange.js';
import type { Decision, Limiter, MaybePromise, Rate } from '../ratelimit/limiter.js';

export interface AuthenticationDeps {
  /** Counts failed authentications per client address (`authFailures`). */
  readonly limiter: Limiter;
  readonly authFailureRate: Rate;
}

/**
 * The authenticate stage (DESIGN.md step 4): the route's authenticator, behind failure damping.
 * An address over its failure budget is refused (429 `too_many_failures`) before any credential it
 * presents is checked. Damping guards guessable header credentials; a request without one guesses
 * nothing and costs no limiter call.
 */
export function createAuthentication({
  limiter,
  authFailureRate,
}: AuthenticationDeps): (exchange: Guarded) => MaybePromise<Authenticated | Refusal> {
  // Each step waits only for what is asynchronous (Redis, a JWKS fetch): an API key checked
  // against the in-process limiter costs no promise and no trip through the microtask queue.
  const afterDamping = (exchange: Guarded, damping: Decision | undefined) => {
    if (damping !== undefined && !damping.allowed)
      return refuse('too_many_failures', { headers: { 'retry-after': String(damping.retryAfterSec) } });
    const attempt = exchange.route.authenticate(exchange.req);
    return attempt instanceof Promise
      ? attempt.then((identity) => settle(exchange, identity))
      : settle(exchange, attempt);
  };
  const settle = (
    exchange: Guarded,
    identity: Identity | AuthFailure,
  ): MaybePromise<Authenticated | Refusal> => {
    if (!('refusal' in identity)) {
      const max = exchange.route.config.maxDelegationDepth;
      const accepted = authenticated(exchange, identity);
      // Who the caller is stays known (audit) even when its chain of actors is too long.
      if (max !== undefined && delegationDepth(identity.claims) > max)
        return refuse('method_denied', { data: { rule: 'maxDelegationDepth' } });
      return accepted;
    }
    exchange.authFailure = { method: identity.method, why: identity.why };
    // Only a presented credential that failed is a guess; a missing one is how clients discover
    // auth, and one the IdP could not check (idp_unavailable) was never judged: neither counts
    // toward damping (an IdP outage must not lock real users out with 429).
    if (identity.refusal.reason !== 'invalid_credential') return identity.refusal;
    const counted = limiter.consume(`auth:${exchange.clientAddress}`, authFailureRate);
    return counted instanceof Promise ? counted.then(() => identity.refusal) : identity.refusal;
  };
  return (exchange) => {
    const headers = exchange.req.headers;
    const guessing = headers.authorization !== undefined || headers['x-api-key'] !== undefined;
    if (!guessing) return afterDamping(exchange, undefined);
    const damping = limiter.peek(`auth:${exchange.clientAddress}`, authFailureRate);
    return damping instanceof Promise
      ? damping.then((decided) => afterDamping(exchange, decided))
      : afterDamping(exchange, damping);
  };
}

function authenticated(exchange: Guarded, identity: Identity): Authenticated {
  exchange.identity = identity;
  return exchange as Authenticated;
}
