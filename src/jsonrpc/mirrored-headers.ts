import type { IncomingHttpHeaders } from 'node:http';
import { type Refusal, refuse } from '../errors.js';
import { mirroredNameOf } from './methods.js';
import type { RpcMessage } from './parse.js';
import { PROTOCOL_VERSION_META } from './protocol-version.js';

/** The sentinel form: anything between the markers is base64, and a malformed payload is refused. */
const SENTINEL_START = '=?base64?';
const SENTINEL_END = '?=';
// Both linear: one character class, anchored, no nested or adjacent overlapping quantifiers.
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
/** RFC 9110 field-value characters: visible ASCII, space, tab. */
const FIELD_VALUE = /^[\x20-\x7e\t]*$/;

/**
 * Mirrored headers against one message's body, so an intermediary or upstream that routes by
 * header can never run something other than what policy decided from the body.
 *
 * Whatever the generation, a header that is sent must agree: `Mcp-Method` with the method,
 * `Mcp-Name` with the field its method mirrors (a method that mirrors none has nothing to agree
 * with), and the body's `_meta` protocol version with the request's version. On the modern
 * protocol (`required`) the body's `_meta` protocol version must be present (else -32602, checked
 * first) and so must `Mcp-Method` on requests and `Mcp-Name` where the method mirrors one.
 * `Mcp-Param-*` need the tool's schema: on a route with pins they are held to the pinned one
 * (`integrity/mirrored-params.ts`), elsewhere they are the upstream's to validate (DESIGN.md).
 */
export function checkMirroredHeaders(
  message: RpcMessage,
  headers: IncomingHttpHeaders,
  version: string,
  opts: { readonly required: boolean } = { required: true },
): Refusal | undefined {
  const { required } = opts;
  if (message.kind === 'response') {
    // Modern clients must not send responses; a legacy answer mirrors no method or name.
    if (required) return refuse('invalid_request', { ids: [message.id] });
    if (headers['mcp-method'] !== undefined || headers['mcp-name'] !== undefined)
      return refuse('header_mismatch', { ids: [message.id] });
    return undefined;
  }
  const ids = message.kind === 'request' ? [message.id] : [];
  const meta = message.params?._meta;
  const bodyVersion =
    typeof meta === 'object' && meta !== null
      ? (meta as Record<string, unknown>)[PROTOCOL_VERSION_META]
      : undefined;
  if (required && message.kind === 'request' && typeof bodyVersion !== 'string')
    return refuse('invalid_params', { ids });
  if (bodyVersion !== undefined && bodyVersion !== version) return refuse('header_mismatch', { ids });

  const methodHeader = headers['mcp-method'];
  if (methodHeader === undefined) {
    // Notification POSTs have no header requirements in 2026-07-28.
    if (required && message.kind === 'request') return refuse('header_mismatch', { ids });
  } else if (single(methodHeader) !== message.method) return refuse('header_mismatch', { ids });

  const mirrored = mirroredNameOf(message.method);
  const nameHeader = headers['mcp-name'];
  if (mirrored === undefined) {
    if (nameHeader !== undefined) return refuse('header_mismatch', { ids });
  } else if (nameHeader !== undefined || (required && mirrored.required)) {
    const expected = message.params?.[mirrored.field];
    const name = decodeHeaderValue(single(nameHeader));
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
