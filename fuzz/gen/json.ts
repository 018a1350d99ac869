import type { Prng } from '../prng.js';

/**
 * JSON as the generators build it: objects are entry lists, so they can repeat a key; numbers
 * are tokens, so they can be any spelling; `raw` is text spliced in as it is (deep nesting,
 * broken framing). Depth is the generators' own choice (bounded), so walking it may recurse.
 */
export type JsonNode =
  | { readonly t: 'obj'; readonly e: [string, JsonNode][] }
  | { readonly t: 'arr'; readonly v: JsonNode[] }
  | { readonly t: 'str'; readonly v: string }
  | { readonly t: 'num'; readonly v: string }
  | { readonly t: 'lit'; readonly v: 'true' | 'false' | 'null' }
  | { readonly t: 'raw'; readonly v: string };

export const obj = (entries: Record<string, JsonNode>): JsonNode => ({
  t: 'obj',
  e: Object.entries(entries),
});
export const arr = (items: JsonNode[]): JsonNode => ({ t: 'arr', v: items });
export const str = (v: string): JsonNode => ({ t: 'str', v });
export const num = (v: number | string): JsonNode => ({ t: 'num', v: String(v) });
export const lit = (v: 'true' | 'false' | 'null'): JsonNode => ({ t: 'lit', v });
export const bool = (v: boolean): JsonNode => lit(v ? 'true' : 'false');

/** Words that exercise escapes, non-ASCII, astral characters and case folding. */
const WORDS = [
  'echo',
  'read_file',
  'admin_reset',
  'a',
  '',
  'π',
  'naïve',
  '日本語',
  '😀',
  'ſecret',
  '\u212Aelvin',
  'tab\there',
  'quote"d',
  'back\\slash',
  'line\nbreak',
  '\u0000nul',
  '\u2028sep',
  '/slash/',
  '\ud800',
  '\udfff lone',
];

export function word(rng: Prng): string {
  if (rng.chance(0.7)) return rng.pick(WORDS);
  let out = '';
  const length = rng.size(40);
  for (let i = 0; i < length; i++) {
    const r = rng.int(10);
    out +=
      r < 6
        ? String.fromCharCode(rng.range(0x20, 0x7e))
        : r < 8
          ? String.fromCharCode(rng.range(0, 0x1f))
          : String.fromCodePoint(rng.range(0x80, 0x10ffff));
  }
  return out;
}

export function number(rng: Prng): string {
  switch (rng.int(6)) {
    case 0:
      return String(rng.range(-1000, 1000));
    case 1:
      return String(rng.next());
    case 2:
      return String((rng.next() / 7) * (rng.chance(0.5) ? 1 : -1));
    case 3:
      return rng.pick(['0', '-0', '1.5', '1e3', '2E-3', '0.1', '-12.25e+2', '9007199254740991']);
    default:
      return String(rng.int(100));
  }
}

/** A random JSON value of at most `depth` levels. */
export function value(rng: Prng, depth: number): JsonNode {
  const r = rng.int(depth > 0 ? 10 : 6);
  if (r < 2) return str(word(rng));
  if (r < 4) return num(number(rng));
  if (r < 6) return rng.chance(0.3) ? lit('null') : bool(rng.chance(0.5));
  if (r < 8) {
    const items: JsonNode[] = [];
    for (let i = rng.size(6); i > 0; i--) items.push(value(rng, depth - 1));
    return arr(items);
  }
  const entries: [string, JsonNode][] = [];
  const seen = new Set<string>();
  for (let i = rng.size(6); i > 0; i--) {
    const key = word(rng);
    if (seen.has(key)) continue;
    seen.add(key);
    entries.push([key, value(rng, depth - 1)]);
  }
  return { t: 'obj', e: entries };
}

