import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { REFUSALS, type Refusal, refusalBody } from '../errors.js';
import { NOT_A_PAGE } from '../proxy/headers.js';

/** Headers a browser client may read from a cross-origin answer. */
const EXPOSED =
  'Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate, Retry-After, RateLimit, RateLimit-Policy, X-Request-Id';

/** Request headers a preflight may allow, beyond `Mcp-Param-*`. */
const PREFLIGHT_ALLOWED: ReadonlySet<string> = new Set([
  'accept',
  'authorization',
  'content-type',
  'last-event-id',
  'mcp-method',
  'mcp-name',
  'mcp-protocol-version',
  'mcp-session-id',
  'traceparent',
  'tracestate',
  'x-api-key',
]);

/** CORS headers for an answer to a listed origin; callers pass an origin only after the guard accepted it. */
export function corsHeaders(origin: string | undefined): OutgoingHttpHeaders {
  if (origin === undefined) return {};
  return { 'access-control-allow-origin': origin, 'access-control-expose-headers': EXPOSED, vary: 'Origin' };
}

export function sendRefusal(
  res: ServerResponse,
  refusal: Refusal,
  opts: {
    readonly requestId: string;
    readonly origin?: string | undefined;
    readonly close?: boolean;
  },
): void {
  const body = refusalBody(refusal);
  const headers: OutgoingHttpHeaders = {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...NOT_A_PAGE,
    'x-request-id': opts.requestId,
    ...refusal.headers,
    ...corsHeaders(opts.origin),
  };
  if (opts.close) headers.connection = 'close';
  res.writeHead(REFUSALS[refusal.reason].status, headers);
  res.end(body);
}

/** Answers a CORS preflight from a listed origin. */
export function sendPreflight(res: ServerResponse, origin: string, requested: string | undefined): void {
  const allowed = (requested ?? '')
    .split(',')
    .map((name) => name.trim().toLowerCase())
    .filter((name) => PREFLIGHT_ALLOWED.has(name) || /^mcp-param-[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name));
  res.writeHead(204, {
    'access-control-allow-origin': origin,
    'access-control-allow-methods': 'GET, POST, DELETE',
    'access-control-allow-headers': [
      ...PREFLIGHT_ALLOWED,
      ...allowed.filter((n) => !PREFLIGHT_ALLOWED.has(n)),
    ].join(', '),
    'access-control-max-age': '600',
    vary: 'Origin, Access-Control-Request-Headers',
  });
  res.end();
}

/** Serves a route's RFC 9728 metadata: public, cacheable, readable from any origin. */
export function sendMetadata(res: ServerResponse, document: string): void {
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(document),
    'cache-control': 'public, max-age=300',
    'access-control-allow-origin': '*',
    ...NOT_A_PAGE,
  });
  res.end(document);
}
