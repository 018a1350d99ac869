import type { IncomingHttpHeaders } from 'node:http';
import { isRefusal, type Refusal, refuse } from '../errors.js';
import { checkMirroredHeaders } from './mirrored-headers.js';
import { type ParsedBody, parseJsonRpc } from './parse.js';
import { BATCH_VERSION, DEFAULT_VERSION, isModern, isVersionToken } from './protocol-version.js';
import type { BuiltJson, ScannedText } from './strict-json.js';

export interface McpRequest {
  readonly body: ParsedBody;
  /** The request's protocol version: its `MCP-Protocol-Version`, else its session's, else the spec's default. */
  readonly version: string;
}

/**
 * DESIGN.md step 5 for one POST: strict JSON-RPC parse (batches only in 2025-03-26), then the
 * mirrored headers checked against the body — required on the modern protocol, and whenever
 * present on any. A refusal carries the parsed body when there is one, so the answer and the audit
 * name each message.
 */
export function parseMcpRequest(
  text: string | ScannedText | BuiltJson,
  headers: IncomingHttpHeaders,
  sessionVersion?: string,
  opts: { readonly maxDepth?: number } = {},
): McpRequest | { readonly refusal: Refusal; readonly body?: ParsedBody } {
  const header = headers['mcp-protocol-version'];
  // A version header that is sent must name one version (an RFC 9110 token): an empty or
  // malformed one is not "absent" — a component that reads it differently could route by another.
  const malformed = header !== undefined && (typeof header !== 'string' || !isVersionToken(header));
  // The header, else the version sealed in the session, else the spec's default.
  const version = typeof header === 'string' && !malformed ? header : (sessionVersion ?? DEFAULT_VERSION);
  const body = parseJsonRpc(text, {
    allowBatch: !malformed && version === BATCH_VERSION,
    ...(opts.maxDepth === undefined ? {} : { maxDepth: opts.maxDepth }),
  });
  if (isRefusal(body)) return { refusal: body };
  if (malformed)
    return { refusal: refuse('header_mismatch', { ids: requestIds(body), batch: body.batch }), body };
  const required = isModern(version);
  for (const message of body.messages) {
    const mismatch = checkMirroredHeaders(message, headers, version, { required });
    if (mismatch) return { refusal: mismatch, body };
  }
  return { body, version };
}

/** The ids of the JSON-RPC requests in a body: what a refusal answers. */
export function requestIds(body: ParsedBody): (string | number)[] {
  return body.messages.flatMap((m) => (m.kind === 'request' ? [m.id] : []));
}