/** How the text is written: whitespace, escapes and number spellings that keep the meaning. */
export interface Style {
  /** Probability of whitespace around each token. */
  readonly space: number;
  /** Probability of writing a character of a string or key as a `\u` escape. */
  readonly escape: number;
  /** Respell integers (`5` → `5.0`, `0.5e1`): same value, other text. */
  readonly respell: boolean;
}

export function style(rng: Prng): Style {
  return {
    space: rng.pick([0, 0, 0.1, 0.5]),
    escape: rng.pick([0, 0, 0.02, 0.2]),
    respell: rng.chance(0.2),
  };
}

const SPACES = [' ', '\t', '\n', '\r', '\r\n', '  '];

/** Serializes a node; the style varies the spelling, never the meaning. */
export function write(node: JsonNode, rng: Prng, s: Style): string {
  const ws = () => (s.space > 0 && rng.chance(s.space) ? rng.pick(SPACES) : '');
  switch (node.t) {
    case 'obj':
      return `{${ws()}${node.e.map(([k, v]) => `${quote(k, rng, s)}${ws()}:${ws()}${write(v, rng, s)}`).join(`${ws()},${ws()}`)}${ws()}}`;
    case 'arr':
      return `[${ws()}${node.v.map((v) => write(v, rng, s)).join(`${ws()},${ws()}`)}${ws()}]`;
    case 'str':
      return quote(node.v, rng, s);
    case 'num':
      return s.respell ? respell(node.v, rng) : node.v;
    case 'lit':
    case 'raw':
      return node.v;
  }
}

function quote(text: string, rng: Prng, s: Style): string {
  if (s.escape === 0) return JSON.stringify(text);
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (rng.chance(s.escape)) {
      const hex = code.toString(16).padStart(4, '0');
      out += `\\u${rng.chance(0.5) ? hex : hex.toUpperCase()}`;
    } else if (code === 0x2f && rng.chance(0.5)) out += '\\/';
    else out += JSON.stringify(text[i]).slice(1, -1);
  }
  return `${out}"`;
}

function respell(token: string, rng: Prng): string {
  if (!/^-?[1-9]\d{0,6}$/.test(token)) return token;
  switch (rng.int(4)) {
    case 0:
      return `${token}.0`;
    case 1:
      return `${token}e0`;
    case 2:
      return `${token}0E-1`;
    default:
      return `${token}.000e+0`;
  }
}

/** Every object node reachable from `node` (depth is bounded by the generator). */
export function objects(node: JsonNode, into: { t: 'obj'; e: [string, JsonNode][] }[] = []): typeof into {
  if (node.t === 'obj') {
    into.push(node);
    for (const [, v] of node.e) objects(v, into);
  } else if (node.t === 'arr') for (const v of node.v) objects(v, into);
  return into;
}

/** Every slot holding a value, to replace it: the parent container and the index. */
export function slots(node: JsonNode, into: { parent: JsonNode; index: number }[] = []): typeof into {
  if (node.t === 'obj')
    node.e.forEach(([, v], index) => {
      into.push({ parent: node, index });
      slots(v, into);
    });
  else if (node.t === 'arr')
    node.v.forEach((v, index) => {
      into.push({ parent: node, index });
      slots(v, into);
    });
  return into;
}

export function replaceSlot(slot: { parent: JsonNode; index: number }, next: JsonNode): void {
  const { parent, index } = slot;
  if (parent.t === 'obj') {
    const entry = parent.e[index];
    if (entry) entry[1] = next;
  } else if (parent.t === 'arr') parent.v[index] = next;
}

/** Deep nesting as text: around the usual limits (64), far beyond, and past a recursive parser's stack. */
export function nestingDepth(rng: Prng): number {
  const r = rng.int(100);
  return r < 20
    ? rng.range(60, 70)
    : r < 70
      ? rng.range(100, 1000)
      : r < 98
        ? rng.range(1000, 6000)
        : rng.range(6000, 20000);
}

