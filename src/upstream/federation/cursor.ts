import type { Sealer } from '../../proxy/seal.js';

/** Seals a federated list's composite cursor: it opens as nothing else. */
const PURPOSE = 'federation-cursor';
/** How long a cursor can be used after it was given. */
export const CURSOR_TTL_MS = 10 * 60_000;
/** The longest cursor the gateway gives or opens (servers' own cursors travel inside it). */
export const MAX_CURSOR_LENGTH = 8192;

/** Where a merged list goes on: each server's own cursor, `null` for a server it has finished. */
export type ServerCursors = Readonly<Record<string, string | null>>;

/** What a cursor is bound to: it works only for the same route, method and identity. */
export interface CursorScope {
  readonly route: string;
  readonly method: string;
  readonly identity: string;
}

/**
 * The composite cursor of a federated list (DESIGN.md "Upstreams" → Federation, Lists): every
 * server's cursor, sealed with the route, the list method, the identity and an expiry, so a
 * cursor replayed by another identity, on another route or method, or late, does not open
 * (the spec's invalid-cursor error, -32602). `undefined` when there is nothing left to page or
 * the cursor would be too long to give.
 */
export function sealCursor(
  sealer: Sealer,
  scope: CursorScope,
  cursors: ServerCursors,
  now: number = Date.now(),
): string | undefined {
  if (Object.values(cursors).every((cursor) => cursor === null)) return undefined;
  const sealed = sealer.seal(PURPOSE, [
    scope.route,
    scope.method,
    scope.identity,
    now + CURSOR_TTL_MS,
    cursors,
  ]);
  return sealed.length > MAX_CURSOR_LENGTH ? undefined : sealed;
}

/**
 * {@link sealCursor}, leaving out the longest server cursors until the composite one fits in
 * {@link MAX_CURSOR_LENGTH}: a server whose own cursor is too long to carry (a hostile or careless
 * one can make it any length) loses its later pages, never the other servers' — which one giant
 * cursor would otherwise end with it. `dropped` names the servers left out, to log.
 */
export function sealFittingCursor(
  sealer: Sealer,
  scope: CursorScope,
  cursors: ServerCursors,
  now: number = Date.now(),
): { readonly cursor: string | undefined; readonly dropped: readonly string[] } {
  const kept: Record<string, string | null> = { ...cursors };
  const dropped: string[] = [];
  for (;;) {
    const open = Object.entries(kept).filter((entry): entry is [string, string] => entry[1] !== null);
    if (open.length === 0) return { cursor: undefined, dropped };
    const cursor = sealCursor(sealer, scope, kept, now);
    if (cursor !== undefined) return { cursor, dropped };
    const [longest] = open.reduce((a, b) => (b[1].length > a[1].length ? b : a));
    kept[longest] = null;
    dropped.push(longest);
  }
}

/** The servers' cursors inside `cursor`, when it opens for this scope and has not expired. */
export function openCursor(
  sealer: Sealer,
  scope: CursorScope,
  cursor: string,
  now: number = Date.now(),
): ServerCursors | undefined {
  if (cursor.length > MAX_CURSOR_LENGTH) return undefined;
  const fields = sealer.open(PURPOSE, cursor);
  if (fields === undefined) return undefined;
  const [route, method, identity, expires, cursors] = fields;
  if (route !== scope.route || method !== scope.method || identity !== scope.identity) return undefined;
  if (typeof expires !== 'number' || expires < now) return undefined;
  if (typeof cursors !== 'object' || cursors === null || Array.isArray(cursors)) return undefined;
  for (const value of Object.values(cursors))
    if (value !== null && typeof value !== 'string') return undefined;
  return cursors as ServerCursors;
}
