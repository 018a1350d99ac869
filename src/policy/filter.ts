import type { Identity } from '../auth/identity.js';
import type { CompiledPolicy, NameTable } from './compile.js';
import { decodeResourceUri } from './decide.js';

/** The list methods whose results are filtered, and where each keeps its items and their names. */
const LISTS: ReadonlyMap<
  string,
  { readonly field: string; readonly key: string; readonly table: keyof Tables; readonly uri: boolean }
> = new Map([
  ['tools/list', { field: 'tools', key: 'name', table: 'tools', uri: false }],
  ['prompts/list', { field: 'prompts', key: 'name', table: 'prompts', uri: false }],
  ['resources/list', { field: 'resources', key: 'uri', table: 'resources', uri: true }],
  // A template is matched as written (`file:///public/{name}` against `file:///public/**`).
  [
    'resources/templates/list',
    { field: 'resourceTemplates', key: 'uriTemplate', table: 'resources', uri: false },
  ],
]);

type Tables = Pick<CompiledPolicy, 'tools' | 'prompts' | 'resources'>;

export function isFilteredList(method: string): boolean {
  return LISTS.has(method);
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
  const list = LISTS.get(method);
  if (list === undefined || typeof result !== 'object' || result === null) return result;
  const items = (result as Record<string, unknown>)[list.field];
  if (!Array.isArray(items)) return result;
  const table: NameTable = policy[list.table];
  const kept = items.filter((item) => {
    const name =
      typeof item === 'object' && item !== null ? (item as Record<string, unknown>)[list.key] : undefined;
    if (typeof name !== 'string') return false;
    const key = list.uri ? decodeResourceUri(name) : name;
    if (key === undefined) return false;
    const requirement = table.lookup(key);
    if (requirement === undefined) return policy.defaultEffect === 'allow';
    return requirement.scopes.every((scope) => identity.scopes.has(scope));
  });
  const filtered: Record<string, unknown> = { ...(result as Record<string, unknown>), [list.field]: kept };
  if (filtered.cacheScope === 'public') filtered.cacheScope = 'private';
  return filtered;
}
