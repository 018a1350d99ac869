/** One raw 2026-07-28 JSON-RPC request through a gateway route, with its mirrored headers. */
import { mirroredNameOf } from '../../src/jsonrpc/methods.js';
import { META, MODERN } from './wire.js';

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
}

/** POSTs `call` to `url` with `MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name` and the `_meta` envelope. */
export async function modernCall(url: string, call: ModernCall): Promise<ModernAnswer> {
  const params = call.params ?? {};
  // The header mirrors the body field the method table names (none for most methods).
  const mirrored = mirroredNameOf(call.method);
  const name = mirrored === undefined ? undefined : params[mirrored.field];
  const answer = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': call.method,
      ...(typeof name === 'string' ? { 'mcp-name': name } : {}),
      ...(call.key === undefined ? {} : { authorization: `Bearer ${call.key}` }),
      ...(call.headers ?? {}),
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: call.id ?? 1,
      method: call.method,
      params: { ...params, _meta: META },
    }),
  });
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
