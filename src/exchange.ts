import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { AnswerOutcome, AnswerScanner } from './audit/answer-outcome.js';
import type { Identity } from './auth/identity.js';
import type { Cancellation } from './cancellation.js';
import type { Bindings } from './confirm/confirmation.js';
import { type AuditDecision, REFUSALS, type Refusal, type RefusalReason, refusalBody } from './errors.js';
import type { ParsedBody } from './jsonrpc/parse.js';
import { requestIds } from './jsonrpc/request.js';
import type { Metrics } from './metrics/registry.js';
import type { Decision } from './policy/decide.js';
import type { SessionClaims } from './proxy/sessions.js';
import type { Release } from './ratelimit/concurrency.js';
import type { ClientAddress } from './server/client-address.js';
import type { Containment } from './server/contain.js';
import { sendRefusal } from './server/respond.js';
import type { CompiledRoute } from './server/router.js';
import type { RequestSpan } from './tracing/tracer.js';

/** A refused authentication: the method that failed and why (never the credential). */
export interface AuthFailureFact {
  readonly method: string;
  readonly why: string;
}

/**
 * What a finished exchange says, read by audit, metrics, tracing and the log — and nothing else
 * (DESIGN.md step 11). Every field is final once {@link Exchange.finish} ran.
 */
export interface FinishedExchange {
  readonly requestId: string;
  /** `performance.now()` when the request arrived. */
  readonly startedAt: number;
  readonly durationMs: number;
  readonly clientAddress: string;
  readonly httpMethod: string;
  /** The matched route; `undefined` when no route matched. */
  readonly route: { readonly path: string } | undefined;
  readonly identity: Identity | undefined;
  readonly authFailure: AuthFailureFact | undefined;
  /** The sealed session id the client sent, or the one the gateway issued with this answer. */
  readonly sessionId: string | undefined;
  readonly body: ParsedBody | undefined;
  /** The policy's decision for each message of `body`, when it got that far. */
  readonly decisions: readonly Decision[] | undefined;
  /** The status the client got; 499 when it left before an answer began. */
  readonly status: number;
  readonly upstreamStatus: number | undefined;
  readonly decision: 'allow' | AuditDecision;
  /** Why the exchange was refused; undefined when it was not. */
  readonly reason: RefusalReason | undefined;
  /** The rule a refusal names (`data.rule`) when no message's decision does (`maxDelegationDepth`). */
  readonly refusalRule: string | undefined;
  /** A `confirm` call: which step of its confirmation this request was, and the id linking the steps. */
  readonly confirmation: Confirmation | undefined;
  /** What the answer's responses said, by id; undefined when the answer was not read. */
  readonly answers: readonly AnswerOutcome[] | undefined;
  /** An SSE answer: its duration is the stream's life, kept out of the latency histogram. */
  readonly sse: boolean;
  readonly span: RequestSpan | undefined;
  /** The route's limiter could not answer and the request went through on the fallback. */
  readonly failedOpen: boolean;
  /** The upstream failed or answered what the gateway would not relay (`portcullis_upstream_errors_total` kind). */
  readonly upstreamError: string | undefined;
  /** Milliseconds from sending to the upstream's answer headers; undefined when none came. */
  readonly upstreamMs: number | undefined;
  /** The servers of a federated route that served the request; undefined on a single-server route. */
  readonly servers: readonly string[] | undefined;
  /** A pinned route's calls, by request id: the pinned definition hash each was checked against. */
  /** Tool calls whose result broke the pinned output schema, replaced by the gateway. */
  readonly invalidResults: ReadonlySet<string | number> | undefined;
  readonly pinned: ReadonlyMap<string | number, string> | undefined;
  /** An answer cut after it began: its status went out as 200, the refusal is counted all the same. */
  readonly cut: 'response_too_large' | 'upstream_rejected' | undefined;
}

/** What a finished exchange is handed to: audit, metrics, span and log (built once, at start-up). */
export type Finish = (exchange: FinishedExchange) => void;

/** What every exchange shares: the finish step, the instruments live reservations need, containment. */
export interface ExchangeContext {
  readonly finish: Finish;
  readonly metrics: Metrics;
  /** Ends the exchange for an exception in its `close` handler, logged and counted. */
  readonly contain: Containment;
}

