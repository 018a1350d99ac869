import { hash } from 'node:crypto';
import {
  answerOf,
  argumentsHashOf,
  type Bindings,
  CONFIRM_KEY,
  confirmationRequest,
  matches,
  openAsked,
  sealAsked,
} from '../confirm/confirmation.js';
import type { UsedNonces } from '../confirm/used-nonces.js';
import { type Refusal, refuse } from '../errors.js';
import type { Authorized } from '../exchange.js';
import { isModern } from '../jsonrpc/protocol-version.js';
import type { Metrics } from '../metrics/registry.js';
import type { Sealer } from '../proxy/seal.js';
import type { MaybePromise } from '../ratelimit/limiter.js';
import { inputCapabilities, inputRequired } from '../upstream/input-required.js';
import { jsonAnswer } from '../upstream/local-answer.js';
import type { UpstreamAnswer } from '../upstream/upstream.js';

export interface ConfirmationDeps {
  readonly sealer: Sealer;
  readonly used: UsedNonces;
  /** How long the caller has to answer (`approvals.confirmTimeoutSec`). */
  readonly timeoutMs: number;
  readonly metrics?: Metrics | undefined;
  readonly now?: () => number;
}

/**
 * The confirm stage (DESIGN.md "human confirmation"), after admission: a tool call whose entry
 * says `confirm: caller` is forwarded only with the caller's explicit yes for this call, these
 * arguments, from this identity, on this route — once.
 *
 * On the 2026-07-28 protocol the gateway answers the call itself with an `input_required` result:
 * an `elicitation/create` form under its reserved key and a sealed `requestState`. The client's
 * retry brings the answer; a yes (`confirm: true`) is consumed once, and the call goes on with the
 * gateway's own `inputResponses` key and `requestState` stripped — the upstream sees the call as
 * the client first made it, and nothing before. A client that did not declare `elicitation`
 * cannot be asked: 400 -32021. The legacy protocol (an `elicitation/create` on the call's SSE
 * answer) is not built yet: such a call is refused `confirmation_unavailable`, never forwarded.
 *
 * Returns the exchange to send on, an answer the gateway gives itself (the question), or a refusal.
 */
export function createConfirmation(
  deps: ConfirmationDeps,
): (exchange: Authorized) => MaybePromise<Authorized | UpstreamAnswer | Refusal> {
  const now = deps.now ?? Date.now;
  const count = (route: string, result: 'asked' | 'accepted' | 'declined' | 'expired' | 'unavailable') =>
    deps.metrics?.confirmations.inc({ route, result });

  return (exchange) => {
    const index = exchange.decisions.findIndex((d) => d.effect === 'allow' && d.confirm === 'caller');
    if (index === -1) return exchange;
    const { body, route } = exchange;
    const message = body.messages[index];
    if (message === undefined || message.kind !== 'request') return exchange;
    const ids = [message.id];
    const modern = isModern(exchange.version);
    if (!modern || body.batch) {
      count(route.path, 'unavailable');
      return refuse('confirmation_unavailable', { ids, data: { detail: 'legacy' } });
    }
    const params = message.params ?? {};
    const tool = String(params.name);
    const call: Bindings = {
      identity: exchange.identity.key,
      route: route.path,
      tool,
      argumentsHash: argumentsHashOf(params.arguments),
      pinHash: route.pinnedToolHash(tool),
    };
    const asked = openAsked(deps.sealer, params.requestState);
    if (asked === undefined) {
      // Asked first: the caller's client must be able to answer.
      if (inputCapabilities(message)?.has('elicitation') !== true) {
        count(route.path, 'unavailable');
        return refuse('confirmation_unavailable', {
          ids,
          modern: true,
          data: { requiredCapabilities: { elicitation: {} } },
        });
      }
      const at = now();
      const { state, nonce } = sealAsked(deps.sealer, call, at, deps.timeoutMs);
      count(route.path, 'asked');
      exchange.confirmation = { step: 'asked', id: confirmationId(nonce) };
      return jsonAnswer(
        200,
        {
          jsonrpc: '2.0',
          id: message.id,
          result: inputRequired(CONFIRM_KEY, confirmationRequest(tool, params.arguments), state),
        },
        {},
      );
    }
    const id = confirmationId(asked.nonce);
    const at = now();
    // Made for another caller, route, tool or arguments, or too late: never this call's yes.
    if (at > asked.expiresAt || !matches(asked, call)) {
      count(route.path, 'expired');
      exchange.confirmation = { step: 'expired', id };
      return refuse('confirmation_expired', {
        ids,
        data: { detail: at > asked.expiresAt ? 'expired' : 'mismatch' },
      });
    }
    const responses = params.inputResponses as Record<string, unknown> | undefined;
    if (answerOf(responses?.[CONFIRM_KEY]) !== 'yes') {
      count(route.path, 'declined');
      exchange.confirmation = { step: 'declined', id };
      return refuse('confirmation_declined', { ids });
    }
    const taken = (first: boolean): Authorized | Refusal => {
      if (!first) {
        count(route.path, 'expired');
        exchange.confirmation = { step: 'expired', id };
        return refuse('confirmation_expired', { ids, data: { detail: 'used' } });
      }
      count(route.path, 'accepted');
      deps.metrics?.confirmationSeconds.observe({ route: route.path }, (at - asked.askedAt) / 1000);
      exchange.confirmation = { step: 'accepted', id };
      exchange.body = withoutConfirmation(body, index);
      return exchange;
    };
    let consumed: boolean | Promise<boolean>;
    try {
      consumed = deps.used.consume(asked.nonce, asked.expiresAt, at);
    } catch {
      return refuse('limiter_unavailable', { ids, headers: { 'retry-after': '1' } });
    }
    if (typeof consumed === 'boolean') return taken(consumed);
    // Redis could not say whether this yes was already used: refused (the client asks again).
    return consumed.then(taken, () =>
      refuse('limiter_unavailable', { ids, headers: { 'retry-after': '1' } }),
    );
  };
}

/** What links the records of one confirmation (the question, the answer) without revealing its nonce. */
function confirmationId(nonce: string): string {
  return hash('sha256', nonce).slice(0, 16);
}

/**
 * The body with the gateway's own `inputResponses` key and its `requestState` taken out of the
 * confirmed call: what the client first sent, re-serialized.
 */
function withoutConfirmation(body: Authorized['body'], index: number): Authorized['body'] {
  const value = JSON.parse(body.forward) as Record<string, unknown>;
  const params = { ...(value.params as Record<string, unknown>) };
  const { [CONFIRM_KEY]: _ours, ...others } = (params.inputResponses ?? {}) as Record<string, unknown>;
  delete params.requestState;
  if (Object.keys(others).length > 0) params.inputResponses = others;
  else delete params.inputResponses;
  const message = body.messages[index];
  if (message === undefined || message.kind !== 'request') return body;
  const messages = [...body.messages];
  messages[index] = { ...message, params };
  return { ...body, messages, forward: JSON.stringify({ ...value, params }) };
}
