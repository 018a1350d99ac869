import type { IncomingHttpHeaders } from 'node:http';
import { isRefusal, type Refusal, refuse } from '../errors.js';
import { checkMirroredHeaders } from './mirrored-headers.js';
import { type ParsedBody, parseJsonRpc, type RpcMessage } from './parse.js';
import { BATCH_VERSION, DEFAULT_VERSION, isModern, PROTOCOL_VERSION_META } from './protocol-version.js';

export interface McpRequest {
  readonly body: ParsedBody;
  /** The request's protocol version: its `MCP-Protocol-Version`, else the spec's default. */
  readonly version: string;
}

/**
 * DESIGN.md step 5 for one POST: strict JSON-RPC parse (batches only in 2025-03-26), then, for
 * the modern protocol, the mirrored headers checked against the body. A refusal carries the
 * parsed body when there is one, so the answer and the audit name each message.
 */
export function parseMcpRequest(
  text: string,
  headers: IncomingHttpHeaders,
  sessionVersion?: string,
): McpRequest | { readonly refusal: Refusal; readonly body?: ParsedBody } {
  const header = headers['mcp-protocol-version'];
  // The header, else the version sealed in the session, else the spec's default.
  const version = typeof header === 'string' && header !== '' ? header : (sessionVersion ?? DEFAULT_VERSION);
  const body = parseJsonRpc(text, { allowBatch: version === BATCH_VERSION });
  if (isRefusal(body)) return { refusal: body };
  if (isModern(version)) {
    for (const message of body.messages) {
      const mismatch = checkMirroredHeaders(message, headers, version);
      if (mismatch) return { refusal: mismatch, body };
    }
  } else if (header === undefined && body.messages.some(claimsModernVersion)) {
    // A modern body without its header: a component routing by header would see another version.
    return { refusal: refuse('header_mismatch', { ids: requestIds(body) }), body };
  }
  return { body, version };
}

/** The ids of the JSON-RPC requests in a body: what a refusal answers. */
export function requestIds(body: ParsedBody): (string | number)[] {
  return body.messages.flatMap((m) => (m.kind === 'request' ? [m.id] : []));
}

function claimsModernVersion(message: RpcMessage): boolean {
  if (message.kind === 'response') return false;
  const meta = message.params?._meta;
  const version =
    typeof meta === 'object' && meta !== null
      ? (meta as Record<string, unknown>)[PROTOCOL_VERSION_META]
      : undefined;
  return typeof version === 'string' && isModern(version);
}
