import type { AnswerOutcome } from '../audit/answer-outcome.js';
import { answerOf, answersById, messageDecision } from '../audit/records.js';
import type { AuditRecord } from '../audit/stream.js';
import type { FinishedExchange } from '../exchange.js';
import { policyTargetOf } from '../jsonrpc/methods.js';
import type { Decision } from '../policy/decide.js';
import { type Metrics, methodLabel } from './registry.js';

/**
 * The metrics of a finished exchange (DESIGN.md step 11), all counted here from its facts: no
 * stage counts for itself. `method` is {@link methodOf} the exchange, computed once by the caller.
 */
export function countExchange(metrics: Metrics, exchange: FinishedExchange, method: string): void {
  const route = exchange.route?.path ?? 'none';
  const messages = exchange.body?.messages;
  if (messages !== undefined) {
    let answers: ReadonlyMap<unknown, AnswerOutcome> | undefined;
    for (let i = 0; i < messages.length; i++) {
      const message = messages[i];
      if (message?.kind !== 'request' || policyTargetOf(message.method) !== 'tool') continue;
      if (typeof message.params?.name !== 'string') continue;
      const decision = exchange.decisions?.[i];
      answers ??= answersById(exchange.answers);
      metrics.toolCalls.inc({
        route,
        tool: toolLabel(decision),
        decision: messageDecision(exchange, decision),
        outcome: outcomeLabel(answerOf(answers, message)),
      });
    }
  }
  const decisions = exchange.decisions;
  if (decisions !== undefined) {
    for (const decision of decisions) {
      const label =
        decision.effect === 'allow' ? 'allow' : exchange.decision === 'allow' ? 'shadow-deny' : 'deny';
      metrics.decisions.inc({ route, decision: label });
    }
  }
  metrics.requests.inc({ route, method, status: exchange.status });
  if (exchange.reason !== undefined) metrics.refusals.inc({ route, reason: exchange.reason });
  else if (!exchange.sse) metrics.requestDuration.observe({ route }, exchange.durationMs / 1000);
  // An answer cut after it began went out as 200 (its record says so) but is a refusal all the same.
  if (exchange.cut !== undefined) metrics.refusals.inc({ route, reason: exchange.cut });
  const failure = exchange.authFailure;
  // The IdP's outage is counted as such (portcullis_idp_errors_total), not as the caller's failure.
  if (failure !== undefined && exchange.reason !== 'idp_unavailable')
    metrics.authFailures.inc({ route, method: failure.method, reason: failure.why });
  // Let through on the per-replica fallback: counted, so a Redis outage shows on a dashboard.
  if (exchange.failedOpen) metrics.failOpen.inc({ route });
  if (exchange.upstreamMs !== undefined)
    metrics.upstreamDuration.observe({ route }, exchange.upstreamMs / 1000);
  if (exchange.upstreamError !== undefined)
    metrics.upstreamErrors.inc({ route, kind: exchange.upstreamError });
}

/** The bounded `method` label: the JSON-RPC method, `batch`, or the HTTP method for GET/DELETE. */
export function methodOf(exchange: FinishedExchange): string {
  const body = exchange.body;
  if (body === undefined) return methodLabel(exchange.httpMethod === 'POST' ? 'none' : exchange.httpMethod);
  if (body.batch) return 'batch';
  const first = body.messages[0];
  return methodLabel(first === undefined || first.kind === 'response' ? 'response' : first.method);
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
