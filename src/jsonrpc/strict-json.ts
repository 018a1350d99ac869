/**
 * Checks that a JSON text, already accepted by `JSON.parse`, means exactly what its parsed value
 * will say when re-serialized: no object repeats a key (JSON.parse keeps the last one, another
 * parser may keep the first: a smuggling channel past policy), and no number changes on the
 * round trip (an integer beyond 2^53, a float with more precision than a double, an overflow).
 *
 * One linear pass over the text; it relies on the text being valid JSON.
 */
export type StrictJsonProblem = 'duplicate_key' | 'unsafe_number';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COLON = 0x3a;

export function checkStrictJson(text: string): StrictJsonProblem | undefined {
  // One frame per open container: a Set of keys seen for objects, null for arrays.
  const frames: (Set<string> | null)[] = [];
  let expectingKey = false;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const end = stringEnd(text, i);
      const frame = frames[frames.length - 1];
      if (expectingKey && frame) {
        const raw = text.slice(i + 1, end);
        const key = raw.includes('\\') ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        if (frame.has(key)) return 'duplicate_key';
        frame.add(key);
        expectingKey = false;
      }
      i = end + 1;
    } else if (c === OPEN_BRACE) {
      frames.push(new Set());
      expectingKey = true;
      i++;
    } else if (c === OPEN_BRACKET) {
      frames.push(null);
      i++;
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      frames.pop();
      i++;
    } else if (c === 0x2c /* , */) {
      expectingKey = frames[frames.length - 1] instanceof Set;
      i++;
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      let end = i + 1;
      while (end < n && isNumberChar(text.charCodeAt(end))) end++;
      if (!numberSurvives(text.slice(i, end))) return 'unsafe_number';
      i = end;
    } else {
      // whitespace, ':', true/false/null letters
      if (c === COLON) expectingKey = false;
      i++;
    }
  }
  return undefined;
}

function stringEnd(text: string, start: number): number {
  let i = start + 1;
  for (;;) {
    const c = text.charCodeAt(i);
    if (c === BACKSLASH) i += 2;
    else if (c === QUOTE) return i;
    else i++;
  }
}

function isNumberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d;
}

/** Whether `JSON.stringify(JSON.parse(token))` denotes the same mathematical value as `token`. */
export function numberSurvives(token: string): boolean {
  const value = Number(token);
  if (!Number.isFinite(value)) return false;
  if (!/[.eE]/.test(token)) return Number.isSafeInteger(value) || value === 0;
  return canonicalDecimal(token) === canonicalDecimal(String(value));
}

/** A decimal as sign, significant digits without leading/trailing zeros, and exponent of the last digit. */
function canonicalDecimal(token: string): string {
  const match = /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(token);
  if (!match) return token;
  const [, sign = '', intPart = '', fracPart = '', exp = '0'] = match;
  let digits = intPart + fracPart;
  let exponent = Number(exp) - fracPart.length;
  digits = digits.replace(/^0+/, '');
  if (digits === '') return '0';
  const trimmed = digits.replace(/0+$/, '');
  exponent += digits.length - trimmed.length;
  return `${sign}${trimmed}e${exponent}`;
}
