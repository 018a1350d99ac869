import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/**
 * Request headers passed upstream as the client sent them: an allow-list, because an upstream
 * behind a proxy trusts what it is handed — `X-Remote-User`, `X-Client-Cert`, `X-Original-URL`,
 * `X-HTTP-Method-Override`, `Forwarded` and cookies are identity, routing or credentials it
 * would believe, and a deny-list can never name them all. MCP's own headers, content
 * negotiation, stream resumption, trace context and `User-Agent` pass; a route adds more with
 * `forwardHeaders`. `Mcp-Session-Id` is the gateway's (the unsealed upstream id), and
 * `Accept-Encoding` is always `identity` so every answer stays readable (a compressed list
 * could not be filtered).
 */
const ALWAYS_FORWARDED: readonly string[] = [
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
  'accept',
  'content-type',
  'last-event-id',
  'traceparent',
  'tracestate',
  'user-agent',
];
/** `Mcp-Param-{Name}`: tool arguments a modern client mirrors into headers. */
const PARAM_PREFIX = 'mcp-param-';

/**
 * What every answer on the gateway's origin says to a browser, whatever its body: not a page.
 * An upstream's answer (or an error page) is relayed as it came, and a browser opening it must
 * never run it as the gateway's origin — where the approval pages and their session cookie live:
 * a script there could approve a call in an approver's name. MCP clients ignore both headers.
 */
export const NOT_A_PAGE: Readonly<Record<string, string>> = {
  'content-security-policy': "sandbox; default-src 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
};

/** Upstream answer headers not relayed: hop-by-hop ones, and the upstream's own auth challenge. */
const RESPONSE_DROP: ReadonlySet<string> = new Set([
  // Replaced by the gateway's own ({@link NOT_A_PAGE}).
  'content-security-policy',
  'content-security-policy-report-only',
  'x-content-type-options',
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'www-authenticate',
  'set-cookie',
  'access-control-allow-origin',
  'access-control-allow-credentials',
  'access-control-expose-headers',
]);

/**
 * Headers that describe the upstream's body bytes. When the gateway rewrites a body (a filtered
 * list) they describe bytes the client never gets: a kept `Content-Length` made clients read a
 * truncated answer (the official TypeScript SDK 1.32 sends one even on SSE). They are dropped on
 * every rewrite; Node frames what is actually sent.
 */
export const BODY_FRAMING_HEADERS: ReadonlySet<string> = new Set([
  'content-length',
  'content-md5',
  'content-digest',
  'repr-digest',
  'digest',
  'etag',
  'content-range',
  'accept-ranges',
]);

export interface ForwardingContext {
  /** The connection's peer: the hop the gateway appends to `X-Forwarded-For`. */
  readonly peer: string;
  /** `X-Forwarded-For` chain received from a trusted proxy, if any. */
  readonly forwardedFor?: string | undefined;
  readonly proto: 'http' | 'https';
  /** The upstream's own session id, unsealed from the client's; the client's sealed id never goes upstream. */
  readonly sessionId?: string | undefined;
}

/** What a route forwards, computed once at load (headers are on the hot path). */
export interface UpstreamHeaderPlan {
  /** Lower-case names of the client headers passed on. */
  readonly allowed: ReadonlySet<string>;
  /** The route's `upstreamHeaders`, lower-cased names: added last, they win. */
  readonly extra: Readonly<Record<string, string>>;
  /** `X-Forwarded-Host`: the host (and port) of the route's public `resource` URL. */
  readonly publicHost: string;
}

export function compileUpstreamHeaders(route: {
  readonly resource: string;
  readonly upstreamHeaders: Readonly<Record<string, string>>;
  readonly forwardHeaders?: readonly string[] | undefined;
}): UpstreamHeaderPlan {
  const extra: Record<string, string> = {};
  for (const [name, value] of Object.entries(route.upstreamHeaders)) extra[name.toLowerCase()] = value;
  return {
    allowed: new Set([...ALWAYS_FORWARDED, ...(route.forwardHeaders ?? []).map((n) => n.toLowerCase())]),
    extra,
    publicHost: new URL(route.resource).host,
  };
}

/**
 * The upstream request's headers: the allowed client headers (minus any the client named in
 * `Connection`, which are hop-by-hop), the gateway's forwarding headers, then the route's
 * `upstreamHeaders`.
 */
export function upstreamRequestHeaders(
  incoming: IncomingHttpHeaders,
  plan: UpstreamHeaderPlan,
  ctx: ForwardingContext,
): Record<string, string> {
  const out: Record<string, string> = {};
  const connectionListed = listedInConnection(incoming.connection);
  for (const name in incoming) {
    if (!plan.allowed.has(name) && !name.startsWith(PARAM_PREFIX)) continue;
    const value = incoming[name];
    if (value === undefined || connectionListed?.has(name)) continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  out['x-forwarded-for'] = ctx.forwardedFor ? `${ctx.forwardedFor}, ${ctx.peer}` : ctx.peer;
  out['x-forwarded-proto'] = ctx.proto;
  // The route's public host, never the client's `Host`: an upstream building links or checking
  // where it is served from must not be steered by whatever Host a client sent.
  out['x-forwarded-host'] = plan.publicHost;
  if (ctx.sessionId !== undefined) out['mcp-session-id'] = ctx.sessionId;
  for (const name in plan.extra) out[name] = plan.extra[name] as string;
  out['accept-encoding'] = 'identity';
  return out;
}

/** The upstream answer's headers as relayed to the client. */
export function clientResponseHeaders(
  upstream: Readonly<Record<string, string | string[] | undefined>>,
  rewritten = false,
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connectionListed = listedInConnection(upstream.connection);
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined || RESPONSE_DROP.has(name) || connectionListed?.has(name)) continue;
    // A body the gateway rewrites: the upstream's length and digests describe other bytes (left
    // out here rather than deleted after: a deleted key slows every later use of the object).
    if (rewritten && BODY_FRAMING_HEADERS.has(name)) continue;
    out[name] = value;
  }
  out['content-security-policy'] = NOT_A_PAGE['content-security-policy'];
  out['x-content-type-options'] = NOT_A_PAGE['x-content-type-options'];
  return out;
}

/** Headers named in `Connection` are hop-by-hop too (RFC 9110 §7.6.1). */
function listedInConnection(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  if (!text.includes(',') && /^\s*(keep-alive|close)\s*$/i.test(text)) return undefined;
  return new Set(text.split(',').map((v) => v.trim().toLowerCase()));
}
