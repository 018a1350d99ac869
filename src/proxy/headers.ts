import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/**
 * Headers the gateway never passes upstream. Hop-by-hop headers belong to one connection; the
 * client's credentials are the gateway's to check and must never reach the upstream; client-sent
 * forwarding headers are replaced by the gateway's own; length and host are the new request's.
 */
const REQUEST_DROP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'host',
  'content-length',
  'authorization',
  'x-api-key',
  'cookie',
  'forwarded',
  'x-real-ip',
]);
/** Every client-sent `X-Forwarded-*` (`-client-cert`, `-user`, …): upstreams behind proxies trust them as identity. */
const FORWARDED_PREFIX = 'x-forwarded-';

/** Upstream answer headers not relayed: hop-by-hop ones, and the upstream's own auth challenge. */
const RESPONSE_DROP: ReadonlySet<string> = new Set([
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

export interface ForwardingContext {
  /** The connection's peer: the hop the gateway appends to `X-Forwarded-For`. */
  readonly peer: string;
  /** `X-Forwarded-For` chain received from a trusted proxy, if any. */
  readonly forwardedFor?: string;
  readonly proto: 'http' | 'https';
  /** The upstream's own session id, unsealed from the client's; the client's sealed id never goes upstream. */
  readonly sessionId?: string;
}

/** Builds the upstream request's headers; `extra` (the route's `upstreamHeaders`, lowercased) wins. */
export function upstreamRequestHeaders(
  incoming: IncomingHttpHeaders,
  extra: Readonly<Record<string, string>>,
  ctx: ForwardingContext,
): Record<string, string> {
  const out: Record<string, string> = {};
  const connectionListed = listedInConnection(incoming.connection);
  for (const name in incoming) {
    const value = incoming[name];
    if (
      value === undefined ||
      REQUEST_DROP.has(name) ||
      name.startsWith(FORWARDED_PREFIX) ||
      connectionListed?.has(name)
    )
      continue;
    out[name] = Array.isArray(value) ? value.join(', ') : value;
  }
  out['x-forwarded-for'] = ctx.forwardedFor ? `${ctx.forwardedFor}, ${ctx.peer}` : ctx.peer;
  out['x-forwarded-proto'] = ctx.proto;
  if (incoming.host !== undefined) out['x-forwarded-host'] = incoming.host;
  if (ctx.sessionId === undefined) delete out['mcp-session-id'];
  else out['mcp-session-id'] = ctx.sessionId;
  for (const name in extra) out[name] = extra[name] as string;
  return out;
}

/** The upstream answer's headers as relayed to the client. */
export function clientResponseHeaders(
  upstream: Readonly<Record<string, string | string[] | undefined>>,
): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  const connectionListed = listedInConnection(upstream.connection);
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined || RESPONSE_DROP.has(name) || connectionListed?.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** Headers named in `Connection` are hop-by-hop too (RFC 9110 §7.6.1). */
function listedInConnection(value: string | string[] | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(',') : value;
  if (!text.includes(',') && /^\s*(keep-alive|close)\s*$/i.test(text)) return undefined;
  return new Set(text.split(',').map((v) => v.trim().toLowerCase()));
}
