import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { AnswerOutcome } from '../audit/answer-outcome.js';
import type { AuditIdentity, AuditRecord, AuditStream } from '../audit/stream.js';
import type { Identity } from '../auth/identity.js';
import type { AuditDecision, RefusalReason } from '../errors.js';
import { policyTargetOf, toolNameOf } from '../jsonrpc/methods.js';
import type { ParsedBody, RpcMessage } from '../jsonrpc/parse.js';
import { type Metrics, methodLabel } from '../metrics/registry.js';
import type { Decision } from '../policy/decide.js';
import type { RequestSpan } from '../tracing/tracer.js';

/** Everything known about a finished request: what the audit record and the metrics say. */
export interface Outcome {
  readonly requestId: string;
  readonly startedAt: number;
  readonly clientAddress: string;
  readonly httpMethod: string;
  /** The matched route's path; `null` when no route matched. */
  readonly route: string | null;
  readonly identity: Identity | null;
  /** A refused authentication: the method that failed and why. */
  readonly authFailure?: { readonly method: string; readonly why: string } | undefined;
  /** The sealed session id the client sent, or the one the gateway issued with this answer. */
  readonly session?: string | undefined;
  readonly body: ParsedBody | undefined;
  /** The policy's decision for each message of `body`, when it got that far. */
  readonly decisions?: readonly Decision[] | undefined;
  readonly status: number;
  readonly upstreamStatus: number | null;
  readonly decision: 'allow' | AuditDecision;
  readonly reason?: RefusalReason;
  /** What the answer's responses said, by id; absent when the answer was not read. */
  readonly answers?: readonly AnswerOutcome[] | undefined;
  /** An SSE stream: its duration is the stream's life, kept out of the latency histogram. */
  readonly sse?: boolean;
  /** The request's trace span, ended here. */
  readonly span?: RequestSpan | undefined;
}

export type RecordOutcome = (outcome: Outcome) => void;

/** Shared by requests whose answer said nothing (never written to: there is nothing to add). */
const NO_ANSWERS: Map<unknown, AnswerOutcome> = new Map();

export interface OutcomeDeps {
  readonly audit: AuditStream;
  readonly metrics: Metrics;
  /** `audit.arguments` applied to a request's arguments. */
  readonly argumentsView: (args: unknown) => unknown;
  readonly logger: Logger;
  /** `log.requests`: one operational log line per request. */
  readonly logRequests: boolean;
}

/**
 * One audit record per JSON-RPC message (one for the HTTP request when there is none), the
 * metrics, and — with `log.requests` — a log line.
 */
export function createOutcomeRecorder({
  audit,
  metrics,
  argumentsView,
  logger,
  logRequests,
}: OutcomeDeps): RecordOutcome {
  const viewArguments = guardedView(argumentsView, logger, () =>
    metrics.internalErrors.inc({ where: 'outcome' }),
  );
  return (outcome) => {
    const durationMs = Math.round((performance.now() - outcome.startedAt) * 1000) / 1000;
    const time = new Date().toISOString();
    const shared = sharedFields(outcome, time, durationMs);
    // Answers by id, built once: a batch of n requests must not cost n² lookups.
    const answers = outcome.answers?.length ? new Map<unknown, AnswerOutcome>() : NO_ANSWERS;
    for (const answer of outcome.answers ?? []) if (!answers.has(answer.id)) answers.set(answer.id, answer);
    const messages = outcome.body?.messages;
    const route = outcome.route ?? 'none';
    if (messages === undefined || messages.length === 0)
      audit.write(recordFor(shared, outcome, viewArguments, answers, undefined));
    else
      messages.forEach((message, i) => {
        const decision = outcome.decisions?.[i];
        const record = recordFor(shared, outcome, viewArguments, answers, message, decision);
        audit.write(record);
        if (record.tool !== undefined) {
          metrics.toolCalls.inc({
            route,
            tool: toolLabel(decision),
            decision: record.decision,
            outcome: outcomeLabel(record.outcome),
          });
        }
      });

    outcome.decisions?.forEach((decision) => {
      const label =
        decision.effect === 'allow' ? 'allow' : outcome.decision === 'allow' ? 'shadow-deny' : 'deny';
      metrics.decisions.inc({ route, decision: label });
    });
    const method = methodOf(outcome);
    metrics.requests.inc({ route, method, status: outcome.status });
    if (outcome.span !== undefined) endSpan(outcome.span, outcome, method);
    if (outcome.reason !== undefined) metrics.refusals.inc({ route, reason: outcome.reason });
    else if (!outcome.sse) metrics.requestDuration.observe({ route }, durationMs / 1000);
    if (logRequests) {
      logger.info(
        {
          requestId: outcome.requestId,
          route: outcome.route,
          method,
          status: outcome.status,
          decision: outcome.decision,
          reason: outcome.reason,
          identity: outcome.identity?.key,
          durationMs,
        },
        'request',
      );
    }
  };
}

