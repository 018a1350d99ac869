/**
 * Unicode simple case folding of object keys, to find keys a case-insensitive JSON decoder would
 * read as one. Go's `encoding/json` matches struct fields case-insensitively (last match wins) by
 * `unicode.SimpleFold` orbits, so `"Method"`, `"NAME"`, `"paramſ"` (U+017F folds to `s`) or
 * `"\u212Aey"` (KELVIN SIGN folds to `k`) reach a Go upstream as `method`, `name`, `params`, `key`:
 * a message policy read one way would run another way. Keys that fold alike are refused.
 *
 * JavaScript has no simple case fold, so each code point is mapped through `toUpperCase` and then
 * `toLowerCase`, each step only where it yields exactly one code point (full mappings such as
 * `ß` → `SS` are not simple foldings). That sends every member of each `unicode.SimpleFold` orbit
 * to one code point (`ſ`→`S`→`s`, `K`→`k`, `ς`→`Σ`→`σ`, `ϑ`→`Θ`→`θ`, `ẞ`→`ß`): a test checks it
 * against every orbit Go reports. It merges a few code points Go keeps apart (`ı` with `i`): over-
 * refusing a pathological key is acceptable, reading two keys as different when an upstream reads
 * them as one is not.
 */

/**
 * Simple foldings the upper-then-lower rule misses because JavaScript upper-cases both sides to
 * several code points (added to CaseFolding.txt as simple foldings in recent Unicode versions).
 */
const EXTRA_FOLDS: ReadonlyMap<number, number> = new Map([
  [0x1fd3, 0x0390], // ΐ GREEK SMALL LETTER IOTA WITH DIALYTIKA AND OXIA
  [0x1fe3, 0x03b0], // ΰ GREEK SMALL LETTER UPSILON WITH DIALYTIKA AND OXIA
  [0xfb05, 0xfb06], // ﬅ LATIN SMALL LIGATURE LONG S T
]);

/** What decoders put in place of an unpaired surrogate (`"\ud800"`): Go writes U+FFFD. */
const REPLACEMENT = 0xfffd;

/** Folded form of one non-ASCII code point, computed once per code point seen. */
const cache = new Map<number, number>();
const CACHE_LIMIT = 4096;

/**
 * The key's simple case fold: two keys with the same fold are one key to a case-insensitive
 * decoder. ASCII keys without upper-case letters are returned as they are (the hot path).
 */
export function foldKey(key: string): string {
  let plain = true;
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i);
    if (c >= 0x80) return foldUnicode(key);
    if (c >= 0x41 && c <= 0x5a) plain = false;
  }
  return plain ? key : key.toLowerCase();
}

function foldUnicode(key: string): string {
  let out = '';
  for (let i = 0; i < key.length; ) {
    const cp = key.codePointAt(i) as number;
    i += cp > 0xffff ? 2 : 1;
    out += String.fromCodePoint(foldCodePoint(cp));
  }
  return out;
}

/** One code point's fold; exported for its tests. */
export function foldCodePoint(cp: number): number {
  if (cp < 0x80) return cp >= 0x41 && cp <= 0x5a ? cp + 0x20 : cp;
  // An unpaired surrogate: several escapes (`\ud800`, `\udfff`) become the same U+FFFD upstream.
  if (cp >= 0xd800 && cp <= 0xdfff) return REPLACEMENT;
  const known = cache.get(cp);
  if (known !== undefined) return known;
  const extra = EXTRA_FOLDS.get(cp);
  const char = String.fromCodePoint(extra ?? cp);
  const upper = single(char.toUpperCase()) ?? char;
  const folded = (single(upper.toLowerCase()) ?? upper).codePointAt(0) as number;
  // Bounded: an attacker sending every code point must not grow the cache without end.
  if (cache.size < CACHE_LIMIT) cache.set(cp, folded);
  return folded;
}

/** The string when it is exactly one code point, else undefined. */
function single(text: string): string | undefined {
  const cp = text.codePointAt(0);
  if (cp === undefined) return undefined;
  return text.length === (cp > 0xffff ? 2 : 1) ? text : undefined;
}

/**
 * Whether `object` has an own key that is none of `names` yet folds to one of them: a member a
 * case-insensitive decoder reads as one of `names` although the gateway never read it so.
 */
export function hasCaseVariant(object: object, names: ReadonlySet<string>): boolean {
  const folded = foldedNames(names);
  for (const key in object) {
    if (Object.hasOwn(object, key) && !names.has(key) && folded.has(foldKey(key))) return true;
  }
  return false;
}

/** The folded spellings of a name set, computed once per set (the sets are module constants). */
const FOLDED = new WeakMap<ReadonlySet<string>, ReadonlySet<string>>();
function foldedNames(names: ReadonlySet<string>): ReadonlySet<string> {
  let folded = FOLDED.get(names);
  if (folded === undefined) {
    folded = new Set([...names].map(foldKey));
    FOLDED.set(names, folded);
  }
  return folded;
}

/**
 * `object` without the keys that fold to one of `names` without being it (`"Tools"`, `"toolſ"`
 * where `tools` is meant); `object` itself when it has none. A list result relayed to a
 * case-insensitive client must carry its list under one spelling only: the one the gateway read.
 */
export function withoutCaseVariants<T extends object>(object: T, names: ReadonlySet<string>): T {
  if (!hasCaseVariant(object, names)) return object;
  const folded = foldedNames(names);
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(object))
    if (names.has(key) || !folded.has(foldKey(key))) kept[key] = value;
  return kept as T;
}
