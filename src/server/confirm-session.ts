import { randomBytes } from 'node:crypto';
import { answerOf, linkId, RESERVED_PREFIX } from '../confirm/confirmation.js';
import type { Asker, OpenQuestions, Verdict } from '../confirm/questions.js';
import { type Refusal, refuse } from '../errors.js';
import type { Authorized, Confirmation } from '../exchange.js';
import type { RpcMessage } from '../jsonrpc/parse.js';
import type { Metrics } from '../metrics/registry.js';
import { NOT_A_PAGE } from '../proxy/headers.js';
import type { Concurrency } from '../ratelimit/concurrency.js';
import { jsonAnswer } from '../upstream/local-answer.js';
import type { UpstreamAnswer } from '../upstream/upstream.js';
import { corsHeaders } from './respond.js';

/**
 * Human confirmation on a legacy session (2025-06-18 and 2025-11-25; DESIGN.md "human
 * confirmation"): the call's answer becomes an SSE stream the gateway opens itself, its first
 * event an `elicitation/create` whose id carries the reserved prefix; the client's response comes
 * back in a POST of the same session ({@link createSessionAnswers}), and the call waits for it —
 * holding no concurrency slot — until the yes, a no, or `confirmTimeoutSec`. After the yes the
 * call goes upstream and its answer is relayed into the same stream.
 */

export interface SessionConfirmationDeps {
  readonly questions: OpenQuestions;
  readonly concurrency: Concurrency;
  readonly timeoutMs: number;
  readonly metrics?: Metrics | undefined;
  readonly now?: () => number;
  /** How often a waiting stream says it is alive (default 15 s). */
  readonly heartbeatMs?: number;
}

/** The prefix of the gateway's own `elicitation/create` ids: a response to one is never forwarded. */
const QUESTION_ID_PREFIX = `${RESERVED_PREFIX}confirm/`;

/** How often a waiting stream says it is alive: proxies with an idle timeout keep it open. */
const HEARTBEAT_MS = 15_000;

type Outcome = 'asked' | 'accepted' | 'declined' | 'expired' | 'unavailable';

/**
 * Asks the caller of `exchange`'s call on its SSE answer, with `question` (an `elicitation/create`
 * request without id). Resolves to the exchange to forward (its request slot taken again), or a
 * refusal — answered as the stream's last event once the stream is open.
 */
