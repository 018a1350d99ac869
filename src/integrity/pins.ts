import { type Definition, type DefinitionKind, definitionHash, pinnedForm } from './definitions.js';

/**
 * A route's pin file (DESIGN.md step 7): for each tool and prompt a route trusts, keyed by the
 * server that lists it and its name there (never the exposed name: a prefix or federation change
 * cannot move a pin onto another server's tool), its definition as hashed and the hash. Written by
 * `portcullis pin --write`, reviewed like code, read by the gateway.
 */

/** The format tag every pin file carries; another is refused. */
export const PIN_FORMAT = 'portcullis-pins/1';

export interface Pin {
  readonly kind: DefinitionKind;
  /** The server of a federated route that lists it; undefined on a single-server route. */
  readonly server: string | undefined;
  /** Its name on that server (what the server calls it, not the exposed name). */
  readonly name: string;
  /** `sha256:<hex>` of the definition's canonical JSON (`definitions.ts`). */
  readonly hash: string;
  /** The definition as hashed: what a reviewer reads, and what arguments are validated against. */
  readonly definition: Definition;
}

/** The pins of one route, by (kind, server, name). */
export class PinSet {
  private readonly byKey = new Map<string, Pin>();

  constructor(readonly pins: readonly Pin[]) {
    for (const pin of pins) this.byKey.set(pinKey(pin.kind, pin.server, pin.name), pin);
  }

  get(kind: DefinitionKind, server: string | undefined, name: string): Pin | undefined {
    return this.byKey.get(pinKey(kind, server, name));
  }

  get size(): number {
    return this.byKey.size;
  }
}

function pinKey(kind: DefinitionKind, server: string | undefined, name: string): string {
  return JSON.stringify([kind, server ?? null, name]);
}

/** Pins made from definitions the servers list now. */
export function pinsOf(
  listed: readonly {
    readonly kind: DefinitionKind;
    readonly server: string | undefined;
    readonly definition: Definition;
  }[],
  volatileMeta: ReadonlySet<string>,
): { readonly pins: Pin[]; readonly unpinnable: string[] } {
  const pins: Pin[] = [];
  const unpinnable: string[] = [];
  const seen = new Set<string>();
  for (const { kind, server, definition } of listed) {
    const name = definition.name;
    if (typeof name !== 'string') continue;
    // A name listed twice has no one definition to trust: neither copy is pinned.
    const key = JSON.stringify([kind, server ?? null, name]);
    if (seen.has(key)) {
      unpinnable.push(`${describe(kind, server, name)}: listed more than once`);
      const at = pins.findIndex((pin) => pin.kind === kind && pin.server === server && pin.name === name);
      if (at !== -1) pins.splice(at, 1);
      continue;
    }
    seen.add(key);
    const hash = definitionHash(definition, volatileMeta);
    if (typeof hash !== 'string') {
      unpinnable.push(
        `${describe(kind, server, name)}: ${hash.unhashable === 'too_large' ? 'definition too large to pin' : 'definition is not valid Unicode JSON'}`,
      );
      continue;
    }
    pins.push({ kind, server, name, hash, definition: pinnedForm(definition, volatileMeta) });
  }
  return { pins: sortPins(pins), unpinnable };
}

/** How a pin is named to people: `tool read_file`, or `tool files/read_file` on a federated route. */
export function describe(kind: DefinitionKind, server: string | undefined, name: string): string {
  return `${kind} ${server === undefined ? '' : `${server}/`}${name}`;
}

function sortPins(pins: Pin[]): Pin[] {
  return pins.sort(
    (a, b) =>
      a.kind.localeCompare(b.kind) ||
      (a.server ?? '').localeCompare(b.server ?? '') ||
      (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
  );
}

/** A pin file's text: stable (sorted, two-space JSON) so that a review diff shows what changed. */
export function serializePins(route: string, pins: readonly Pin[]): string {
  const entry = (pin: Pin) => ({
    ...(pin.server === undefined ? {} : { server: pin.server }),
    name: pin.name,
    hash: pin.hash,
    definition: pin.definition,
  });
  const sorted = sortPins([...pins]);
  const tools = sorted.filter((pin) => pin.kind === 'tool').map(entry);
  const prompts = sorted.filter((pin) => pin.kind === 'prompt').map(entry);
  return `${JSON.stringify({ format: PIN_FORMAT, route, tools, prompts }, null, 2)}\n`;
}

/**
 * A pin file read back; a problem (not this format, a malformed entry, a hash that does not match
 * its definition — an edited file) as a message naming where.
 */
export function parsePins(
  text: string,
  volatileMeta: ReadonlySet<string>,
): PinSet | { readonly problem: string } {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { problem: `not JSON (${(err as Error).message})` };
  }
  const file = value as { format?: unknown; tools?: unknown; prompts?: unknown } | null;
  if (typeof file !== 'object' || file === null || file.format !== PIN_FORMAT)
    return { problem: `not a pin file of format ${PIN_FORMAT}` };
  const pins: Pin[] = [];
  for (const [field, kind] of [
    ['tools', 'tool'],
    ['prompts', 'prompt'],
  ] as const) {
    const entries = file[field] ?? [];
    if (!Array.isArray(entries)) return { problem: `${field} must be an array` };
    for (const [i, entry] of entries.entries()) {
      const at = `${field}[${i}]`;
      const { server, name, hash, definition } = (entry ?? {}) as Record<string, unknown>;
      if (server !== undefined && typeof server !== 'string')
        return { problem: `${at}.server must be a string` };
      if (typeof name !== 'string') return { problem: `${at}.name must be a string` };
      if (typeof definition !== 'object' || definition === null || Array.isArray(definition))
        return { problem: `${at}.definition must be an object` };
      if ((definition as Definition).name !== name)
        return { problem: `${at}: name differs from definition.name` };
      const actual = definitionHash(definition as Definition, volatileMeta);
      if (typeof hash !== 'string' || actual !== hash)
        return { problem: `${at} (${name}): hash does not match its definition (edited by hand?)` };
      pins.push({ kind, server, name, hash, definition: definition as Definition });
    }
  }
  const set = new PinSet(pins);
  if (set.size !== pins.length) return { problem: 'the same tool or prompt is pinned twice' };
  return set;
}
