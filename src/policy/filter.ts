import type { Identity } from '../auth/identity.js';
import { hasCaseVariant } from '../jsonrpc/case-fold.js';
import { exceedsDepth } from '../jsonrpc/json-depth.js';
import { LIST_METHODS, type ListAnswer, listAnswerOf } from '../jsonrpc/methods.js';
import type { CompiledPolicy, NameTable } from './compile.js';
import { canonicalResourceTemplate, canonicalResourceUri } from './uri.js';

/** How an item's name is canonicalized before matching (`uri.ts`); `undefined` hides the item. */
const CANONICAL: Readonly<Record<ListAnswer['itemKey'], (name: string) => string | undefined>> = {
  name: asWritten,
  uri: canonicalResourceUri,
  // A template is matched by its canonical form, expressions as written (`file:///public/{name}`
  // against `file:///public/**`): `FILE:///secret/{name}` is no way around a deny pattern.
  uriTemplate: canonicalResourceTemplate,
};

/** Each list's item-name key as a set, for the case-variant check. */
const NAME_KEYS: ReadonlyMap<string, ReadonlySet<string>> = new Map(
  [...LIST_METHODS.values()].map((list) => [list.itemKey, new Set([list.itemKey])]),
);

function asWritten(name: string): string {
  return name;
}

export function isFilteredList(method: string): boolean {
  return listAnswerOf(method) !== undefined;
}

/**
 * A list result with only what the caller may use: an item stays when its name (or URI) would
 * be allowed for this identity. Everything else in the result — `nextCursor`, caching hints — is
 * kept, except that a `public` cache scope becomes `private`: the list now depends on who asked.
 */
export function filterListResult(
  method: string,
  result: unknown,
  policy: CompiledPolicy,
  identity: Identity,
): unknown {
  const list = listAnswerOf(method);
  if (list === undefined || typeof result !== 'object' || result === null) return result;
  const items = (result as Record<string, unknown>)[list.field];
  if (!Array.isArray(items)) return result;
  const table: NameTable = policy[list.table];
  const nameKey = NAME_KEYS.get(list.itemKey) as ReadonlySet<string>;
  const kept = items.filter((item) => {
    if (typeof item !== 'object' || item === null) return false;
    const name = (item as Record<string, unknown>)[list.itemKey];
    // `{"name":"echo","NAME":"admin_reset"}`: a case-insensitive client decoder reads the other one.
    if (typeof name !== 'string' || hasCaseVariant(item, nameKey)) return false;
    const key = CANONICAL[list.itemKey](name);
    if (key === undefined) return false;
    const requirement = table.lookup(key);
    if (requirement === undefined) return policy.defaultEffect === 'allow';
    return requirement.scopes.every((scope) => identity.scopes.has(scope));
  });
  const filtered: Record<string, unknown> = { ...(result as Record<string, unknown>), [list.field]: kept };
  if (filtered.cacheScope === 'public') filtered.cacheScope = 'private';
  return filtered;
}

/** Matches any answer by the shape of its result (see `filterListAnswer`). */
export const ANY_LIST: ReadonlyMap<string | number, string> = new Map();

/** An answer the gateway had to read and could not: the exchange is refused, never relayed as it came. */
export interface UnreadableAnswer {
  readonly unreadable: 'too_deep' | 'not_json' | 'ambiguous';
}

/**
 * `text` with every answer to a list request filtered — a single JSON-RPC answer or a batch of
 * them; `undefined` when it holds no list result (it then goes out as it came: an error answer,
 * a notification, an empty priming event).
 *
 * Text that must be read and cannot be is {@link UnreadableAnswer}, never passed through: JSON
 * nested deeper than `maxDepth` (checked before parsing, so nothing after recurses without a
 * bound), and text `JSON.parse` refuses — a lenient client parser (one accepting `NaN`, or
 * keeping the first of two `result` keys) could read a list in it the gateway never filtered.
 * Whatever is relayed after filtering is the gateway's own serialization.
 *
 * A response is matched to its list request by id, and failing that by the shape of its result:
 * some clients match ids loosely (the TypeScript SDK compares `Number(id)`), so an answer with
 * id `"1"` to request `1` must not slip through unfiltered. Filtering by shape can only remove items.
 */
export function filterListAnswer(
  text: string,
  lists: ReadonlyMap<string | number, string>,
  policy: CompiledPolicy,
  identity: Identity,
  maxDepth: number,
): string | undefined | UnreadableAnswer {
  if (isBlank(text)) return undefined;
  if (exceedsDepth(text, maxDepth)) return TOO_DEEP;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    if (err instanceof SyntaxError) return NOT_JSON;
    throw err;
  }
  let changed = false;
  let ambiguous = false;
  const filterOne = (message: unknown): unknown => {
    if (typeof message !== 'object' || message === null || Array.isArray(message)) return message;
    const answer = message as Record<string, unknown>;
    // `Result`, `TOOLS`, `reſources`: a case-insensitive client decoder (Go's encoding/json) reads
    // them as the fields the filter looks at, so an answer spelling one so cannot be filtered.
    if (hasCaseVariant(answer, RESULT)) ambiguous = true;
    if (!('result' in answer)) return message;
    const result = answer.result;
    if (typeof result === 'object' && result !== null && hasCaseVariant(result, LIST_FIELDS))
      ambiguous = true;
    const byId =
      typeof answer.id === 'string' || typeof answer.id === 'number' ? lists.get(answer.id) : undefined;
    const method = byId ?? listMethodByShape(result);
    if (method === undefined) return message;
    changed = true;
    // Every list field the result carries is filtered, not only the one its method names: a
    // client reading `prompts` from a `tools/list` answer must not find a hidden prompt there.
    let filtered = filterListResult(method, result, policy, identity);
    if (typeof result !== 'object' || result === null) return { ...answer, result: filtered };
    for (const [other, list] of LIST_METHODS) {
      if (other !== method && Array.isArray((result as Record<string, unknown>)[list.field]))
        filtered = filterListResult(other, filtered, policy, identity);
    }
    return { ...answer, result: filtered };
  };
  // `map` over a parsed array: linear, no spread of its elements.
  const filtered = Array.isArray(value) ? value.map(filterOne) : filterOne(value);
  if (ambiguous) return AMBIGUOUS;
  return changed ? JSON.stringify(filtered) : undefined;
}

const RESULT: ReadonlySet<string> = new Set(['result']);
const LIST_FIELDS: ReadonlySet<string> = new Set([...LIST_METHODS.values()].map((list) => list.field));

const TOO_DEEP: UnreadableAnswer = { unreadable: 'too_deep' };
const NOT_JSON: UnreadableAnswer = { unreadable: 'not_json' };
const AMBIGUOUS: UnreadableAnswer = { unreadable: 'ambiguous' };

/** Only JSON whitespace (an SSE priming event carries empty data). */
function isBlank(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code !== 0x20 && code !== 0x09 && code !== 0x0a && code !== 0x0d) return false;
  }
  return true;
}

/** The list method whose result this looks like: filtering by shape can only remove items. */
function listMethodByShape(result: unknown): string | undefined {
  if (typeof result !== 'object' || result === null) return undefined;
  const fields = result as Record<string, unknown>;
  for (const [method, list] of LIST_METHODS) if (Array.isArray(fields[list.field])) return method;
  return undefined;
}
