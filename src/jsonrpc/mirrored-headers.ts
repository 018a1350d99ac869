import type { IncomingHttpHeaders } from 'node:http';
import { type Refusal, refuse } from '../errors.js';
import type { RpcMessage } from './parse.js';
import { PROTOCOL_VERSION_META } from './protocol-version.js';

/** Methods whose `Mcp-Name` header mirrors a body field (2026-07-28, "Standard Request Headers"). */
const NAME_FIELD: ReadonlyMap<string, 'name' | 'uri'> = new Map([
  ['tools/call', 'name'],
  ['resources/read', 'uri'],
  ['prompts/get', 'name'],
]);

/** The sentinel form: anything between the markers is base64, and a malformed payload is refused. */
const SENTINEL_START = '=?base64?';
const SENTINEL_END = '?=';
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** RFC 9110 field-value characters: visible ASCII, space, tab. */
const FIELD_VALUE = /^[\x20-\x7e\t]*$/;

/**
 * Modern protocol: the body's `_meta` protocol version must be present (else -32602), and
 * `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` must be present and equal to the body, so
 * an intermediary or upstream that routes by header can never run something other than what
 * policy decided from the body. `Mcp-Param-*` are the upstream's to validate (DESIGN.md).
 */
export function checkMirroredHeaders(
  message: RpcMessage,
  headers: IncomingHttpHeaders,
  headerVersion: string,
): Refusal | undefined {
  if (message.kind === 'response') return refuse('invalid_request', { ids: [message.id] });
  const ids = message.kind === 'request' ? [message.id] : [];
  const meta = message.params?._meta;
  const bodyVersion =
    typeof meta === 'object' && meta !== null
      ? (meta as Record<string, unknown>)[PROTOCOL_VERSION_META]
      : undefined;
  if (message.kind === 'request' && typeof bodyVersion !== 'string') return refuse('invalid_params', { ids });
  if (bodyVersion !== undefined && bodyVersion !== headerVersion) return refuse('header_mismatch', { ids });

  const method = single(headers['mcp-method']);
  // Notification POSTs have no header requirements in 2026-07-28; a header that is sent must still match.
  if (method === undefined ? message.kind === 'request' : method !== message.method) {
    return refuse('header_mismatch', { ids });
  }
  const field = NAME_FIELD.get(message.method);
  if (field !== undefined) {
    const expected = message.params?.[field];
    const name = decodeHeaderValue(single(headers['mcp-name']));
    if (typeof expected !== 'string' || name !== expected) return refuse('header_mismatch', { ids });
  }
  return undefined;
}

/** The value of a header sent once; a repeated header is treated as absent (and so refused). */
function single(value: string | string[] | undefined): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

/** Decodes the `=?base64?…?=` form (strict base64 of UTF-8); plain values must be field-safe. */
export function decodeHeaderValue(value: string | undefined): string | undefined {
  if (value === undefined || !FIELD_VALUE.test(value)) return undefined;
  if (!value.startsWith(SENTINEL_START) || !value.endsWith(SENTINEL_END) || value.length < 11) return value;
  const payload = value.slice(SENTINEL_START.length, -SENTINEL_END.length);
  if (!BASE64.test(payload)) return undefined;
  const bytes = Buffer.from(payload, 'base64');
  // Refuse non-canonical base64: it must re-encode to exactly what was sent, or a lenient
  // decoder upstream could read another name than the one policy checked.
  if (bytes.toString('base64') !== payload) return undefined;
  const text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  try {
    return text.decode(bytes);
  } catch (err) {
    if (err instanceof TypeError) return undefined;
    throw err;
  }
}
