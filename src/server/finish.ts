import type { Logger } from 'pino';
import type { AuditRecorder } from '../audit/records.js';
import type { Finish } from '../exchange.js';
import { countExchange, methodOf } from '../metrics/exchange.js';
import type { Metrics } from '../metrics/registry.js';
import { endSpan } from '../tracing/exchange.js';

export interface FinishDeps {
  /** Builds and writes the audit records; `undefined` with `audit.destination: none` (none built). */
  readonly audit: AuditRecorder | undefined;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** `log.requests`: one operational log line per request. */
  readonly logRequests: boolean;
}

/**
 * The finish step: one audit record per JSON-RPC message (one for the HTTP request when there is
 * none), the metrics, the span's end and — with `log.requests` — a log line. It runs inside stream
 * and `close` handlers: an exception in it (an audit or metrics bug) is logged and counted, never
 * thrown into the event loop; the answer has gone out by then.
 */
export function createFinish({ audit, metrics, logger, logRequests }: FinishDeps): Finish {
  return (exchange) => {
    try {
      audit?.(exchange);
      const method = methodOf(exchange);
      countExchange(metrics, exchange, method);
      if (exchange.span !== undefined) endSpan(exchange.span, exchange, method);
      if (logRequests) {
        logger.info(
          {
            requestId: exchange.requestId,
            route: exchange.route?.path ?? null,
            method,
            status: exchange.status,
            decision: exchange.decision,
            reason: exchange.reason,
            identity: exchange.identity?.key,
            durationMs: exchange.durationMs,
          },
          'request',
        );
      }
    } catch (err) {
      metrics.internalErrors.inc({ where: 'outcome' });
      logger.error(
        { err, requestId: exchange.requestId, where: 'outcome' },
        'internal error: outcome not recorded',
      );
    }
  };
}
