/**
 * The MCP method table (DESIGN.md "The request lifecycle"): facts about methods that the parse
 * stage reads. It is the start of the one table DESIGN.md describes; other modules still spell some
 * method names of their own and are to move here.
 */

/**
 * Every MCP notification is named `notifications/…` (both generations); every other method is a
 * request and needs an id. A request sent without one would be forwarded as a notification — no
 * answer to match, no rate-limit charge — while the upstream may run it all the same.
 */
const NOTIFICATION_PREFIX = 'notifications/';

/** Whether `method` may be sent without an id (it is a notification). */
export function isNotificationMethod(method: string): boolean {
  return method.startsWith(NOTIFICATION_PREFIX);
}

/** Where a method's `Mcp-Name` header comes from. */
export interface MirroredName {
  /** The `params` field the header mirrors. */
  readonly field: 'name' | 'uri' | 'taskId';
  /** Required on the modern protocol (the 2026-07-28 core); otherwise checked only when sent. */
  readonly required: boolean;
}

/**
 * Methods whose `Mcp-Name` header mirrors a body field: 2026-07-28 "Standard Request Headers", and
 * the task methods of the tasks extension (SEP-2663), which the gateway does not serve itself.
 */
export const MIRRORED_NAME: ReadonlyMap<string, MirroredName> = new Map([
  ['tools/call', { field: 'name', required: true }],
  ['resources/read', { field: 'uri', required: true }],
  ['prompts/get', { field: 'name', required: true }],
  ['tasks/get', { field: 'taskId', required: false }],
  ['tasks/update', { field: 'taskId', required: false }],
  ['tasks/cancel', { field: 'taskId', required: false }],
]);

/** The members of a JSON-RPC 2.0 message. */
export const ENVELOPE_MEMBERS: ReadonlySet<string> = new Set([
  'jsonrpc',
  'id',
  'method',
  'params',
  'result',
  'error',
]);

/**
 * The `params` members policy, limits and audit read (`tools/call` name and arguments, resource
 * URIs, completion refs, `subscriptions/listen` notifications, the `_meta` envelope).
 */
export const POLICY_PARAMS: ReadonlySet<string> = new Set([
  'name',
  'uri',
  'arguments',
  'ref',
  'notifications',
  '_meta',
]);

/**
 * The objects nested in `params` that policy reads, and the members it reads there. A member
 * spelled in another case is read by a case-insensitive decoder upstream as the member itself —
 * `"ResourceSubscriptions"` would subscribe to resources policy never checked — so it is refused
 * like a variant of a `params` member. A new field policy reads belongs here.
 */
export const POLICY_NESTED: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['notifications', new Set(['resourceSubscriptions'])],
  ['ref', new Set(['type', 'name', 'uri'])],
  ['_meta', new Set(['io.modelcontextprotocol/protocolVersion'])],
]);

/**
 * Methods whose answer is a long-lived stream and so takes a stream slot like a GET stream
 * (DESIGN.md step 8). Other SSE answers to POSTs are bounded by the in-flight slot they hold.
 */
export const STREAM_METHODS: ReadonlySet<string> = new Set(['subscriptions/listen']);
