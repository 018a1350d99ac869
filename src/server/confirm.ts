import {
  answerOf,
  argumentsHashOf,
  type Bindings,
  CONFIRM_KEY,
  confirmationRequest,
  linkId,
  matches,
  openAsked,
  openContinued,
  RESERVED_PREFIX,
  sealAsked,
  sealContinued,
  takesForm,
} from '../confirm/confirmation.js';
import type { OpenQuestions } from '../confirm/questions.js';
import { withoutConfirmation } from '../confirm/strip.js';
import type { UsedNonces } from '../confirm/used-nonces.js';
import { type Refusal, refuse } from '../errors.js';
import type { Authorized } from '../exchange.js';
import { isModern } from '../jsonrpc/protocol-version.js';
import { requestIds } from '../jsonrpc/request.js';
import type { Metrics } from '../metrics/registry.js';
import { acceptsEventStream, isEventStream } from '../proxy/media-type.js';
import type { Sealer } from '../proxy/seal.js';
import type { Concurrency } from '../ratelimit/concurrency.js';
import type { MaybePromise } from '../ratelimit/limiter.js';
import { readMemberMessages } from '../upstream/federation/answers.js';
import { declaredCapabilities, inputRequired } from '../upstream/input-required.js';
import { bufferBody, jsonAnswer, rewrittenEvents } from '../upstream/local-answer.js';
import type { UpstreamAnswer } from '../upstream/upstream.js';
import { askInSession, createSessionAnswers } from './confirm-session.js';

