/** One raw 2026-07-28 JSON-RPC request through a gateway route, with its mirrored headers. */
import { mirroredNameOf } from '../../src/jsonrpc/methods.js';
import { META, modernHeaders } from './wire.js';

export interface ModernAnswer {
  readonly status: number;
  readonly headers: Headers;
  /** The answer parsed as JSON; the text when it is not JSON. */
  readonly body: unknown;
}

export interface ModernCall {
  readonly method: string;
  readonly params?: Record<string, unknown>;
  readonly id?: number | string;
  /** Sent as `Authorization: Bearer …`. */
  readonly key?: string;
  /** More request headers (e.g. `traceparent`). */
  readonly headers?: Record<string, string>;
  /** `_meta` fields over the default envelope (e.g. the client capabilities it declares). */
  readonly meta?: Record<string, unknown>;
}

/** POSTs `call` to `url` with `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and the `_meta` envelope. */
export function postModern(url: string, call: ModernCall): Promise<Response> {
  const params = call.params ?? {};
  // The header mirrors the body field the method table names (none for most methods).
  const mirrored = mirroredNameOf(call.method);
  const name = mirrored === undefined ? undefined : params[mirrored.field];
  return fetch(url, {
    method: 'POST',
    headers: {
      ...modernHeaders(call.method, typeof name === 'string' ? name : undefined),
      ...(call.key === undefined ? {} : { authorization: `Bearer ${call.key}` }),
      ...(call.headers ?? {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: call.id ?? 1,
      method: call.method,
      params: { ...params, _meta: { ...META, ...call.meta } },
    }),
  });
}

/** {@link postModern}, its answer read: status, headers and the body (parsed when it is JSON). */
export async function modernCall(url: string, call: ModernCall): Promise<ModernAnswer> {
  const answer = await postModern(url, call);
  const text = await answer.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: answer.status, headers: answer.headers, body };
}

/** A `tools/call` of `name` with `args`. */
export function toolCall(
  url: string,
  name: string,
  args: Record<string, unknown> = {},
  opts: Omit<ModernCall, 'method' | 'params'> = {},
): Promise<ModernAnswer> {
  return modernCall(url, { ...opts, method: 'tools/call', params: { name, arguments: args } });
}
