import canonicalize from 'canonicalize';
import { createTwoFilesPatch } from 'diff';
import type { Definition } from './definitions.js';
import { describe, type Pin, type PinSet } from './pins.js';

/** What changed between a pin file and what the servers list now. */
export interface PinDiff {
  readonly added: readonly Pin[];
  readonly removed: readonly Pin[];
  readonly changed: readonly { readonly pinned: Pin; readonly listed: Pin }[];
}

export function diffPins(pinned: PinSet, listed: readonly Pin[]): PinDiff {
  const added: Pin[] = [];
  const changed: { pinned: Pin; listed: Pin }[] = [];
  const seen = new Set<Pin>();
  for (const pin of listed) {
    const before = pinned.get(pin.kind, pin.server, pin.name);
    if (before === undefined) added.push(pin);
    else {
      seen.add(before);
      if (before.hash !== pin.hash) changed.push({ pinned: before, listed: pin });
    }
  }
  const removed = pinned.pins.filter((pin) => !seen.has(pin));
  return { added, removed, changed };
}

export function drifted(diff: PinDiff): boolean {
  return diff.added.length + diff.removed.length + diff.changed.length > 0;
}

/**
 * The diff as a reviewer reads it: `+` added, `-` removed, `~` changed — a changed definition's
 * description and the rest of it (schemas, annotations, `_meta`) each as a unified text diff.
 */
export function renderDiff(diff: PinDiff): string {
  const out: string[] = [];
  for (const pin of diff.added) out.push(`+ ${describe(pin.kind, pin.server, pin.name)}  ${pin.hash}`);
  for (const pin of diff.removed) out.push(`- ${describe(pin.kind, pin.server, pin.name)}  ${pin.hash}`);
  for (const { pinned, listed } of diff.changed) {
    out.push(`~ ${describe(pinned.kind, pinned.server, pinned.name)}  ${pinned.hash} → ${listed.hash}`);
    const [before, after] = [pinned.definition, listed.definition];
    if (before.description !== after.description)
      out.push(indent(patch('description', textOf(before.description), textOf(after.description))));
    const [restBefore, restAfter] = [pretty(withoutDescription(before)), pretty(withoutDescription(after))];
    if (restBefore !== restAfter) out.push(indent(patch('definition', restBefore, restAfter)));
  }
  return out.length === 0 ? '' : `${out.join('\n')}\n`;
}

function patch(what: string, before: string, after: string): string {
  const text = createTwoFilesPatch(`pinned ${what}`, `listed ${what}`, before, after, undefined, undefined, {
    context: 3,
  });
  // The first line is a separator of `=`: the two file lines say what is compared.
  return text.split('\n').slice(1).join('\n').trimEnd();
}

function textOf(value: unknown): string {
  return `${typeof value === 'string' ? value : JSON.stringify(value ?? null)}\n`;
}

function withoutDescription(definition: Definition): Definition {
  const { description: _, ...rest } = definition;
  return rest;
}

/** Keys in canonical order, two-space indented: the same content always prints the same. */
function pretty(definition: Definition): string {
  return `${JSON.stringify(JSON.parse(canonicalize(definition) ?? 'null'), null, 2)}\n`;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
}
