import type { AuditRecord, AuditStream } from '../audit/stream.js';
import type { Identity } from '../auth/identity.js';
import type { AuditDecision, RefusalReason } from '../errors.js';
import type { ParsedBody, RpcMessage } from '../jsonrpc/parse.js';
import { type Metrics, methodLabel } from '../metrics/registry.js';
import type { Decision } from '../policy/decide.js';

/** Everything known about a finished request: what the audit record and the metrics say. */
export interface Outcome {
  readonly requestId: string;
  readonly startedAt: number;
  readonly clientAddress: string;
  readonly httpMethod: string;
  /** The matched route's path; `null` when no route matched. */
  readonly route: string | null;
  readonly identity: Identity | null;
  readonly body: ParsedBody | undefined;
  /** The policy's decision for each message of `body`, when it got that far. */
  readonly decisions?: readonly Decision[] | undefined;
  readonly status: number;
  readonly upstreamStatus: number | null;
  readonly decision: 'allow' | AuditDecision;
  readonly reason?: RefusalReason;
  /** An SSE stream: its duration is the stream's life, kept out of the latency histogram. */
  readonly sse?: boolean;
}

export type RecordOutcome = (outcome: Outcome) => void;

/** One audit record per JSON-RPC message (one for the HTTP request when there is none), and the metrics. */
export function createOutcomeRecorder(audit: AuditStream, metrics: Metrics): RecordOutcome {
  return (outcome) => {
    const durationMs = Math.round((performance.now() - outcome.startedAt) * 1000) / 1000;
    const time = new Date().toISOString();
    const messages = outcome.body?.messages;
    if (messages === undefined || messages.length === 0)
      audit.write(auditRecord(outcome, time, durationMs, undefined, undefined));
    else
      messages.forEach((message, i) => {
        audit.write(auditRecord(outcome, time, durationMs, message, outcome.decisions?.[i]));
      });

    const route = outcome.route ?? 'none';
    outcome.decisions?.forEach((decision) => {
      const label =
        decision.effect === 'allow' ? 'allow' : outcome.decision === 'allow' ? 'shadow-deny' : 'deny';
      metrics.decisions.inc({ route, decision: label });
    });
    metrics.requests.inc({ route, method: methodOf(outcome), status: outcome.status });
    if (outcome.reason !== undefined) metrics.refusals.inc({ route, reason: outcome.reason });
    else if (!outcome.sse) metrics.requestDuration.observe({ route }, durationMs / 1000);
  };
}

/** One record, always built with the same keys in the same order (JSON.stringify drops the undefined ones). */
function auditRecord(
  outcome: Outcome,
  time: string,
  durationMs: number,
  message: RpcMessage | undefined,
  decision: Decision | undefined,
): AuditRecord {
  const request = message !== undefined && message.kind !== 'response' ? message : undefined;
  const tool = request?.method === 'tools/call' ? request.params?.name : undefined;
  return {
    time,
    requestId: outcome.requestId,
    route: outcome.route,
    clientAddress: outcome.clientAddress,
    identity: outcome.identity?.key ?? null,
    httpMethod: outcome.httpMethod,
    method: request?.method ?? null,
    id: message?.kind === 'notification' ? undefined : message?.id,
    tool: typeof tool === 'string' ? tool : undefined,
    // Forwarded although the policy denies it: shadow mode.
    decision: outcome.decision === 'allow' && decision?.effect === 'deny' ? 'shadow-deny' : outcome.decision,
    reason: outcome.reason ?? (decision?.effect === 'deny' ? decision.reason : undefined),
    rule: decision?.rule,
    missingScopes: decision?.missing.length ? decision.missing : undefined,
    upstreamStatus: outcome.upstreamStatus,
    status: outcome.status,
    durationMs,
  };
}

/** The bounded `method` label: the JSON-RPC method, `batch`, or the HTTP method for GET/DELETE. */
function methodOf(outcome: Outcome): string {
  const body = outcome.body;
  if (body === undefined) return methodLabel(outcome.httpMethod === 'POST' ? 'none' : outcome.httpMethod);
  if (body.batch) return 'batch';
  const first = body.messages[0];
  return methodLabel(first === undefined || first.kind === 'response' ? 'response' : first.method);
}
