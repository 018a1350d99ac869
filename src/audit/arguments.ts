import { createHmac } from 'node:crypto';

export type ArgumentsMode = 'omit' | 'hash' | 'redact' | 'full';

const REDACTED = '[redacted]';
/** What stands in the record for an object or array nested deeper than `MAX_VIEW_DEPTH`. */
export const TOO_DEEP = '[too deep]';
/**
 * The deepest container (the arguments object itself is depth 1) an audit record shows. Equal to
 * the default `limits.maxJsonDepth`, which bounds the whole message — so with the default nothing
 * the parser accepts is cut; an operator who raises that limit sees `[too deep]` past this one.
 */
export const MAX_VIEW_DEPTH = 64;

/**
 * How a request's arguments appear in its audit record (`audit.arguments`):
 * - `omit`: not at all;
 * - `hash`: each top-level argument as `hmac-sha256:<hex>` of its JSON under a key derived from the
 *   chain key (`argumentsKey`) — which keys were passed, and a way to confirm a suspected value,
 *   without storing it (a bare SHA-256 of a short value is reversible by trying them all);
 * - `redact`: in full, except values whose key matches `redactKeys` (case-insensitive) at any depth;
 * - `full`: as sent.
 *
 * Arguments are the client's: their nesting is the attacker's choice. Nothing here recurses over
 * them — every walk keeps its own stack on the heap — and `redact`/`full` show containers only to
 * `MAX_VIEW_DEPTH`, deeper ones as `[too deep]`, so the record stays serializable by
 * `JSON.stringify` (which recurses natively and throws past a few thousand levels). A throw here
 * ran inside the exchange's `close` listener: it took the process down and lost the audit record.
 * `hash` hashes the whole value, however deep, with an iterative serializer that writes exactly
 * what `JSON.stringify` writes, so a suspected value can still be confirmed.
 */
export function createArgumentsView(
  mode: ArgumentsMode,
  opts: { readonly redactKeys: readonly string[]; readonly key?: string | undefined },
): (args: unknown) => unknown {
  switch (mode) {
    case 'omit':
      return () => undefined;
    case 'full':
      // The value itself when it is shallow enough (nearly always: no copy on the hot path).
      return (args) => (deeperThan(args, MAX_VIEW_DEPTH) ? boundedCopy(args, undefined) : args);
    case 'hash': {
      // The schema refuses `hash` without `chainKey`.
      if (opts.key === undefined) throw new Error('audit.arguments: hash needs audit.chainKey');
      // A key of its own, derived from the chain key: were they the same, a client could send an
      // argument shaped like a first record and find a valid chain MAC for it in the file.
      const key = argumentsKey(opts.key);
      const mac = (value: unknown) =>
        `hmac-sha256:${createHmac('sha256', key)
          .update(jsonText(value) ?? 'undefined')
          .digest('hex')}`;
      return (args) => {
        if (args === undefined) return undefined;
        if (!isPlainObject(args)) return mac(args);
        return Object.fromEntries(Object.entries(args).map(([name, value]) => [name, mac(value)]));
      };
    }
    case 'redact': {
      const secret = new Set(opts.redactKeys.map((k) => k.toLowerCase()));
      return (args) => boundedCopy(args, secret);
    }
  }
}

/** The key argument hashes are made with: HMAC(chainKey, a fixed label), never the chain key itself. */
export function argumentsKey(chainKey: string): Buffer {
  return createHmac('sha256', chainKey).update('portcullis audit arguments v1').digest();
}

type Container = Record<string, unknown> | unknown[];

/** Whether `value` holds a container deeper than `max` (the value itself at depth 1). */
function deeperThan(value: unknown, max: number): boolean {
  if (!isContainer(value)) return false;
  const stack: { readonly value: Container; readonly depth: number }[] = [{ value, depth: 1 }];
  for (let top = stack.pop(); top !== undefined; top = stack.pop()) {
    if (top.depth > max) return true;
    const children = Array.isArray(top.value) ? top.value : Object.values(top.value);
    for (const child of children) if (isContainer(child)) stack.push({ value: child, depth: top.depth + 1 });
  }
  return false;
}

