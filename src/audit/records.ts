import { hash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Identity } from '../auth/identity.js';
import type { FinishedExchange } from '../exchange.js';
import { policyTargetOf } from '../jsonrpc/methods.js';
import type { RpcMessage } from '../jsonrpc/parse.js';
import type { Decision } from '../policy/decide.js';
import type { AnswerOutcome } from './answer-outcome.js';
import type { AuditIdentity, AuditRecord, AuditStream } from './stream.js';

/** Writes the audit records of a finished exchange. */
export type AuditRecorder = (exchange: FinishedExchange) => void;

/** Shared by exchanges whose answer said nothing (never written to: there is nothing to add). */
const NO_ANSWERS: Map<unknown, AnswerOutcome> = new Map();

export interface AuditRecorderDeps {
  readonly audit: AuditStream;
  /** `audit.arguments` applied to a request's arguments. */
  readonly argumentsView: (args: unknown) => unknown;
  readonly logger: Logger;
  /** Counts a failing arguments view (`portcullis_internal_errors_total{where="outcome"}`). */
  readonly onViewError: () => void;
}

/**
 * One audit record per JSON-RPC message of a finished exchange (one for the HTTP request when
 * there is none; DESIGN.md step 11). `undefined` when the stream writes nowhere (`audit.destination:
 * none`): the finish step then builds no record at all.
 */
export function createAuditRecorder({
  audit,
  argumentsView,
  logger,
  onViewError,
}: AuditRecorderDeps): AuditRecorder | undefined {
  if (!audit.enabled) return undefined;
  const viewArguments = guardedView(argumentsView, logger, onViewError);
  return (exchange) => {
    const shared = sharedFields(exchange, new Date().toISOString());
    // Answers by id, built once: a batch of n requests must not cost n² lookups.
    const answers = answersById(exchange.answers);
    const messages = exchange.body?.messages;
    if (messages === undefined || messages.length === 0)
      audit.write(recordFor(shared, exchange, viewArguments, answers, undefined));
    else
      for (let i = 0; i < messages.length; i++)
        audit.write(
          recordFor(shared, exchange, viewArguments, answers, messages[i], exchange.decisions?.[i]),
        );
  };
}

/** The answers of an exchange by id (the first answer to an id counts). */
export function answersById(list: readonly AnswerOutcome[] | undefined): ReadonlyMap<unknown, AnswerOutcome> {
  if (list === undefined || list.length === 0) return NO_ANSWERS;
  const answers = new Map<unknown, AnswerOutcome>();
  for (const answer of list) if (!answers.has(answer.id)) answers.set(answer.id, answer);
  return answers;
}

/** A message's audit decision: the exchange's, or `shadow-deny` for one forwarded although the policy denies it. */
export function messageDecision(
  exchange: FinishedExchange,
  decision: Decision | undefined,
): AuditRecord['decision'] {
  return exchange.decision === 'allow' && decision?.effect === 'deny' ? 'shadow-deny' : exchange.decision;
}

/** What a message's answer said, as the record and the tool metric name it. */
export function answerOf(
  answers: ReadonlyMap<unknown, AnswerOutcome>,
  message: RpcMessage | undefined,
): AuditRecord['outcome'] {
  const answer = message?.kind === 'request' ? answers.get(message.id) : undefined;
  if (answer === undefined) return undefined;
  return answer.errorCode === undefined
    ? { isError: answer.isError }
    : { isError: answer.isError, errorCode: answer.errorCode };
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
  | 'servers'
  | 'durationMs'
>;

/** What every record of one HTTP request shares, computed once. */
function sharedFields(exchange: FinishedExchange, time: string): Shared {
  return {
    time,
    requestId: exchange.requestId,
    route: exchange.route?.path ?? null,
    session: exchange.sessionId === undefined ? undefined : sessionHash(exchange.sessionId),
    clientAddress: exchange.clientAddress,
    identity: exchange.identity === undefined ? null : auditIdentity(exchange.identity),
    authentication: exchange.authFailure,
    httpMethod: exchange.httpMethod,
    status: exchange.status,
    upstreamStatus: exchange.upstreamStatus ?? null,
    servers: exchange.servers,
    durationMs: exchange.durationMs,
  };
}

/** One record, always with the same keys in the same order (JSON.stringify drops the undefined ones). */
function recordFor(
  shared: Shared,
  exchange: FinishedExchange,
  argumentsView: (args: unknown) => unknown,
  answers: ReadonlyMap<unknown, AnswerOutcome>,
  message: RpcMessage | undefined,
  decision?: Decision,
): AuditRecord {
  const request = message !== undefined && message.kind !== 'response' ? message : undefined;
  const params = request?.params;
  const method = request?.method;
  const id = message?.kind === 'notification' ? undefined : message?.id;
  const name = typeof params?.name === 'string' ? params.name : undefined;
  // What the method names for policy (the method table) is what the record names.
  const target = policyTargetOf(method);
  // A result the gateway replaced because it broke the pinned output schema: the server failed.
  const invalidResult = id !== undefined && id !== null && exchange.invalidResults?.has(id) === true;
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
    decision: invalidResult ? 'error' : messageDecision(exchange, decision),
    reason: invalidResult
      ? 'invalid_result'
      : (exchange.reason ?? (decision?.effect === 'deny' ? decision.reason : undefined)),
    rule: decision?.rule ?? exchange.refusalRule,
    missingScopes: decision?.missing.length ? decision.missing : undefined,
    evaluationError: decision?.evaluationError,
    status: shared.status,
    upstreamStatus: shared.upstreamStatus,
    servers: shared.servers,
    pin: id === undefined || id === null ? undefined : exchange.pinned?.get(id),
    // The confirmed call's record (its entry may have lost `confirm` in a reload while it waited),
    // or the answer's; in a batch only the record of the message that needed it.
    confirmation:
      exchange.confirmation === undefined ||
      (decision?.confirm === undefined && (exchange.body?.messages.length ?? 0) > 1)
        ? undefined
        : { step: exchange.confirmation.step, id: exchange.confirmation.id },
    outcome: answerOf(answers, message),
    durationMs: shared.durationMs,
  };
}

/**
 * Identities are built once per credential and reused while it is (an API key's, a cached JWT's,
 * a connection's certificate's): so is what their records say of them.
 */
const auditIdentities = new WeakMap<Identity, AuditIdentity>();

function auditIdentity(identity: Identity): AuditIdentity {
  let named = auditIdentities.get(identity);
  if (named === undefined) {
    named = describeIdentity(identity);
    auditIdentities.set(identity, named);
  }
  return named;
}

function describeIdentity(identity: Identity): AuditIdentity {
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
  return hash('sha256', sealed).slice(0, 32);
}
