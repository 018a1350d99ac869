import type { AuditRecord, AuditStream } from '../audit/stream.js';
import type { Identity } from '../auth/identity.js';
import type { AuditDecision, RefusalReason } from '../errors.js';
import type { ParsedBody, RpcMessage } from '../jsonrpc/parse.js';
import { type Metrics, methodLabel } from '../metrics/registry.js';

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
      audit.write(auditRecord(outcome, time, durationMs, undefined));
    else for (const message of messages) audit.write(auditRecord(outcome, time, durationMs, message));

    const route = outcome.route ?? 'none';
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
    decision: outcome.decision,
    reason: outcome.reason,
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