/** Routed: a route matched (DESIGN.md step 2). */
export interface Routed extends Exchange {
  readonly route: CompiledRoute;
}
/** Guarded (step 3): an HTTP method the gateway forwards. */
export interface Guarded extends Routed {
  readonly forwardMethod: 'POST' | 'GET' | 'DELETE';
}
/** Authenticated (step 4), its legacy session opened: the compiler refuses to parse or send before. */
export interface Authenticated extends Guarded {
  readonly identity: Identity;
}
/** One step of a call's human confirmation: asked, then accepted, declined or expired. */
export interface Confirmation {
  /**
   * `continued`: a confirmed call's retry of the upstream's own `input_required`; `answered`: the
   * client's response to a question asked on a legacy session (the call's record says what came of it);
   * `pending`, `approved`: a `confirm: approver` call asked for (or still waiting on) its approval,
   * and the retry forwarded after it — `id` is then the approval's.
   */
  readonly step:
    | 'asked'
    | 'accepted'
    | 'continued'
    | 'declined'
    | 'expired'
    | 'answered'
    | 'pending'
    | 'approved';
  /** The same for the question and its answer (a hash of the confirmation's nonce). */
  readonly id: string;
  /** A call forwarded confirmed: what the upstream's own `requestState` is sealed with (never audited). */
  readonly bindings?: Bindings;
}

/** Parsed (step 5, POST only). */
export interface Parsed extends Authenticated {
  /** Writable: the authorize stage puts the resource URIs policy matched in their canonical form. */
  body: ParsedBody;
  readonly version: string;
}
/** Authorized (step 6): every message has its decision. */
export interface Authorized extends Parsed {
  readonly decisions: readonly Decision[];
}

/**
 * One HTTP request through the gateway (DESIGN.md "The request lifecycle"), created by the router
 * stage. Stages read it and add their facts; none reaches back. It **finishes exactly once** —
 * success, refusal, upstream failure or client abort alike — and audit, metrics, tracing and the
 * release of every reservation read their facts there, in {@link finish}.
 *
 * One object per request with every field set in the constructor (one hidden class); stages narrow
 * its type (`Routed`, `Authenticated`, …) by returning it, so no stage allocates a context of its own.
 * Its single `close` listener on the response is the only place a client's leaving is noticed:
 * the upstream request is aborted, the answer stream dropped, and the exchange finished as 499.
 */
export class Exchange implements FinishedExchange {
  /** Tells it apart from a `Refusal` in a stage's result. */
  readonly kind = 'exchange';
  readonly requestId: string = randomUUID();
  readonly startedAt: number = performance.now();
  readonly clientAddress: string;
  /** The connection's peer; the client itself unless a trusted proxy is in between. */
  readonly peer: string;
  /** The `X-Forwarded-For` chain received from a trusted proxy. */
  readonly forwardedFor: string | undefined;
  readonly httpMethod: string;
  readonly span: RequestSpan | undefined;

  // Facts, each set once by the stage that learns it.
  route: CompiledRoute | undefined = undefined;
  forwardMethod: 'POST' | 'GET' | 'DELETE' | undefined = undefined;
  /** The request's `Origin`, accepted by the guard: CORS headers go to it. */
  origin: string | undefined = undefined;
  identity: Identity | undefined = undefined;
  authFailure: AuthFailureFact | undefined = undefined;
  /** The legacy session the request belongs to, unsealed and checked against route and identity. */
  session: SessionClaims | undefined = undefined;
  sessionId: string | undefined = undefined;
  body: ParsedBody | undefined = undefined;
  version: string | undefined = undefined;
  decisions: readonly Decision[] | undefined = undefined;
  /** Policy and admission let it through toward the upstream. */
  allowed = false;
  /**
   * A legacy confirmation's question is out and the call waits for the caller: a client that
   * leaves now left before any answer to its call began (499), though its stream had opened.
   */
  awaitingCaller = false;
  failedOpen = false;
  /** The rate-limit headers every answer to it carries. */
  limitHeaders: Record<string, string> | undefined = undefined;

  // Reservations, released in `finish`.
  requestSlot: Release | undefined = undefined;
  streamSlot: Release | undefined = undefined;
  listenSlot: Release | undefined = undefined;
  /** The answer counts in `portcullis_active_streams` until it finishes. */
  streamCounted = false;

  // The upstream and its answer.
  /** Cancelled when the client leaves: set by the send stage. */
  cancellation: Cancellation | undefined = undefined;
  sentAt = 0;
  upstreamMs: number | undefined = undefined;
  servers: readonly string[] | undefined = undefined;
  /** A pinned route's calls, by request id: the pinned definition hash each was checked against. */
  pinned: ReadonlyMap<string | number, string> | undefined = undefined;
  /** The gateway answered a tool call itself: its arguments broke the pinned schema. */
  invalidArguments = false;
  /** Tool calls whose result broke the pinned output schema, replaced by the gateway (filled as the answer is read). */
  invalidResults: ReadonlySet<string | number> | undefined = undefined;
  upstreamStatus: number | undefined = undefined;
  upstreamError: string | undefined = undefined;
  /** The upstream body being relayed or read: dropped when the client leaves. */
  answerBody: Readable | undefined = undefined;
  scanner: AnswerScanner | undefined = undefined;
  sse = false;
  cut: 'response_too_large' | 'upstream_rejected' | undefined = undefined;