/**
 * A copy of `value` with containers below `MAX_VIEW_DEPTH` replaced by `[too deep]` and, when
 * `secret` is given, the values of keys it holds (lower-cased) by `[redacted]` at any depth.
 * Iterative: each container is copied when its parent is, then filled from the work stack.
 */
function boundedCopy(value: unknown, secret: ReadonlySet<string> | undefined): unknown {
  if (!isContainer(value)) return value;
  const root = emptyLike(value);
  const work: { readonly from: Container; readonly to: Container; readonly depth: number }[] = [
    { from: value, to: root, depth: 1 },
  ];
  // The view of one child: its copy (queued for filling), a placeholder, or the scalar itself.
  const childOf = (child: unknown, depth: number): unknown => {
    if (!isContainer(child)) return child;
    if (depth > MAX_VIEW_DEPTH) return TOO_DEEP;
    const to = emptyLike(child);
    work.push({ from: child, to, depth });
    return to;
  };
  for (let item = work.pop(); item !== undefined; item = work.pop()) {
    const { from, to, depth } = item;
    if (Array.isArray(from)) {
      for (const child of from) (to as unknown[]).push(childOf(child, depth + 1));
      continue;
    }
    const target = to as Record<string, unknown>;
    for (const [name, child] of Object.entries(from)) {
      const shown = secret?.has(name.toLowerCase()) ? REDACTED : childOf(child, depth + 1);
      // A key `__proto__` (JSON.parse makes it an own property) must stay a property, not a prototype.
      if (name === '__proto__')
        Object.defineProperty(target, name, {
          value: shown,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      else target[name] = shown;
    }
  }
  return root;
}

type Frame =
  | { readonly items: readonly unknown[]; next: number }
  | {
      readonly object: Record<string, unknown>;
      readonly keys: readonly string[];
      next: number;
      written: number;
    };

/**
 * `JSON.stringify(value)` without recursion: the same text for every value `JSON.parse` can
 * produce (and for `undefined`, functions and symbols: `undefined` at the top, skipped in objects,
 * `null` in arrays), at any depth.
 */
export function jsonText(value: unknown): string | undefined {
  if (!isContainer(value)) return JSON.stringify(value);
  const out: string[] = [];
  const stack: Frame[] = [];
  const open = (container: Container) => {
    if (Array.isArray(container)) {
      out.push('[');
      stack.push({ items: container, next: 0 });
    } else {
      out.push('{');
      stack.push({ object: container, keys: Object.keys(container), next: 0, written: 0 });
    }
  };
  open(value);
  for (let top = stack[stack.length - 1]; top !== undefined; top = stack[stack.length - 1]) {
    if ('items' in top) {
      if (top.next === top.items.length) {
        out.push(']');
        stack.pop();
        continue;
      }
      if (top.next > 0) out.push(',');
      const item = top.items[top.next++];
      if (isContainer(item)) open(item);
      else out.push(JSON.stringify(item) ?? 'null');
      continue;
    }
    if (top.next === top.keys.length) {
      out.push('}');
      stack.pop();
      continue;
    }
    const name = top.keys[top.next++] as string;
    const item = top.object[name];
    const scalar = isContainer(item) ? undefined : JSON.stringify(item);
    // JSON.stringify leaves out members whose value has no JSON form.
    if (!isContainer(item) && scalar === undefined) continue;
    out.push(`${top.written++ > 0 ? ',' : ''}${JSON.stringify(name)}:`);
    if (isContainer(item)) open(item);
    else out.push(scalar as string);
  }
  return out.join('');
}

function emptyLike(container: Container): Container {
  return Array.isArray(container) ? [] : {};
}

function isContainer(value: unknown): value is Container {
  return typeof value === 'object' && value !== null;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
