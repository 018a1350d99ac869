import type { FinishedExchange } from '../exchange.js';
import { toolNameOf } from '../jsonrpc/methods.js';
import type { RequestSpan } from './tracer.js';

/**
 * Ends a finished exchange's span with its attributes: route, method, tool, decision and the
 * identity's subject. Kept apart from `tracer.ts` so the finish step carries no OpenTelemetry code
 * when tracing is off.
 */
export function endSpan(span: RequestSpan, exchange: FinishedExchange, method: string): void {
  const first = exchange.body?.messages[0];
  const tool = first === undefined ? undefined : toolNameOf(first);
  const route = exchange.route?.path;
  span.setAttributes({
    'http.request.method': exchange.httpMethod,
    'portcullis.route': route ?? 'none',
    'portcullis.request_id': exchange.requestId,
    'mcp.method.name': method,
    ...(typeof tool === 'string' ? { 'gen_ai.tool.name': tool } : {}),
    'portcullis.decision': exchange.decision,
    ...(exchange.reason === undefined ? {} : { 'portcullis.reason': exchange.reason }),
    ...(exchange.identity === undefined ? {} : { 'enduser.id': exchange.identity.subject }),
    ...(exchange.upstreamStatus === undefined
      ? {}
      : { 'portcullis.upstream_status': exchange.upstreamStatus }),
    ...(exchange.servers === undefined ? {} : { 'portcullis.servers': exchange.servers.join(',') }),
  });
  span.end(exchange.status, `${method} ${route ?? 'unrouted'}`);
}