export function deepText(rng: Prng, depth = nestingDepth(rng)): string {
  const inner = rng.pick(['1', '"x"', '{}', '[]', 'null']);
  switch (rng.int(3)) {
    case 0:
      return `${'['.repeat(depth)}${inner}${']'.repeat(depth)}`;
    case 1:
      return `${'{"a":'.repeat(depth)}${inner}${'}'.repeat(depth)}`;
    default:
      return `${'[{"k":'.repeat(depth >> 1)}${inner}${'}]'.repeat(depth >> 1)}`;
  }
}

/** Number tokens that break naive checks: long, huge, tiny, beyond 2^53, overflowing. */
export function hugeNumber(rng: Prng): string {
  // Long tokens are rare: a quadratic check on them takes seconds each.
  const long = () => (rng.chance(0.002) ? rng.range(1000, 120_000) : rng.range(1, 400));
  switch (rng.int(10)) {
    case 0:
      return `1.${'0'.repeat(long())}1`;
    case 1:
      return '9'.repeat(long());
    case 2:
      return `${rng.chance(0.5) ? '-' : ''}1${'0'.repeat(long())}`;
    case 3:
      return `0.${'0'.repeat(long())}`;
    case 4:
      return `1e${rng.range(-400, 400)}`;
    case 5:
      return `${rng.range(1, 9)}.${'5'.repeat(rng.range(1, 30))}e${rng.range(-330, 330)}`;
    default:
      return rng.pick([
        '-0',
        '-0.0',
        '0e99999',
        '1E400',
        '-1e400',
        '5e-324',
        '2e-324',
        '1.7976931348623157e308',
        '1.7976931348623159e308',
        '9007199254740991',
        '9007199254740992',
        '9007199254740993',
        '-9007199254740993',
        '123456789012345678901234567890',
        '0.1',
        '0.30000000000000004',
        '0.3000000000000000444',
        '1e-7',
        '1e21',
        '100000000000000000000',
        '1000000000000000000000',
      ]);
  }
}

/** A key spelled to equal another after case folding: `Method`, `METHOD`, `paramſ`, Kelvin `K`. */
export function caseVariant(key: string, rng: Prng): string {
  switch (rng.int(5)) {
    case 0:
      return key.charAt(0).toUpperCase() + key.slice(1);
    case 1:
      return key.toUpperCase();
    case 2:
      return key.includes('s') ? key.replace('s', '\u017f') : `${key.toUpperCase()}`;
    case 3:
      return key.includes('k') ? key.replace('k', '\u212a') : key.replace(/[a-z]/, (c) => c.toUpperCase());
    default:
      return [...key].map((c) => (rng.chance(0.5) ? c.toUpperCase() : c)).join('');
  }
}

/** Text-level damage to the framing: what a broken or hostile peer sends. */
export function breakFraming(text: string, rng: Prng): string {
  const at = rng.int(text.length + 1);
  switch (rng.int(12)) {
    case 0:
      return text.slice(0, at);
    case 1:
      return text + rng.pick(['', ' ', '}', ']', ',', 'x', '\u0000', '{}', '\n{"jsonrpc":"2.0"}']);
    case 2:
      return `\ufeff${text}`;
    case 3:
      return text.slice(0, at) + text.slice(at + rng.range(1, 4));
    case 4:
      return text.slice(0, at) + String.fromCharCode(rng.range(0, 0x1f)) + text.slice(at);
    case 5:
      return (
        text.slice(0, at) + rng.pick(['"', '\\', ',', ':', '{', '[', '}', ']', 'NaN', "'"]) + text.slice(at)
      );
    case 6:
      return text.replace(/}$/, ',}');
    case 7:
      return `[${text}`;
    case 8:
      return text + text;
    case 9:
      return text.replace(/"/, "'");
    case 10:
      return `${text.slice(0, at)}\\ud800${text.slice(at)}`;
    default:
      return (
        text.slice(0, at) + text.slice(at, at + rng.range(1, 20)).repeat(rng.range(2, 4)) + text.slice(at)
      );
  }
}
