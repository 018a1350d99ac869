import type { ListAnswer } from '../../jsonrpc/methods.js';
import type { ServerCursors } from './cursor.js';
import type { ExposedNames } from './names.js';

/** One server's page of a list, as it answered it. */
export interface MemberPage {
  readonly server: string;
  readonly result: Readonly<Record<string, unknown>>;
}

/** A merged page: the result the client gets (its cursor still to seal) and each server's next cursor. */
export interface MergedPage {
  readonly result: Record<string, unknown>;
  readonly next: ServerCursors;
}

/**
 * Merges the pages of a list fanned out to a route's servers (DESIGN.md "Upstreams" → Federation,
 * Lists): items in server order, tools and prompts renamed to their exposed names (an item whose
 * exposed name breaks the tool-name rule is hidden: it could never be called), resources and
 * templates as they came (their URIs route calls). The result carries `resultType`, the smallest
 * `ttlMs` any server gave, and `cacheScope: "public"` only when every server said so — the policy
 * filter, which runs after, makes a filtered list private. `servers` lists every server asked, so
 * a server that was left out (failed, timed out) has no next cursor and is not asked again.
 */
export function mergePages(list: ListAnswer, pages: readonly MemberPage[], names: ExposedNames): MergedPage {
  const items: unknown[] = [];
  const next: Record<string, string | null> = {};
  let ttlMs: number | undefined;
  let publicScope = pages.length > 0;
  for (const { server, result } of pages) {
    const page = result[list.field];
    if (Array.isArray(page))
      for (const item of page) {
        const renamed = list.itemKey === 'name' ? exposeItem(item, server, names) : item;
        if (renamed !== undefined) items.push(renamed);
      }
    next[server] = typeof result.nextCursor === 'string' ? result.nextCursor : null;
    if (typeof result.ttlMs === 'number' && result.ttlMs >= 0)
      ttlMs = Math.min(ttlMs ?? result.ttlMs, result.ttlMs);
    if (result.cacheScope !== 'public') publicScope = false;
  }
  return {
    result: {
      resultType: 'complete',
      [list.field]: items,
      ttlMs: ttlMs ?? 0,
      cacheScope: publicScope ? 'public' : 'private',
    },
    next,
  };
}

/** A tool or prompt under its exposed name; undefined when it has none (hidden). */
function exposeItem(item: unknown, server: string, names: ExposedNames): unknown {
  if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
  const { name } = item as { name?: unknown };
  if (typeof name !== 'string') return undefined;
  const exposed = names.expose(server, name);
  return exposed === undefined ? undefined : { ...item, name: exposed };
}
