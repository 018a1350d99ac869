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

/**
 * Methods whose `Mcp-Name` header mirrors a body field (2026-07-28, "Standard Request Headers"),
 * and which `params` field that is.
 */
export const MIRRORED_NAME_FIELD: ReadonlyMap<string, 'name' | 'uri'> = new Map([
  ['tools/call', 'name'],
  ['resources/read', 'uri'],
  ['prompts/get', 'name'],
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
