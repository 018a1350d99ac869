import { type Refusal, type RpcId, refuse } from '../errors.js';
import { hasCaseVariant } from './case-fold.js';
import { ENVELOPE_MEMBERS, isNotificationMethod, POLICY_NESTED, POLICY_PARAMS } from './methods.js';
import { type BuiltJson, checkStrictJson, type ScannedText } from './strict-json.js';

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

/** Nesting allowed when the caller names no limit (`limits.maxJsonDepth`'s default). */
export const DEFAULT_MAX_JSON_DEPTH = 64;

export interface ParseOptions {
  readonly allowBatch: boolean;
  /** Deepest nesting of arrays and objects (`limits.maxJsonDepth`). */
  readonly maxDepth?: number;
}

/**
 * Strict JSON-RPC 2.0 parse of a POST body. The strict-JSON scanner decides first (its verdict may
 * come with the body, scanned as it arrived): nothing recursive touches a text that is not JSON or
 * nests too deep. Duplicate keys, keys equal after case folding and numbers that would change on
 * re-serialization are refused, so what policy reads is exactly what the upstream will read.
 *
 * A large body comes already built (`BuiltJson`, value and forwarded text made chunk by chunk as it
 * arrived): then no O(body) work is left here but the classification of its few messages.
 */
export function parseJsonRpc(
  body: string | ScannedText | BuiltJson,
  opts: ParseOptions,
): ParsedBody | Refusal {
  const built = typeof body === 'string' || !('forward' in body) ? undefined : body;
  const problem =
    typeof body === 'string'
      ? checkStrictJson(body, { maxDepth: opts.maxDepth ?? DEFAULT_MAX_JSON_DEPTH })
      : body.problem;
  // Not JSON, or too deep to parse safely: refused before JSON.parse, with no id (none is known).
  if (problem === 'syntax') return refuse('parse_error');
  if (problem === 'too_deep') return refuse('too_deep');
  let value: unknown;
  if (built !== undefined) value = built.value;
  else {
    try {
      value = JSON.parse(typeof body === 'string' ? body : (body as ScannedText).text);
    } catch (err) {
      // The scanner accepts what JSON.parse accepts (a property test holds them together).
      if (err instanceof SyntaxError) return refuse('parse_error');
      throw err;
    }
  }
  // An empty array is no batch: JSON-RPC answers it with a single error object.
  const batch = Array.isArray(value) && value.length > 0;
  if (problem === 'duplicate_key') return refuse('parse_error', { ids: idsOf(value), batch });
  // The unsafe number may be an id: answer only ids that are certainly what the client sent.
  if (problem === 'unsafe_number')
    return refuse('unsafe_number', { ids: idsOf(value).filter(isExactId), batch });
  if (problem === 'folded_key') return refuse('invalid_request', { ids: idsOf(value), batch });

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
  // Answers are matched to requests by id: two requests (or two answers) with one id would make
  // that ambiguous — a list answer filtered for one and relayed for the other. One error, no id.
  if (batch && hasRepeatedId(messages)) return refuse('invalid_request');
  // The built text is JSON.stringify(value), made as the body arrived (a property test holds them
  // together under any chunking).
  return { messages, batch, forward: built === undefined ? JSON.stringify(value) : built.forward };
}

function classify(item: unknown): RpcMessage | undefined {
  if (!isPlainObject(item) || item.jsonrpc !== '2.0') return undefined;
  // A member spelled in another case ("Method", "PARAMS", "paramſ") is read by case-insensitive
  // decoders upstream (Go's encoding/json) as the member itself, even where the exact one is absent:
  // a "response" carrying "Method" would run as a request there.
  if (hasCaseVariant(item, ENVELOPE_MEMBERS)) return undefined;
  const { id, method, params } = item;
  if (params !== undefined && (!isPlainObject(params) || hasPolicyVariant(params))) return undefined;
  const hasId = id !== undefined;
  if (hasId && !isValidId(id)) return undefined;
  if (typeof method === 'string') {
    if ('result' in item || 'error' in item || method === '') return undefined;
    const withParams = params === undefined ? {} : { params };
    if (hasId) return { kind: 'request', id, method, ...withParams };
    // A request-only method without an id is no notification: it would run upstream unanswered
    // and uncounted by rate limits.
    return isNotificationMethod(method) ? { kind: 'notification', method, ...withParams } : undefined;
  }
  if (method !== undefined || !hasId) return undefined;
  // A client's answer to a server request: exactly one of result or error.
  if ('result' in item === 'error' in item) return undefined;
  return { kind: 'response', id };
}

/** Whether `params`, or an object in it that policy reads, has a variant of a member policy reads. */
function hasPolicyVariant(params: Record<string, unknown>): boolean {
  if (hasCaseVariant(params, POLICY_PARAMS)) return true;
  for (const [member, names] of POLICY_NESTED) {
    const nested = params[member];
    if (isPlainObject(nested) && hasCaseVariant(nested, names)) return true;
  }
  return false;
}

/**
 * Whether two requests, or two responses, share an id. Ids are compared as text too (1 and "1"):
 * some upstreams and SDKs key their pending requests by the id's string form.
 */
function hasRepeatedId(messages: readonly RpcMessage[]): boolean {
  const requests = new Set<string>();
  const responses = new Set<string>();
  for (const message of messages) {
    if (message.kind === 'notification') continue;
    const seen = message.kind === 'request' ? requests : responses;
    const key = String(message.id);
    if (seen.has(key)) return true;
    seen.add(key);
  }
  return false;
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
