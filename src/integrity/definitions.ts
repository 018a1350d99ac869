import { createHash } from 'node:crypto';
import canonicalize from 'canonicalize';

/**
 * Tool and prompt definitions as the gateway pins them (DESIGN.md step 7, "pin" in the glossary):
 * the item a server lists, hashed over its RFC 8785 canonical JSON — so key order, whitespace and
 * number spelling (`1.0`, `1e0`) never change a hash and any change of content does. `_meta` is
 * hashed too (clients render some of it), except the keys a route lists in `volatileMeta`.
 */

/** What a pin or an observed definition is of. */
export type DefinitionKind = 'tool' | 'prompt';

/** A listed item, as JSON. */
export type Definition = Readonly<Record<string, unknown>>;

/** The largest canonical definition pinned: an upstream's schema is hostile input. */
export const MAX_DEFINITION_BYTES = 256 * 1024;

/** A definition as it is hashed and stored in a pin file: without its volatile `_meta` keys. */
export function pinnedForm(definition: Definition, volatileMeta: ReadonlySet<string>): Definition {
  const meta = definition._meta;
  if (volatileMeta.size === 0 || typeof meta !== 'object' || meta === null || Array.isArray(meta))
    return definition;
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(meta)) if (!volatileMeta.has(key)) kept[key] = value;
  const { _meta: _, ...rest } = definition;
  return Object.keys(kept).length === 0 ? rest : { ...rest, _meta: kept };
}

/** Why a definition cannot be hashed: it cannot be canonicalized (a lone surrogate), or is too large. */
export type Unhashable = { readonly unhashable: 'not_canonical' | 'too_large' };

/**
 * `sha256:<hex>` of the pinned form's canonical JSON; or why there is none (such a definition can
 * never match a pin: it is blocked under `onToolChange: block`).
 */
export function definitionHash(
  definition: Definition,
  volatileMeta: ReadonlySet<string>,
): string | Unhashable {
  let text: string | undefined;
  try {
    text = canonicalize(pinnedForm(definition, volatileMeta));
  } catch {
    return { unhashable: 'not_canonical' };
  }
  if (text === undefined) return { unhashable: 'not_canonical' };
  if (Buffer.byteLength(text) > MAX_DEFINITION_BYTES) return { unhashable: 'too_large' };
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}
