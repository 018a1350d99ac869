import type { Identity } from '../auth/identity.js';
import { hasCaseVariant } from '../jsonrpc/case-fold.js';
import { exceedsDepth } from '../jsonrpc/json-depth.js';
import { RESOURCES_UPDATED } from '../jsonrpc/methods.js';
import type { CompiledPolicy } from './compile.js';
import { decideResourceRead } from './decide.js';

/**
 * Whether `identity` may be told that resource `uri` changed: exactly when it may read it. A
 * subscription was authorized once, when it was made; this answers for the policy in force at
 * delivery, so a reload that takes read access away stops the updates too. Malformed URIs (not a
 * string, no canonical form) are never delivered; in `shadow` mode a scope or method denial is
 * not enforced, as `authorize.ts` does not enforce it for requests.
 */
export function mayReceiveUpdate(policy: CompiledPolicy, uri: unknown, identity: Identity): boolean {
  const decision = decideResourceRead(policy, uri, identity);
  if (decision.effect === 'allow') return true;
  if (decision.reason === 'bad_uri' || decision.reason === 'invalid_request') return false;
  return policy.mode === 'shadow';
}

/** The event is to be dropped whole. */
export const DROP_UPDATE = 'drop';

/**
 * One SSE event's data with every `resources/updated` the caller may not receive taken out:
 * `undefined` when it carries none (it goes as it came), `'drop'` when nothing of it may go, or
 * the remaining messages of a batch, re-serialized.
 *
 * Dropped, never relayed as it came, whenever the gateway cannot be sure what a client would read:
 * data that might spell an update but is not JSON (a lenient parser could read one in it) or nests
 * deeper than `maxDepth`; a message or its params with a key a case-insensitive decoder reads as
 * `method`, `params` or `uri` (`"URI"` next to `"uri"`: Go's decoder takes the last); params that
 * are not an object. The stream itself is never cut for it.
 *
 * Cheap for every other event: data is parsed only when it could spell the method (see
 * {@link mayNameUpdate}); the answers to calls, the bulk of SSE traffic, mostly are not.
 */
export function withoutDeniedUpdates(
  text: string,
  mayReceive: (uri: unknown) => boolean,
  maxDepth: number,
): string | undefined | typeof DROP_UPDATE {
  if (!mayNameUpdate(text)) return undefined;
  if (exceedsDepth(text, maxDepth)) return DROP_UPDATE;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    if (err instanceof SyntaxError) return DROP_UPDATE;
    throw err;
  }
  if (!Array.isArray(value)) return deliverable(value, mayReceive) ? undefined : DROP_UPDATE;
  // A batch: the messages that may go stay, in order (filter over the parsed array: linear).
  const kept = value.filter((message) => deliverable(message, mayReceive));
  if (kept.length === value.length) return undefined;
  return kept.length === 0 ? DROP_UPDATE : JSON.stringify(kept);
}

/** The last segment of the method's name (`updated`): every spelling of the method holds it or a `\u` escape. */
const LAST_SEGMENT = RESOURCES_UPDATED.slice(RESOURCES_UPDATED.lastIndexOf('/') + 1);

/**
 * Whether JSON `text` could hold the string `notifications/resources/updated` (as a value, or a
 * key): a raw-text pre-check that cannot miss an escaped spelling. In JSON text a letter of a
 * decoded string comes either from itself or from a `\uXXXX` escape — the other escapes (`\/`,
 * `\n`, `\"`, …) stand for punctuation and controls only. So text without any `\u` holds the
 * decoded letters of `updated` as those very bytes, next to each other; text with one is parsed.
 * The comparison after parsing is exact (method names are case-sensitive), so case spellings of the
 * value (`UPDATED`) need no pre-check: they are not the method.
 */
export function mayNameUpdate(text: string): boolean {
  return text.includes(LAST_SEGMENT) || text.includes('\\u');
}

const METHOD: ReadonlySet<string> = new Set(['method']);
const PARAMS: ReadonlySet<string> = new Set(['params']);
const URI: ReadonlySet<string> = new Set(['uri']);

/** Whether one parsed message may go to the client: anything but an update it may not receive. */
function deliverable(message: unknown, mayReceive: (uri: unknown) => boolean): boolean {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return true;
  // `"Method": "notifications/resources/updated"` is the method to a case-insensitive decoder.
  if (hasCaseVariant(message, METHOD)) return false;
  const fields = message as Record<string, unknown>;
  if (fields.method !== RESOURCES_UPDATED) return true;
  if (hasCaseVariant(message, PARAMS)) return false;
  const params = fields.params;
  if (typeof params !== 'object' || params === null || Array.isArray(params)) return false;
  if (hasCaseVariant(params, URI)) return false;
  return mayReceive((params as Record<string, unknown>).uri);
}