/** What a record's `arguments` says when the view failed: the record is written all the same. */
export const ARGUMENTS_UNAVAILABLE = '[unavailable]';

/**
 * `argumentsView` that never keeps a record from being written. The view walks client data
 * without recursion and within a depth bound (`audit/arguments.ts`), so it should not throw; if a
 * bug makes it throw anyway, the record — who was refused what, and why — matters more than its
 * arguments: it is written with `[unavailable]` and the bug is logged with its stack. (The
 * recorder runs in the exchange's `close` listener: an exception there once took the process
 * down and lost the record of a denied call.)
 */
function guardedView(
  view: (args: unknown) => unknown,
  logger: Logger,
  count: () => void,
): (args: unknown) => unknown {
  return (args) => {
    try {
      return view(args);
    } catch (err) {
      logger.error({ err }, 'audit arguments view failed (a bug); the record is written without them');
      count();
      return ARGUMENTS_UNAVAILABLE;
    }
  };
}

type Shared = Pick<
  AuditRecord,
  | 'time'
  | 'requestId'
  | 'route'
  | 'session'
  | 'clientAddress'
  | 'identity'
  | 'authentication'
  | 'httpMethod'
  | 'status'
  | 'upstreamStatus'
  | 'durationMs'
>;

/** What every record of one HTTP request shares, computed once. */
function sharedFields(outcome: Outcome, time: string, durationMs: number): Shared {
  return {
    time,
    requestId: outcome.requestId,
    route: outcome.route,
    session: outcome.session === undefined ? undefined : sessionHash(outcome.session),
    clientAddress: outcome.clientAddress,
    identity: outcome.identity === null ? null : auditIdentity(outcome.identity),
    authentication: outcome.authFailure,
    httpMethod: outcome.httpMethod,
    status: outcome.status,
    upstreamStatus: outcome.upstreamStatus,
    durationMs,
  };
}

/** One record, always with the same keys in the same order (JSON.stringify drops the undefined ones). */
function recordFor(
  shared: Shared,
  outcome: Outcome,
  argumentsView: (args: unknown) => unknown,
  answers: ReadonlyMap<unknown, AnswerOutcome>,
  message: RpcMessage | undefined,
  decision?: Decision,
): AuditRecord {
  const request = message !== undefined && message.kind !== 'response' ? message : undefined;
  const params = request?.params;
  const method = request?.method;
  const id = message?.kind === 'notification' ? undefined : message?.id;
  const answer = message?.kind === 'request' ? answers.get(message.id) : undefined;
  const name = typeof params?.name === 'string' ? params.name : undefined;
  // What the method names for policy (the method table) is what the record names.
  const target = policyTargetOf(method);
  return {
    time: shared.time,
    requestId: shared.requestId,
    route: shared.route,
    session: shared.session,
    clientAddress: shared.clientAddress,
    identity: shared.identity,
    authentication: shared.authentication,
    httpMethod: shared.httpMethod,
    method: method ?? null,
    id,
    tool: target === 'tool' ? name : undefined,
    resource: target === 'resource' && typeof params?.uri === 'string' ? params.uri : undefined,
    prompt: target === 'prompt' ? name : undefined,
    arguments:
      (target === 'tool' || target === 'prompt') && params?.arguments !== undefined
        ? argumentsView(params.arguments)
        : undefined,
    // Forwarded although the policy denies it: shadow mode.
    decision: outcome.decision === 'allow' && decision?.effect === 'deny' ? 'shadow-deny' : outcome.decision,
    reason: outcome.reason ?? (decision?.effect === 'deny' ? decision.reason : undefined),
    rule: decision?.rule,
    missingScopes: decision?.missing.length ? decision.missing : undefined,
    status: shared.status,
    upstreamStatus: shared.upstreamStatus,
    outcome:
      answer === undefined
        ? undefined
        : answer.errorCode === undefined
          ? { isError: answer.isError }
          : { isError: answer.isError, errorCode: answer.errorCode },
    durationMs: shared.durationMs,
  };
}