export interface ConfirmationDeps {
  readonly sealer: Sealer;
  readonly used: UsedNonces;
  /** Legacy sessions' questions waiting for the client's answer. */
  readonly questions: OpenQuestions;
  /** The request slot a waiting call gives back is taken again after the yes. */
  readonly concurrency: Concurrency;
  /** `confirm: approver` calls (undefined without `approvals.publicUrl` and `oidc`). */
  readonly approver?:
    | ((
        exchange: Authorized,
        index: number,
        call: Bindings,
      ) => Promise<Authorized | UpstreamAnswer | Refusal>)
    | undefined;
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
 * retry brings the answer; a yes (`confirm: true`) is consumed once, and the retry goes on with
 * the gateway's own `inputResponses` keys and `requestState` stripped — the upstream sees the
 * same tool and arguments the caller confirmed (bound by hash), and nothing before. A client that
 * did not declare `elicitation` cannot be asked: 400 -32021.
 *
 * On a legacy session the question is an `elicitation/create` on the call's own SSE answer, and the
 * call waits for the client's response (`confirm-session.ts`); a session whose client did not
 * declare form elicitation at `initialize`, a request without a session, or a batch is refused
 * `confirmation_unavailable`. Either way a `confirm` call is never forwarded unconfirmed.
 *
 * Returns the exchange to send on, an answer the gateway gives itself (the question), or a refusal.
 */
export function createConfirmation(
  deps: ConfirmationDeps,
): (exchange: Authorized) => MaybePromise<Authorized | UpstreamAnswer | Refusal> {
  const now = deps.now ?? Date.now;
  const count = (route: string, result: 'asked' | 'accepted' | 'declined' | 'expired' | 'unavailable') =>
    deps.metrics?.confirmations.inc({ route, result });
  const sessionAnswers = createSessionAnswers(deps.questions);

  return (exchange) => {
    // The client answering one of the gateway's own questions (legacy): taken here, never forwarded.
    const answered = sessionAnswers(exchange);
    if (answered !== undefined) return answered;
    // Any decision of a `confirm` entry: in `shadow` mode a denied call is forwarded too.
    const index = exchange.decisions.findIndex((d) => d.confirm !== undefined);
    if (index === -1) return exchange;
    const { body, route } = exchange;
    const message = body.messages[index];
    if (message === undefined || message.kind !== 'request') return exchange;
    const ids = [message.id];
    const modern = isModern(exchange.version);
    if (body.batch) {
      count(route.path, 'unavailable');
      // A batch is refused whole, one error per request (the client reads an array).
      return refuse('confirmation_unavailable', {
        ids: requestIds(body),
        batch: true,
        data: { detail: 'batch' },
      });
    }
    const params = message.params ?? {};
    const tool = String(params.name);
    const call: Bindings = {
      identity: exchange.identity.key,
      route: route.path,
      tool,
      argumentsHash: argumentsHashOf(params.arguments),
      pinHash: route.pinnedToolHash(tool),
      store: deps.used.scope,
    };
    // A confirmed call's retry of the upstream's own input_required — confirmed by its caller or
    // approved by another person: its state restored, not asked again.
    if (modern) {
      const continued = openContinued(deps.sealer, params.requestState);
      if (continued !== undefined) {
        const at = now();
        const id = linkId(continued.nonce);
        // From `expiresAt` on: the used nonce may be forgotten then, so the state must be too.
        if (at >= continued.expiresAt || !matches(continued, call)) {
          count(route.path, 'expired');
          exchange.confirmation = { step: 'expired', id };
          return refuse('confirmation_expired', {
            ids,
            data: { detail: at >= continued.expiresAt ? 'expired' : 'mismatch' },
          });
        }
        return consumeThen(continued.nonce, continued.expiresAt, at, ids, (first) => {
          if (!first) {
            count(route.path, 'expired');
            exchange.confirmation = { step: 'expired', id };
            return refuse('confirmation_expired', { ids, data: { detail: 'used' } });
          }
          exchange.confirmation = { step: 'continued', id, bindings: call };
          exchange.body = withoutConfirmation(body, index, continued.upstreamState);
          return exchange;
        });
      }
    }
    if (exchange.decisions[index]?.confirm === 'approver') {
      if (deps.approver !== undefined) return deps.approver(exchange, index, call);
      // Refused at load without `approvals`; never forwarded all the same.
      count(route.path, 'unavailable');
      return refuse('confirmation_unavailable', { ids, data: { detail: 'no_approvals' } });
    }
    if (!modern) {
      const session = exchange.session;
      const detail =
        session === undefined
          ? 'no_session'
          : session.elicitation !== true
            ? 'no_elicitation'
            : !acceptsEventStream(exchange.req.headers.accept)
              ? 'no_event_stream'
              : undefined;
      // Without `mode`: optional for a form in 2025-11-25, unknown to 2025-06-18 (and a session
      // seals the version its client asked for, not the one its server agreed to).
      const question = detail === undefined ? confirmationRequest(tool, params.arguments, false) : undefined;
      if (question === undefined) {
        count(route.path, 'unavailable');
        return refuse('confirmation_unavailable', {
          ids,
          data: {
            detail: detail ?? 'too_long_to_show',
            ...(detail === 'no_elicitation' ? { requiredCapabilities: { elicitation: { form: {} } } } : {}),
          },
        });
      }
      return askInSession(deps, exchange, question, (outcome) => count(route.path, outcome));
    }
    const asked = openAsked(deps.sealer, params.requestState);
    if (asked === undefined) {
      // Asked first: the caller's client must be able to answer.
      if (!takesForm(declaredCapabilities(message.params)?.elicitation)) {
        count(route.path, 'unavailable');
        return refuse('confirmation_unavailable', {
          ids,
          modern: true,
          data: { requiredCapabilities: { elicitation: {} } },
        });
      }
      // A question that cannot show the whole call (arguments too long to read) is not asked.
      const question = confirmationRequest(tool, params.arguments);
      if (question === undefined) {
        count(route.path, 'unavailable');
        return refuse('confirmation_unavailable', {
          ids,
          modern: true,
          data: { detail: 'too_long_to_show' },
        });
      }
      const at = now();
      const { state, nonce } = sealAsked(deps.sealer, call, at, deps.timeoutMs);
      count(route.path, 'asked');
      exchange.confirmation = { step: 'asked', id: linkId(nonce) };
      return jsonAnswer(
        200,
        { jsonrpc: '2.0', id: message.id, result: inputRequired(CONFIRM_KEY, question, state) },
        {},
      );
    }
    const id = linkId(asked.nonce);
    const at = now();
    // Made for another caller, route, tool or arguments, or too late: never this call's yes.
    if (at >= asked.expiresAt || !matches(asked, call)) {
      count(route.path, 'expired');
      exchange.confirmation = { step: 'expired', id };
      return refuse('confirmation_expired', {
        ids,
        data: { detail: at >= asked.expiresAt ? 'expired' : 'mismatch' },
      });
    }
    const responses = params.inputResponses as Record<string, unknown> | undefined;
    const yes = answerOf(responses?.[CONFIRM_KEY]) === 'yes';
    // Any answer uses the question up: a no is final, never turned into a yes by a later retry.
    return consumeThen(asked.nonce, asked.expiresAt, at, ids, (first) => {
      if (first && !yes) {
        count(route.path, 'declined');
        exchange.confirmation = { step: 'declined', id };
        return refuse('confirmation_declined', { ids });
      }
      if (!first) {
        count(route.path, 'expired');
        exchange.confirmation = { step: 'expired', id };
        return refuse('confirmation_expired', { ids, data: { detail: 'used' } });
      }
      count(route.path, 'accepted');
      deps.metrics?.confirmationSeconds.observe({ route: route.path }, (at - asked.askedAt) / 1000);
      exchange.confirmation = { step: 'accepted', id, bindings: call };
      exchange.body = withoutConfirmation(body, index);
      return exchange;
    });
  };

  /**
   * `then(first)` once the nonce is consumed — at once in process, after Redis answers otherwise.
   * Redis not answering refuses the yes (503; the client asks again): it is never taken twice.
   */
  function consumeThen(
    nonce: string,
    expiresAt: number,
    at: number,
    ids: readonly (string | number)[],
    then: (first: boolean) => Authorized | Refusal,
  ): MaybePromise<Authorized | Refusal> {
    const unavailable = () => refuse('limiter_unavailable', { ids, headers: { 'retry-after': '1' } });
    let consumed: boolean | 'full' | Promise<boolean>;
    try {
      consumed = deps.used.consume(nonce, expiresAt, at);
    } catch {
      return unavailable();
    }
    // A store full of live confirmations refuses new ones (503) rather than forget any.
    if (consumed === 'full') return unavailable();
    return typeof consumed === 'boolean' ? then(consumed) : consumed.then(then, unavailable);
  }
}

/**
 * A confirmed call's answer with the upstream's own `input_required` states sealed inside the
 * gateway's ({@link sealContinued}): the client's retry continues the confirmed call without being
 * asked again, and the upstream's state never reaches the client bare. Any other answer as it is.
 */
export function createContinuation(
  deps: Pick<ConfirmationDeps, 'sealer' | 'timeoutMs' | 'now'> & {
    readonly maxResponseBytes: number;
    readonly maxJsonDepth: number;
  },
): (exchange: Authorized, answer: UpstreamAnswer) => Promise<UpstreamAnswer | Refusal> | UpstreamAnswer {
  const now = deps.now ?? Date.now;
  return (exchange, answer) => {
    const bindings = exchange.confirmation?.bindings;
    if (bindings === undefined || answer.status !== 200) return answer;
    const wrap = (message: Readonly<Record<string, unknown>>): Readonly<Record<string, unknown>> => {
      const result = message.result as Record<string, unknown> | undefined;
      if (result?.resultType !== 'input_required' || typeof result.requestState !== 'string') return message;
      const state = sealContinued(deps.sealer, bindings, result.requestState, now(), deps.timeoutMs);
      return { ...message, result: { ...result, requestState: state } };
    };
    if (isEventStream(answer.headers['content-type']))
      return { ...answer, body: rewrittenEvents(answer.body, wrap, deps.maxResponseBytes) };
    return readMemberMessages(answer, deps.maxResponseBytes, deps.maxJsonDepth).then((read) => {
      const ids = requestIds(exchange.body);
      if (typeof read === 'string')
        return refuse(read === 'too_large' ? 'response_too_large' : 'upstream_rejected', { ids });
      const out = read.map(wrap);
      const text = JSON.stringify(out.length === 1 ? out[0] : out);
      return {
        ...answer,
        headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) },
        body: bufferBody(text),
      };
    });
  };
}
