/**
 * The strict-JSON scanner: one linear, iterative pass over a request body that runs BEFORE
 * anything recursive (JSON.parse, JSON.stringify, policy, the audit's argument view) touches it,
 * fed chunk by chunk as the body arrives so a large body never holds the event loop in one block.
 *
 * It validates the JSON grammar (RFC 8259, exactly what `JSON.parse` accepts) and finds what would
 * let two parsers read one text differently, or make the gateway's own work unbounded:
 * - `syntax`: not JSON;
 * - `too_deep`: containers nested deeper than `maxDepth` (recursive code downstream — ours, the
 *   upstream's — would overflow its stack: a 5000-deep request was a 500 before);
 * - `duplicate_key`: an object repeats a key (JSON.parse keeps the last, other parsers the first);
 * - `unsafe_number`: a number that would change on re-serialization (an integer beyond 2^53, more
 *   precision than a double, an overflow) or is longer than {@link MAX_NUMBER_LENGTH};
 * - `folded_key`: two keys of one object equal after Unicode simple case folding (a
 *   case-insensitive decoder such as Go's `encoding/json` would read them as one: `case-fold.ts`).
 *
 * Work is O(1) per character; memory is bounded by the body (keys of open objects, the depth
 * stack up to `maxDepth`, one number token up to its cap). It never throws on any input.
 */
import { foldKey } from './case-fold.js';
import type { JsonBuilder } from './json-builder.js';

export type StrictJsonProblem = 'syntax' | 'too_deep' | 'duplicate_key' | 'unsafe_number' | 'folded_key';

/**
 * Longest number token accepted, in characters. The shortest spelling that round-trips any double
 * is at most 24 characters (`-2.2250738585072014e-308`: 17 significant digits, sign, point,
 * exponent); serializers that write fixed-point (JavaScript and Go below 1e21, down to 1e-7) need
 * at most 26 (`-0.0000001234567890123456`). 40 leaves room for trailing zeros a client may add,
 * and refusing anything longer costs no honest client: such a number cannot be represented
 * exactly anyway unless it is padding.
 */
export const MAX_NUMBER_LENGTH = 40;

/** A body decoded to text, with the scanner's verdict on it. */
export interface ScannedText {
  readonly text: string;
  readonly problem: StrictJsonProblem | undefined;
}

/**
 * A body scanned and built as it arrived (`json-builder.ts`): its value and its re-serialized text,
 * with the scanner's verdict. Neither is meaningful when the verdict is `syntax` or `too_deep`;
 * `forward` only when there is no problem at all.
 */
export interface BuiltJson {
  readonly problem: StrictJsonProblem | undefined;
  readonly value: unknown;
  readonly forward: string;
}

export interface StrictJsonScanner {
  /** Scans the next piece of the text (any split of the text gives the same verdict). */
  write(piece: string): void;
  /** The verdict once the whole text was written: the first fatal problem, else the worst other. */
  end(): StrictJsonProblem | undefined;
}

// Grammar states.
const S_VALUE = 0; // a value must follow (start, after ':', after ',' in an array)
const S_VALUE_OR_CLOSE = 1; // after '['
const S_KEY_OR_CLOSE = 2; // after '{'
const S_KEY = 3; // after ',' in an object
const S_COLON = 4; // after a key
const S_AFTER_VALUE = 5; // ',' or the close of the container (or the end, at the top)
const S_STRING = 6;
const S_ESCAPE = 7; // after a backslash in a string
const S_UNICODE = 8; // inside \uXXXX
const S_NUMBER = 9;
const S_LITERAL = 10; // inside true / false / null
const S_FAILED = 11; // syntax or too_deep: nothing more is read

// Number sub-states: what the token read so far ends with.
const N_MINUS = 0;
const N_ZERO = 1;
const N_INT = 2;
const N_POINT = 3;
const N_FRACTION = 4;
const N_E = 5;
const N_E_SIGN = 6;
const N_EXPONENT = 7;

const LITERALS = ['true', 'false', 'null'] as const;

/**
 * A new scanner; `maxDepth` is the deepest nesting of arrays and objects allowed. With a `builder`,
 * every token the scan accepts is handed to it as it is read (strings decoded, numbers whole).
 */
