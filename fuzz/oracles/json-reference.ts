/**
 * A naive reference reader for JSON texts, written independently of `src/jsonrpc/strict-json.ts`
 * (a state machine with an explicit stack, no regular expressions): it says whether the text is
 * JSON at all, how deep it nests, whether any object repeats a key (exactly, or after Unicode
 * simple case folding — what Go's `encoding/json` treats as the same field) and whether any
 * number would change on a `JSON.parse` → `JSON.stringify` round trip.
 */
export interface JsonFacts {
  readonly valid: boolean;
  /** Deepest container nesting: `1` for `{}`, `2` for `[{}]`. */
  readonly maxDepth: number;
  readonly duplicateKey: boolean;
  readonly foldedDuplicateKey: boolean;
  readonly changedNumber: boolean;
}

interface Frame {
  readonly object: boolean;
  readonly keys: Set<string>;
  readonly folded: Set<string>;
}

enum Expect {
  Value,
  ValueOrClose,
  KeyOrClose,
  Key,
  Colon,
  CommaOrClose,
}

export function readJson(text: string): JsonFacts {
  const stack: Frame[] = [];
  let maxDepth = 0;
  let duplicateKey = false;
  let foldedDuplicateKey = false;
  let changedNumber = false;
  let expect: Expect = Expect.Value as Expect;
  let done = false;
  const n = text.length;
  let i = 0;
  const invalid = (): JsonFacts => ({
    valid: false,
    maxDepth,
    duplicateKey,
    foldedDuplicateKey,
    changedNumber,
  });
  const closeValue = () => {
    if (stack.length === 0) done = true;
    expect = Expect.CommaOrClose;
  };
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d) {
      i++;
      continue;
    }
    if (done) return invalid();
    const top = stack[stack.length - 1];
    switch (expect) {
      case Expect.Key:
      case Expect.KeyOrClose: {
        if (c === 0x7d && expect === Expect.KeyOrClose) {
          stack.pop();
          i++;
          closeValue();
          break;
        }
        if (c !== 0x22 || top === undefined) return invalid();
        const read = readString(text, i, true);
        if (read === undefined) return invalid();
        const key = read.value as string;
        if (top.keys.has(key)) duplicateKey = true;
        top.keys.add(key);
        const folded = foldCase(key);
        if (top.folded.has(folded)) foldedDuplicateKey = true;
        top.folded.add(folded);
        i = read.end;
        expect = Expect.Colon;
        break;
      }
      case Expect.Colon:
        if (c !== 0x3a) return invalid();
        i++;
        expect = Expect.Value;
        break;
      case Expect.CommaOrClose:
        if (top === undefined) return invalid();
        if (c === 0x2c) {
          i++;
          expect = top.object ? Expect.Key : Expect.Value;
        } else if ((c === 0x7d && top.object) || (c === 0x5d && !top.object)) {
          stack.pop();
          i++;
          closeValue();
        } else return invalid();
        break;
      case Expect.Value:
      case Expect.ValueOrClose: {
        if (c === 0x5d && expect === Expect.ValueOrClose) {
          stack.pop();
          i++;
          closeValue();
          break;
        }
        if (c === 0x7b || c === 0x5b) {
          const object = c === 0x7b;
          stack.push({ object, keys: new Set(), folded: new Set() });
          if (stack.length > maxDepth) maxDepth = stack.length;
          i++;
          expect = object ? Expect.KeyOrClose : Expect.ValueOrClose;
        } else if (c === 0x22) {
          const read = readString(text, i, false);
          if (read === undefined) return invalid();
          i = read.end;
          closeValue();
        } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
          const end = numberEnd(text, i);
          if (end === -1) return invalid();
          if (numberChanges(text.slice(i, end))) changedNumber = true;
          i = end;
          closeValue();
        } else {
          const word = text.startsWith('true', i)
            ? 4
            : text.startsWith('false', i)
              ? 5
              : text.startsWith('null', i)
                ? 4
                : 0;
          if (word === 0) return invalid();
          i += word;
          closeValue();
        }
        break;
      }
    }
  }
  if (!done) return invalid();
  return { valid: true, maxDepth, duplicateKey, foldedDuplicateKey, changedNumber };
}