  // Set by `finish`.
  refusal: Refusal | undefined = undefined;
  /** The client closed its connection before the answer was complete. */
  clientGone = false;
  finished = false;
  status = 0;
  decision: 'allow' | AuditDecision = 'error';
  reason: RefusalReason | undefined = undefined;
  refusalRule: string | undefined = undefined;
  confirmation: Confirmation | undefined = undefined;
  answers: readonly AnswerOutcome[] | undefined = undefined;
  durationMs = 0;
  /** Refused in a stream already open: the client got 200 and the refusal as an event. */
  private refusedInStream = false;
  /** Set for an answer the gateway gives itself (metadata, preflight): a span, no record. */
  private unrecorded: string | undefined = undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    client: ClientAddress,
    span: RequestSpan | undefined,
    private readonly context: ExchangeContext,
  ) {
    this.clientAddress = client.address;
    this.peer = client.peer;
    this.forwardedFor = client.forwardedFor;
    this.httpMethod = req.method ?? 'UNKNOWN';
    this.span = span;
    res.once('close', this.onClose);
  }

  /** The response closed: complete, or cut by the client (or by the gateway, which finished first). */
  private readonly onClose = (): void => {
    try {
      if (!this.res.writableEnded) {
        this.clientGone = true;
        // A client that goes away aborts its upstream request: no leaked sockets or upstream work.
        this.cancellation?.cancel();
      }
      const body = this.answerBody;
      if (body !== undefined && !body.readableEnded) body.destroy();
      this.finish();
    } catch (err) {
      // Run from the socket's events: a throw here would end the process and every other exchange.
      this.context.contain.fail('close', this, err);
    }
  };

  /**
   * Answers a refusal (the request's ids, CORS for an accepted origin) and finishes. A refusal
   * decided without the body at hand (an upstream failure) still answers the request's ids.
   * `close`: the connection is not reused (a body left unread, a framing the gateway distrusts).
   */
  refuse(refusal: Refusal, close = false): void {
    if (this.finished) return;
    const body = this.body;
    const answer =
      refusal.ids.length === 0 && body !== undefined
        ? { ...refusal, ids: requestIds(body), batch: body.batch }
        : refusal;
    if (this.res.headersSent) {
      // An SSE answer the gateway opened itself (a legacy confirmation): the refusal is its last event.
      this.refusedInStream = true;
      this.res.end(`event: message\ndata: ${refusalBody(answer)}\n\n`);
    } else sendRefusal(this.res, answer, { requestId: this.requestId, origin: this.origin, close });
    this.refusal = refusal;
    this.finish();
  }

  /** Finishes an answer the gateway gave itself (RFC 9728 metadata, a CORS preflight): its span, no audit record. */
  finishUnrecorded(spanName: string): void {
    this.unrecorded = spanName;
    this.finish();
  }

  /**
   * The one end of every exchange; later calls do nothing. Releases every reservation, then hands
   * the facts to audit, metrics, tracing and the log.
   */
  finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.requestSlot?.();
    this.streamSlot?.();
    this.listenSlot?.();
    if (this.streamCounted && this.route !== undefined)
      this.context.metrics.activeStreams.dec({ route: this.route.path });
    if (this.unrecorded !== undefined) {
      this.span?.end(this.res.statusCode, this.unrecorded);
      return;
    }
    this.durationMs = Math.round((performance.now() - this.startedAt) * 1000) / 1000;
    const refusal = this.refusal;
    if (refusal !== undefined) {
      const spec = REFUSALS[refusal.reason];
      this.status = this.refusedInStream ? this.res.statusCode : spec.status;
      this.decision = spec.decision;
      this.reason = refusal.reason;
      const rule = refusal.data?.rule;
      if (typeof rule === 'string') this.refusalRule = rule;
    } else {
      // A client that left before its answer began: 499, nothing was sent.
      this.status =
        this.res.headersSent && !(this.awaitingCaller && this.clientGone) ? this.res.statusCode : 499;
      this.decision = this.allowed ? 'allow' : 'error';
      if (this.invalidArguments) {
        // Answered (200, a tool error result) but not forwarded: a denial, for the record.
        this.decision = 'deny';
        this.reason = 'invalid_arguments';
      }
    }
    this.answers = this.scanner?.end();
    this.context.finish(this);
  }
}