export function createStrictJsonScanner(opts: {
  readonly maxDepth: number;
  readonly builder?: JsonBuilder;
}): StrictJsonScanner {
  const { maxDepth, builder } = opts;
  const building = builder !== undefined;
  let state = S_VALUE;
  let fatal: 'syntax' | 'too_deep' | undefined;
  let duplicate = false;
  let unsafe = false;
  let folded = false;
  /** One entry per open container: the keys seen so far for objects, null for arrays. */
  const frames: (KeySet | null)[] = [];
  let topDone = false;
  // String state.
  let inKey = false;
  /** The decoded characters of the string being read: keys always, values only when building. */
  let key = '';
  let unicodeDigits = 0;
  let unicodeValue = 0;
  // Number state.
  let numberState = N_MINUS;
  let token = '';
  // Literal state.
  let literal = '';
  let literalAt = 0;

  const fail = (why: 'syntax' | 'too_deep') => {
    fatal = why;
    state = S_FAILED;
  };

  /** A value just ended: what follows depends on the container it was in. */
  const valueEnded = () => {
    state = S_AFTER_VALUE;
    if (frames.length === 0) topDone = true;
  };

  const open = (object: boolean) => {
    if (frames.length >= maxDepth) return fail('too_deep');
    frames.push(object ? { pairs: [], index: undefined } : null);
    state = object ? S_KEY_OR_CLOSE : S_VALUE_OR_CLOSE;
    builder?.open(object);
  };

  const close = (object: boolean) => {
    const frame = frames[frames.length - 1];
    if (frame === undefined || (frame !== null) !== object) return fail('syntax');
    frames.pop();
    builder?.close();
    valueEnded();
  };

  const keyEnded = () => {
    const frame = frames[frames.length - 1];
    if (frame) {
      const seen = sawKey(frame, key);
      if (seen === 'exact') duplicate = true;
      else if (seen === 'folded') folded = true;
    }
    builder?.key(key);
    key = '';
    state = S_COLON;
  };

  const numberEnded = () => {
    if (numberState === N_MINUS || numberState === N_POINT || numberState === N_E || numberState === N_E_SIGN)
      return fail('syntax');
    if (token.length > MAX_NUMBER_LENGTH || !numberSurvives(token)) unsafe = true;
    builder?.number(token);
    token = '';
    valueEnded();
  };

  /** A character that starts a value. */
  const startValue = (c: number, piece: string, i: number): void => {
    if (c === 0x22) {
      inKey = false;
      state = S_STRING;
    } else if (c === 0x7b) open(true);
    else if (c === 0x5b) open(false);
    else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      state = S_NUMBER;
      numberState = c === 0x2d ? N_MINUS : c === 0x30 ? N_ZERO : N_INT;
      token = c === 0x2d ? '-' : (piece[i] as string);
    } else if (c === 0x74 || c === 0x66 || c === 0x6e) {
      state = S_LITERAL;
      literal = LITERALS[c === 0x74 ? 0 : c === 0x66 ? 1 : 2];
      literalAt = 1;
    } else fail('syntax');
  };

  /** Advances the number sub-state by `c`; false when `c` cannot continue the token. */
  const numberStep = (c: number): boolean => {
    const digit = c >= 0x30 && c <= 0x39;
    switch (numberState) {
      case N_MINUS:
        if (!digit) return false;
        numberState = c === 0x30 ? N_ZERO : N_INT;
        return true;
      case N_ZERO:
      case N_INT:
        if (digit) {
          if (numberState === N_ZERO) return false; // a leading zero: '01' ends the number at '0'
          return true;
        }
        if (c === 0x2e) numberState = N_POINT;
        else if (c === 0x65 || c === 0x45) numberState = N_E;
        else return false;
        return true;
      case N_POINT:
      case N_FRACTION:
        if (digit) numberState = N_FRACTION;
        else if (numberState === N_FRACTION && (c === 0x65 || c === 0x45)) numberState = N_E;
        else return false;
        return true;
      case N_E:
        if (c === 0x2b || c === 0x2d) numberState = N_E_SIGN;
        else if (digit) numberState = N_EXPONENT;
        else return false;
        return true;
      default: // N_E_SIGN, N_EXPONENT
        if (!digit) return false;
        numberState = N_EXPONENT;
        return true;
    }
  };

  const write = (piece: string): void => {
    const n = piece.length;
    let i = 0;
    while (i < n) {
      switch (state) {
        case S_FAILED:
          return;
        case S_STRING: {
          // The hot loop: plain characters up to the next quote, backslash or control character.
          const start = i;
          let c = 0;
          while (i < n) {
            c = piece.charCodeAt(i);
            if (c === 0x22 || c === 0x5c || c < 0x20) break;
            i++;
          }
          if ((inKey || building) && i > start) key += piece.slice(start, i);
          if (i === n) break;
          i++;
          if (c === 0x22) {
            if (inKey) keyEnded();
            else {
              if (building) {
                builder.string(key);
                key = '';
              }
              valueEnded();
            }
          } else if (c === 0x5c) state = S_ESCAPE;
          else fail('syntax'); // a raw control character
          break;
        }
        case S_ESCAPE: {
          const c = piece.charCodeAt(i++);
          const simple = escaped(c);
          if (simple !== undefined) {
            if (inKey || building) key += simple;
            state = S_STRING;
          } else if (c === 0x75) {
            state = S_UNICODE;
            unicodeDigits = 0;
            unicodeValue = 0;
          } else fail('syntax');
          break;
        }
        case S_UNICODE: {
          const h = hexValue(piece.charCodeAt(i++));
          if (h < 0) {
            fail('syntax');
            break;
          }
          unicodeValue = unicodeValue * 16 + h;
          if (++unicodeDigits === 4) {
            if (inKey || building) key += String.fromCharCode(unicodeValue);
            state = S_STRING;
          }
          break;
        }
        case S_NUMBER: {
          const start = i;
          while (i < n && numberStep(piece.charCodeAt(i))) i++;
          // The token is kept only up to just past the cap (enough to know it is too long), unless
          // it is built: the value of a refused number may still be an id a refusal answers.
          if (building) token += piece.slice(start, i);
          else if (token.length <= MAX_NUMBER_LENGTH)
            token += piece.slice(start, Math.min(i, start + MAX_NUMBER_LENGTH + 1));
          if (i < n) numberEnded(); // the character that ended it is read again in the next state
          break;
        }
        case S_LITERAL: {
          if (piece.charCodeAt(i++) !== literal.charCodeAt(literalAt++)) fail('syntax');
          else if (literalAt === literal.length) {
            builder?.literal(literal === 'true' ? 0 : literal === 'false' ? 1 : 2);
            valueEnded();
          }
          break;
        }
        default: {
          const c = piece.charCodeAt(i++);
          if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) break;
          switch (state) {
            case S_VALUE:
              if (topDone) fail('syntax');
              else startValue(c, piece, i - 1);
              break;
            case S_VALUE_OR_CLOSE:
              if (c === 0x5d) close(false);
              else startValue(c, piece, i - 1);
              break;
            case S_KEY_OR_CLOSE:
            case S_KEY:
              if (c === 0x22) {
                inKey = true;
                state = S_STRING;
              } else if (c === 0x7d && state === S_KEY_OR_CLOSE) close(true);
              else fail('syntax');
              break;
            case S_COLON:
              if (c === 0x3a) state = S_VALUE;
              else fail('syntax');
              break;
            default: {
              // S_AFTER_VALUE
              const frame = frames[frames.length - 1];
              if (frame === undefined)
                fail('syntax'); // text after the top-level value
              else if (c === 0x2c) state = frame === null ? S_VALUE : S_KEY;
              else if (c === 0x5d) close(false);
              else if (c === 0x7d) close(true);
              else fail('syntax');
            }
          }
        }
      }
    }
    if (building && state !== S_FAILED) {
      // A string value still open: what was decoded of it so far goes to the builder now, so the
      // chunk's work is done with the chunk.
      if (!inKey && (state === S_STRING || state === S_ESCAPE || state === S_UNICODE)) {
        builder.stringPiece(key);
        key = '';
      }
      builder.endChunk();
    }
  };

  const end = (): StrictJsonProblem | undefined => {
    if (state === S_NUMBER) numberEnded();
    if (fatal === undefined && !(state === S_AFTER_VALUE && topDone)) fail('syntax');
    if (fatal !== undefined) return fatal;
    // Which problem is named when several occur: the one that says most about the smuggling.
    if (duplicate) return 'duplicate_key';
    if (unsafe) return 'unsafe_number';
    if (folded) return 'folded_key';
    return undefined;
  };

  return { write, end };
}