/** The span's attributes: route, method, tool, decision and the identity's subject. */
function endSpan(span: RequestSpan, outcome: Outcome, method: string): void {
  const first = outcome.body?.messages[0];
  const tool = first === undefined ? undefined : toolNameOf(first);
  span.setAttributes({
    'http.request.method': outcome.httpMethod,
    'portcullis.route': outcome.route ?? 'none',
    'portcullis.request_id': outcome.requestId,
    'mcp.method.name': method,
    ...(typeof tool === 'string' ? { 'gen_ai.tool.name': tool } : {}),
    'portcullis.decision': outcome.decision,
    ...(outcome.reason === undefined ? {} : { 'portcullis.reason': outcome.reason }),
    ...(outcome.identity === null ? {} : { 'enduser.id': outcome.identity.subject }),
    ...(outcome.upstreamStatus === null ? {} : { 'portcullis.upstream_status': outcome.upstreamStatus }),
  });
  span.end(outcome.status, `${method} ${outcome.route ?? 'unrouted'}`);
}

function auditIdentity(identity: Identity): AuditIdentity {
  return {
    key: identity.key,
    subject: identity.subject,
    methods: identity.methods,
    ...(identity.keyId === undefined ? {} : { keyId: identity.keyId }),
    ...(identity.issuer === undefined ? {} : { issuer: identity.issuer }),
    ...(identity.certificate === undefined ? {} : { certificateSha256: identity.certificate.fingerprint256 }),
  };
}

/** A session is named by a hash of the sealed id, which is a bearer secret for its identity. */
function sessionHash(sealed: string): string {
  return createHash('sha256').update(sealed).digest('hex').slice(0, 32);
}

/**
 * The bounded `tool` label: the policy entry that matched a `tools/call` — an exact name or a
 * pattern from the policy file — and `other` for names only the default rule covers, so a flood of
 * invented names adds no series.
 */
function toolLabel(decision: Decision | undefined): string {
  const rule = decision?.rule;
  if (rule?.startsWith('tools.') !== true) return 'other';
  const entry = rule.slice('tools.'.length);
  // The rule quotes names with unusual characters (`tools."read_*"`); the label is the name itself.
  return entry.startsWith('"') ? (JSON.parse(entry) as string) : entry;
}

function outcomeLabel(outcome: AuditRecord['outcome']): string {
  if (outcome === undefined) return 'none';
  if (outcome.errorCode !== undefined) return 'rpc_error';
  return outcome.isError ? 'tool_error' : 'ok';
}

/** The bounded `method` label: the JSON-RPC method, `batch`, or the HTTP method for GET/DELETE. */
function methodOf(outcome: Outcome): string {
  const body = outcome.body;
  if (body === undefined) return methodLabel(outcome.httpMethod === 'POST' ? 'none' : outcome.httpMethod);
  if (body.batch) return 'batch';
  const first = body.messages[0];
  return methodLabel(first === undefined || first.kind === 'response' ? 'response' : first.method);
}
