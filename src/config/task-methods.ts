import { TASKS_PREFIX } from '../jsonrpc/methods.js';

/**
 * Whether a route's `methods` can grant a tasks method (2025-11-25 `tasks/get`, `tasks/result`,
 * `tasks/list`, `tasks/cancel`; the 2026-07-28 extension's `tasks/get`, `tasks/update`,
 * `tasks/cancel`: the whole `tasks/` namespace, which the extension reserves), exactly or by a
 * pattern that can match one. Such a route's task ids are bound to the identity that created the
 * task (`upstream/task-binding.ts`; a federated route always binds them).
 *
 * Threat: the upstream sees one client (the gateway) and cannot tell callers apart, so a raw task
 * id would let any caller holding the scope read the result of, list or cancel another caller's
 * task. The tasks specification requires receivers to bind tasks to the authorization context
 * that created them ("MUST bind tasks to said context"): the gateway does, for every route this
 * says yes for — over-approximating (case folding below) only wraps a route that needed none.
 */
/** Whether a `methods` key (an exact name or a glob) can match a tasks method. */
export function namesTaskMethods(name: string): boolean {
  return globCanMatchPrefix(name, TASKS_PREFIX);
}

type Token = { readonly kind: 'literal'; readonly char: string } | { readonly kind: 'star' | 'globstar' };

/**
 * Whether some name starting with `prefix` matches `glob`, with the policy's glob semantics
 * (`policy/compile.ts`: `*` any characters but `/`, `**` any characters, all else literal; a
 * test checks the two agree). Characters are compared after simple case folding — stricter than
 * the policy's case-sensitive match, so that `Tasks/get` is refused too: an upstream that
 * dispatches method names without regard to case would run it as `tasks/get`.
 *
 * A glob is a regular language; this walks its automaton over `prefix` (the set of pattern
 * positions reachable so far). Once the prefix is consumed, any live position can still be
 * completed — every remaining literal can be written and every wildcard can match nothing — so
 * a live position means a match. Linear in the glob's length per prefix character; no regular
 * expression is built. Run on operator input at load only.
 */
export function globCanMatchPrefix(glob: string, prefix: string): boolean {
  const tokens: Token[] = [];
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i] as string;
    if (char !== '*') tokens.push({ kind: 'literal', char: fold(char) });
    else if (glob[i + 1] === '*') {
      tokens.push({ kind: 'globstar' });
      i++;
    } else tokens.push({ kind: 'star' });
  }
  let live = closure(tokens, new Set([0]));
  for (const raw of prefix) {
    const char = fold(raw);
    const next = new Set<number>();
    for (const at of live) {
      const token = tokens[at];
      if (token === undefined) continue; // the glob is used up: nothing more can be consumed
      if (token.kind === 'literal') {
        if (token.char === char) next.add(at + 1);
      } else if (token.kind === 'globstar' || char !== '/') next.add(at);
    }
    if (next.size === 0) return false;
    live = closure(tokens, next);
  }
  return true;
}

/** Adds the positions reachable by letting wildcards match nothing. */
function closure(tokens: readonly Token[], positions: Set<number>): Set<number> {
  for (const at of positions) {
    // A Set iterates over entries added during the loop, so runs of wildcards are followed.
    if (tokens[at] !== undefined && tokens[at]?.kind !== 'literal') positions.add(at + 1);
  }
  return positions;
}

/** Simple case folding for the characters that matter here (`ſ` → `s`, `K` (Kelvin) → `k`). */
function fold(char: string): string {
  return char.toUpperCase().toLowerCase();
}