/**
 * The keys of one open object, by their case fold. Most objects have a handful of keys: a flat
 * array searched linearly costs less than a Map per object; past {@link SMALL_OBJECT} keys a Map
 * keeps the search O(1), so the scan stays linear however many keys an object has.
 */
interface KeySet {
  /** fold, key, fold, key, … */
  readonly pairs: string[];
  index: Map<string, string> | undefined;
}

const SMALL_OBJECT = 8;

/** Records `key` in `frame`; says whether it, or another key with its fold, was there before. */
function sawKey(frame: KeySet, key: string): 'exact' | 'folded' | undefined {
  const fold = foldKey(key);
  let earlier: string | undefined;
  if (frame.index !== undefined) {
    earlier = frame.index.get(fold);
    if (earlier === undefined) frame.index.set(fold, key);
  } else {
    const { pairs } = frame;
    for (let i = 0; i < pairs.length; i += 2) {
      if (pairs[i] === fold) {
        earlier = pairs[i + 1];
        break;
      }
    }
    if (earlier === undefined) {
      pairs.push(fold, key);
      if (pairs.length > SMALL_OBJECT * 2) {
        frame.index = new Map();
        for (let i = 0; i < pairs.length; i += 2) frame.index.set(pairs[i] as string, pairs[i + 1] as string);
      }
    }
  }
  if (earlier === undefined) return undefined;
  return earlier === key ? 'exact' : 'folded';
}