export async function askInSession(
  deps: SessionConfirmationDeps,
  exchange: Authorized,
  question: Readonly<Record<string, unknown>>,
  count: (outcome: Outcome) => void,
): Promise<Authorized | Refusal> {
  const { res, route } = exchange;
  const session = exchange.session;
  if (session === undefined) return refuse('internal');
  const now = deps.now ?? Date.now;
  const id = `${QUESTION_ID_PREFIX}${randomBytes(16).toString('base64url')}`;
  const asker: Asker = { identity: exchange.identity.key, route: route.path, session: session.upstreamId };
  // A waiting call is an open stream: bounded per identity by `limits.maxStreamsPerIdentity`,
  // so no caller can hold every question a replica can keep open.
  const stream = deps.concurrency.stream(exchange.identity.key);
  if (stream === undefined) return refuse('concurrency_limited');
  exchange.streamSlot = stream;
  let waiting: Awaited<ReturnType<OpenQuestions['open']>>;
  try {
    waiting = await deps.questions.open(id, asker, deps.timeoutMs);
  } catch {
    // Redis does not answer, or this replica holds too many open questions: nothing was asked.
    return refuse('limiter_unavailable', { headers: { 'retry-after': '1' } });
  }
  if (exchange.finished) {
    waiting.cancel();
    return refuse('internal'); // the client left while the question was opened: nothing to answer
  }
  const confirmation = linkId(id);
  exchange.confirmation = { step: 'asked', id: confirmation };
  count('asked');
  const askedAt = now();
  // The answer is a stream from now on: every later outcome, a refusal too, is an event in it.
  res.writeHead(200, {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache, no-store',
    ...NOT_A_PAGE,
    'x-request-id': exchange.requestId,
    ...exchange.limitHeaders,
    ...corsHeaders(exchange.origin),
  });
  res.flushHeaders();
  exchange.sse = true;
  exchange.streamCounted = true;
  deps.metrics?.activeStreams.inc({ route: route.path });
  res.write(`event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id, ...question })}\n\n`);
  // A person may take minutes: the call gives its request slot back while it waits, and is not
  // let through until the yes (a client leaving now is recorded as leaving before its answer).
  exchange.requestSlot?.();
  exchange.requestSlot = undefined;
  exchange.allowed = false;
  exchange.awaitingCaller = true;
  const heartbeat = setInterval(() => {
    if (!res.destroyed && !res.writableEnded) res.write(': waiting for confirmation\n\n');
  }, deps.heartbeatMs ?? HEARTBEAT_MS);
  const gone = () => waiting.cancel();
  res.once('close', gone);
  let verdict: Verdict;
  try {
    verdict = await waiting.verdict;
  } finally {
    clearInterval(heartbeat);
    res.off('close', gone);
  }
  exchange.awaitingCaller = false;
  const step = (next: Confirmation['step']) => {
    exchange.confirmation = { step: next, id: confirmation };
  };
  switch (verdict) {
    case 'gone':
      // Finished already as the client's leaving (499, recorded as asked).
      return refuse('internal');
    case 'expired':
      count('expired');
      step('expired');
      return refuse('confirmation_expired', { data: { detail: 'timeout' } });
    case 'no':
      count('declined');
      step('declined');
      return refuse('confirmation_declined');
  }
  count('accepted');
  deps.metrics?.confirmationSeconds.observe({ route: route.path }, (now() - askedAt) / 1000);
  step('accepted');
  const slot = deps.concurrency.request(exchange.identity.key);
  if (slot === undefined) return refuse('concurrency_limited');
  exchange.requestSlot = slot;
  exchange.allowed = true;
  return exchange;
}

/**
 * The client's response to one of the gateway's questions, in a POST of its session: taken by the
 * question waiting for it (this replica's, or with Redis any replica's) and answered 202, never
 * forwarded. Undefined when the body holds no such response.
 */
export function createSessionAnswers(
  questions: OpenQuestions,
): (exchange: Authorized) => Promise<UpstreamAnswer | Refusal> | undefined {
  return (exchange) => {
    const { body } = exchange;
    if (!body.messages.some(isQuestionAnswer)) return undefined;
    const message = body.messages[0];
    const session = exchange.session;
    // One response alone (not in a batch), in the session that was asked: nothing else to forward.
    if (body.batch || body.messages.length !== 1 || message?.kind !== 'response' || session === undefined)
      return Promise.resolve(refuse('confirmation_expired', { data: { detail: 'not_in_session' } }));
    const id = String(message.id);
    exchange.confirmation = { step: 'answered', id: linkId(id) };
    // The answer goes nowhere upstream: its request slot passes to the call it lets go on.
    exchange.requestSlot?.();
    exchange.requestSlot = undefined;
    const verdict = verdictOf(body.forward);
    const asker: Asker = {
      identity: exchange.identity.key,
      route: exchange.route.path,
      session: session.upstreamId,
    };
    return questions.answer(id, asker, verdict).then(
      (taken): UpstreamAnswer | Refusal =>
        taken
          ? jsonAnswer(202, undefined, {})
          : refuse('confirmation_expired', { data: { detail: 'unknown' } }),
      () => refuse('limiter_unavailable', { headers: { 'retry-after': '1' } }),
    );
  };
}

/** Whether `message` is a response to one of the gateway's questions. */
function isQuestionAnswer(message: RpcMessage): boolean {
  return (
    message.kind === 'response' && typeof message.id === 'string' && message.id.startsWith(RESERVED_PREFIX)
  );
}

/** What a response says: yes only as an accepted form with `confirm: true` (an error is a no). */
function verdictOf(forward: string): 'yes' | 'no' {
  const response = JSON.parse(forward) as { result?: unknown };
  return answerOf(response.result);
}
