import { type Refusal, type RpcId, refuse } from '../errors.js';
import { checkStrictJson } from './strict-json.js';

/** A JSON-RPC 2.0 message as the gateway reasons about it: classified, never re-read from bytes. */
export type RpcMessage =
  | {
      readonly kind: 'request';
      readonly id: string | number;
      readonly method: string;
      readonly params?: RpcParams;
    }
  | { readonly kind: 'notification'; readonly method: string; readonly params?: RpcParams }
  | { readonly kind: 'response'; readonly id: string | number };

export type RpcParams = Readonly<Record<string, unknown>>;

export interface ParsedBody {
  readonly messages: readonly RpcMessage[];
  /** The body was a JSON array (a 2025-03-26 batch). */
  readonly batch: boolean;
  /** What is forwarded: the parsed value re-serialized, never the client's bytes. */
  readonly forward: string;
}

/** The most messages a 2025-03-26 batch may carry. */
export const MAX_BATCH_MESSAGES = 256;

/**
 * Strict JSON-RPC 2.0 parse of a POST body. Duplicate keys and numbers that would change on
 * re-serialization are refused, so what policy reads is exactly what the upstream will read.
 */
export function parseJsonRpc(text: string, opts: { readonly allowBatch: boolean }): ParsedBody | Refusal {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    if (err instanceof SyntaxError) return refuse('parse_error');
    throw err;
  }
  const problem = checkStrictJson(text);
  // An empty array is no batch: JSON-RPC answers it with a single error object.
  const batch = Array.isArray(value) && value.length > 0;
  if (problem === 'duplicate_key') return refuse('parse_error', { ids: idsOf(value), batch });
  // The unsafe number may be an id: answer only ids that are certainly what the client sent.
  if (problem === 'unsafe_number')
    return refuse('unsafe_number', { ids: idsOf(value).filter(isExactId), batch });

  const items: unknown[] = Array.isArray(value) ? value : [value];
  if (Array.isArray(value) && (!opts.allowBatch || items.length === 0))
    return refuse('invalid_request', { ids: idsOf(value), batch });
  // Per-message work (policy, limiter keys, audit records) must stay bounded per request; the
  // refusal is one error object, not one per id of a huge batch.
  if (items.length > MAX_BATCH_MESSAGES) return refuse('invalid_request');
  const messages: RpcMessage[] = [];
  for (const item of items) {
    const message = classify(item);
    if (message === undefined) return refuse('invalid_request', { ids: idsOf(value), batch });
    messages.push(message);
  }
  return { messages, batch, forward: JSON.stringify(value) };
}

function classify(item: unknown): RpcMessage | undefined {
  if (!isPlainObject(item) || item.jsonrpc !== '2.0') return undefined;
  const { id, method, params } = item;
  if (params !== undefined && !isPlainObject(params)) return undefined;
  const hasId = id !== undefined;
  if (hasId && !isValidId(id)) return undefined;
  if (typeof method === 'string') {
    if ('result' in item || 'error' in item || method === '') return undefined;
    const withParams = params === undefined ? {} : { params };
    return hasId
      ? { kind: 'request', id, method, ...withParams }
      : { kind: 'notification', method, ...withParams };
  }
  if (method !== undefined || !hasId) return undefined;
  // A client's answer to a server request: exactly one of result or error.
  if ('result' in item === 'error' in item) return undefined;
  return { kind: 'response', id };
}

/** A string, or a number known exactly: an integer beyond 2^53 was already rounded by the parser. */
function isValidId(id: unknown): id is string | number {
  if (typeof id === 'string') return true;
  return typeof id === 'number' && Number.isFinite(id) && (Number.isSafeInteger(id) || !Number.isInteger(id));
}

function isExactId(id: RpcId): boolean {
  return typeof id === 'string' || Number.isSafeInteger(id);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The ids a refusal should answer: every valid id found, so a client can match its errors. */
function idsOf(value: unknown): RpcId[] {
  const items = Array.isArray(value) ? value : [value];
  const ids: RpcId[] = [];
  for (const item of items) {
    if (isPlainObject(item) && isValidId(item.id)) ids.push(item.id);
  }
  return ids;
}