/** Scans a whole text at once (tests, and callers that hold the text already). */
export function checkStrictJson(
  text: string,
  opts: { readonly maxDepth: number } = { maxDepth: Number.POSITIVE_INFINITY },
): StrictJsonProblem | undefined {
  const scanner = createStrictJsonScanner(opts);
  scanner.write(text);
  return scanner.end();
}

/** The character a one-letter escape stands for; undefined when `c` is not one. */
function escaped(c: number): string | undefined {
  switch (c) {
    case 0x22:
      return '"';
    case 0x5c:
      return '\\';
    case 0x2f:
      return '/';
    case 0x62:
      return '\b';
    case 0x66:
      return '\f';
    case 0x6e:
      return '\n';
    case 0x72:
      return '\r';
    case 0x74:
      return '\t';
    default:
      return undefined;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/**
 * Whether `JSON.stringify(JSON.parse(token))` denotes the same mathematical value as `token`, a
 * valid JSON number. Linear in the token's length, no regular expression: a quadratic trailing-zero
 * regex here let a 50 KB number stall the process for 2 s.
 */
export function numberSurvives(token: string): boolean {
  // One pass: significant digits (from the first non-zero one) and the exponent, when short.
  let significant = 0;
  let integer = true;
  let exponent = 0;
  let exponentSign = 1;
  let exponentDigits = 0;
  let inExponent = false;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (inExponent) {
      if (c === 0x2d) exponentSign = -1;
      else if (c !== 0x2b) {
        exponent = exponent * 10 + (c - 0x30);
        exponentDigits++;
      }
    } else if (c === 0x2e) integer = false;
    else if (c === 0x65 || c === 0x45) {
      integer = false;
      inExponent = true;
    } else if (c >= 0x30 && c <= 0x39 && (significant > 0 || c !== 0x30)) significant++;
  }
  // An integer beyond 2^53 may already be rounded, and int64 parsers upstream read it exactly.
  if (integer) return significant <= 15 || Number.isSafeInteger(Number(token));
  // Fast path: a decimal of at most 15 significant digits well inside the normal range always
  // survives (DBL_DIG: distinct 15-digit decimals are distinct doubles, so the shortest spelling
  // of that double is the same number).
  if (
    significant <= 15 &&
    exponentDigits <= 3 &&
    exponent * exponentSign >= -250 &&
    exponent * exponentSign <= 250
  )
    return true;
  const value = Number(token);
  if (!Number.isFinite(value)) return false;
  return canonicalDecimal(token) === canonicalDecimal(String(value));
}

/**
 * A decimal as sign, significant digits without leading or trailing zeros, and the exponent of the
 * last digit (`-1.50e2` → `-15e1`); zero of any sign or exponent is `0`.
 */
function canonicalDecimal(token: string): string {
  const n = token.length;
  let i = 0;
  const negative = token.charCodeAt(0) === 0x2d;
  if (negative) i++;
  let digits = '';
  let fractionDigits = 0;
  let inFraction = false;
  for (; i < n; i++) {
    const c = token.charCodeAt(i);
    if (c === 0x2e) inFraction = true;
    else if (c === 0x65 || c === 0x45) break;
    else {
      digits += token[i];
      if (inFraction) fractionDigits++;
    }
  }
  const exponent = i < n ? Number(token.slice(i + 1)) : 0;
  let first = 0;
  while (first < digits.length && digits.charCodeAt(first) === 0x30) first++;
  if (first === digits.length) return '0';
  let last = digits.length;
  while (digits.charCodeAt(last - 1) === 0x30) last--;
  const scale = exponent - fractionDigits + (digits.length - last);
  return `${negative ? '-' : ''}${digits.slice(first, last)}e${scale}`;
}