/** A string literal starting at `start` (a quote): its end index, and its value when asked. */
function readString(
  text: string,
  start: number,
  keep: boolean,
): { end: number; value: string | undefined } | undefined {
  let value = '';
  let i = start + 1;
  let run = i;
  for (;;) {
    if (i >= text.length) return undefined;
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      if (keep) value += text.slice(run, i);
      return { end: i + 1, value: keep ? value : undefined };
    }
    if (c < 0x20) return undefined;
    if (c !== 0x5c) {
      i++;
      continue;
    }
    if (keep) value += text.slice(run, i);
    const e = text[i + 1];
    const simple = e === undefined ? undefined : SIMPLE_ESCAPES.get(e);
    if (simple !== undefined) {
      if (keep) value += simple;
      i += 2;
    } else if (e === 'u') {
      const hex = text.slice(i + 2, i + 6);
      if (hex.length !== 4 || ![...hex].every(isHex)) return undefined;
      if (keep) value += String.fromCharCode(Number.parseInt(hex, 16));
      i += 6;
    } else return undefined;
    run = i;
  }
}

const SIMPLE_ESCAPES: ReadonlyMap<string, string> = new Map([
  ['"', '"'],
  ['\\', '\\'],
  ['/', '/'],
  ['b', '\b'],
  ['f', '\f'],
  ['n', '\n'],
  ['r', '\r'],
  ['t', '\t'],
]);

function isHex(ch: string): boolean {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}

/** The end of the number token at `i` per RFC 8259's grammar, or -1. */
function numberEnd(text: string, start: number): number {
  let i = start;
  if (text.charCodeAt(i) === 0x2d) i++;
  if (text.charCodeAt(i) === 0x30) i++;
  else if (isDigit(text.charCodeAt(i))) while (isDigit(text.charCodeAt(i))) i++;
  else return -1;
  if (text.charCodeAt(i) === 0x2e) {
    i++;
    if (!isDigit(text.charCodeAt(i))) return -1;
    while (isDigit(text.charCodeAt(i))) i++;
  }
  const e = text.charCodeAt(i);
  if (e === 0x65 || e === 0x45) {
    i++;
    const sign = text.charCodeAt(i);
    if (sign === 0x2b || sign === 0x2d) i++;
    if (!isDigit(text.charCodeAt(i))) return -1;
    while (isDigit(text.charCodeAt(i))) i++;
  }
  return i;
}

/** A decimal's value as (negative, significant digits without leading or trailing zeros, exponent). */
function decimal(token: string): { negative: boolean; digits: string; exponent: number } {
  let i = 0;
  const negative = token[0] === '-';
  if (negative) i++;
  let digits = '';
  let exponent = 0;
  let fraction = false;
  for (; i < token.length; i++) {
    const ch = token[i] as string;
    if (ch === '.') fraction = true;
    else if (ch === 'e' || ch === 'E') {
      exponent += Number(token.slice(i + 1));
      break;
    } else {
      digits += ch;
      if (fraction) exponent--;
    }
  }
  let lead = 0;
  while (lead < digits.length && digits[lead] === '0') lead++;
  let trail = digits.length;
  while (trail > lead && digits[trail - 1] === '0') trail--;
  exponent += digits.length - trail;
  return { negative, digits: digits.slice(lead, trail), exponent };
}

/** Whether `JSON.stringify(JSON.parse(token))` denotes another value than `token`. */
export function numberChanges(token: string): boolean {
  const value = Number(token);
  if (!Number.isFinite(value)) return true;
  const sent = decimal(token);
  const kept = decimal(String(value));
  if (sent.digits === '' || kept.digits === '') return sent.digits !== kept.digits;
  return sent.negative !== kept.negative || sent.digits !== kept.digits || sent.exponent !== kept.exponent;
}

/**
 * Unicode simple case folding, one code point at a time, as far as JavaScript exposes it: a code
 * point whose upper case is one code point folds to that code point's lower case (`ſ` → `S` → `s`,
 * Kelvin `K` → `k`); full mappings (`ß` → `SS`) are not simple folds and are kept.
 */
export function foldCase(key: string): string {
  let out = '';
  for (const ch of key) {
    const upper = ch.toUpperCase();
    if (upper.length > 2 || [...upper].length !== 1) {
      out += ch;
      continue;
    }
    const lower = upper.toLowerCase();
    out += [...lower].length === 1 ? lower : upper;
  }
  return out;
}
