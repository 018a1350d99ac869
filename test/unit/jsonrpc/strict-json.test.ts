import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkStrictJson,
  createStrictJsonScanner,
  MAX_NUMBER_LENGTH,
  numberSurvives,
  type StrictJsonProblem,
} from '../../../src/jsonrpc/strict-json.js';

const UNBOUNDED = { maxDepth: Number.POSITIVE_INFINITY };

/** Whether JSON.parse accepts the text. */
function parses(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** The verdict when `text` is written in pieces cut at `cuts` (indexes, any order). */
function chunked(text: string, cuts: readonly number[], maxDepth = Number.POSITIVE_INFINITY) {
  const scanner = createStrictJsonScanner({ maxDepth });
  let at = 0;
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    scanner.write(text.slice(at, cut));
    at = cut;
  }
  scanner.write(text.slice(at));
  return scanner.end();
}

/** Any JSON value (keys may repeat or fold alike, numbers may not survive). */
const anyJson = fc.jsonValue({ maxDepth: 5 });

/** A JSON text, then mutated: characters deleted, inserted or replaced. */
const mutatedJson = fc
  .tuple(
    anyJson.map((v) => JSON.stringify(v, null, 1)),
    fc.array(
      fc.tuple(
        fc.nat(),
        fc.constantFrom('delete', 'insert', 'replace'),
        fc.string({ unit: 'binary', maxLength: 2 }),
      ),
      {
        maxLength: 4,
      },
    ),
  )
  .map(([text, edits]) => {
    let out = text;
    for (const [at, kind, chars] of edits) {
      const i = out.length === 0 ? 0 : at % out.length;
      out =
        kind === 'delete'
          ? out.slice(0, i) + out.slice(i + 1)
          : kind === 'insert'
            ? out.slice(0, i) + chars + out.slice(i)
            : out.slice(0, i) + chars + out.slice(i + 1);
    }
    return out;
  });

/** Text built from JSON's own characters, so most of it comes close to being JSON. */
const jsonish = fc.string({
  unit: fc.constantFrom(...'{}[]:,"\\ \n0123456789-+.eEtrufalsn/u'.split('')),
  maxLength: 40,
});

describe('the scanner accepts exactly what JSON.parse accepts', () => {
  it.each([
    ['an empty text', ''],
    ['whitespace only', ' \n\t'],
    ['two top-level values', '{} {}'],
    ['a trailing comma in an object', '{"a":1,}'],
    ['a trailing comma in an array', '[1,]'],
    ['a missing colon', '{"a" 1}'],
    ['a non-string key', '{1:2}'],
    ['a leading zero', '01'],
    ['a lone minus', '-'],
    ['a point without digits', '1.'],
    ['an exponent without digits', '1e'],
    ['a plus sign', '+1'],
    ['a raw control character in a string', '"a\u0001b"'],
    ['a bad escape', '"\\x41"'],
    ['a short unicode escape', '"\\u12"'],
    ['an unterminated string', '"abc'],
    ['an unclosed object', '{"a":1'],
    ['a mismatched close', '[1}'],
    ['a misspelled literal', 'tru'],
    ['a capitalised literal', 'True'],
    ['a byte-order mark', '\ufeff{}'],
    ['a non-breaking space', '\u00a0{}'],
  ])('refuses %s as syntax', (_, text) => {
    expect(parses(text)).toBe(false);
    expect(checkStrictJson(text)).toBe('syntax');
  });

  it('agrees with JSON.parse on any JSON value, pretty-printed or not', () => {
    fc.assert(
      fc.property(anyJson, (value) => {
        for (const text of [JSON.stringify(value), JSON.stringify(value, null, 2)]) {
          expect(checkStrictJson(text, UNBOUNDED)).not.toBe('syntax');
        }
      }),
    );
  });

  it('agrees with JSON.parse on mutated JSON and JSON-like noise, and never throws', () => {
    fc.assert(
      fc.property(fc.oneof(mutatedJson, jsonish, fc.string({ unit: 'binary' })), (text) => {
        expect(checkStrictJson(text, UNBOUNDED) === 'syntax').toBe(!parses(text));
      }),
      { numRuns: 3000 },
    );
  });
});

describe('the scanner gives one verdict whatever the chunking', () => {
  it('for JSON values, mutated JSON and noise cut anywhere', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          anyJson.map((v) => JSON.stringify(v)),
          mutatedJson,
          jsonish,
        ),
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.integer({ min: 1, max: 6 }),
        (text, cuts, maxDepth) => {
          const at = cuts.map((c) => c % (text.length + 1));
          expect(chunked(text, at, maxDepth)).toBe(checkStrictJson(text, { maxDepth }));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('when every character is its own chunk (escapes, numbers and literals split)', () => {
    for (const text of [
      '{"a\\u0041b":-12.5e+3,"x":[true,false,null],"\\ud83d\\ude00":"\\n"}',
      '{"a":1,"\\u0061":2}',
      '{"Method":1,"method":2}',
      `{"n":1.${'0'.repeat(60)}1}`,
      '{"a":9007199254740993}',
    ]) {
      const every = Array.from({ length: text.length }, (_, i) => i);
      expect(chunked(text, every), text).toBe(checkStrictJson(text));
    }
  });
});

describe('nesting depth', () => {
  const nested = (depth: number, open = '[', close = ']') => open.repeat(depth) + close.repeat(depth);
  const nestedObjects = (depth: number) => `${'{"a":'.repeat(depth - 1)}{}${'}'.repeat(depth - 1)}`;

  it('accepts nesting up to maxDepth and refuses one level more', () => {
    expect(checkStrictJson(nested(64), { maxDepth: 64 })).toBeUndefined();
    expect(checkStrictJson(nested(65), { maxDepth: 64 })).toBe('too_deep');
    expect(checkStrictJson(nestedObjects(64), { maxDepth: 64 })).toBeUndefined();
    expect(checkStrictJson(nestedObjects(65), { maxDepth: 64 })).toBe('too_deep');
  });

  it('counts arrays and objects together, and ignores brackets inside strings', () => {
    expect(checkStrictJson('[{"a":[{}]}]', { maxDepth: 4 })).toBeUndefined();
    expect(checkStrictJson('[{"a":[{"b":[]}]}]', { maxDepth: 4 })).toBe('too_deep');
    expect(checkStrictJson(`{"a":"${'['.repeat(1000)}"}`, { maxDepth: 2 })).toBeUndefined();
  });

  it('refuses 5000- and 100000-deep texts quickly, without recursion, valid or not', () => {
    for (const depth of [5000, 100_000]) {
      const started = performance.now();
      expect(checkStrictJson(nested(depth), { maxDepth: 64 })).toBe('too_deep');
      expect(checkStrictJson('['.repeat(depth), { maxDepth: 64 })).toBe('too_deep');
      expect(checkStrictJson(nestedObjects(depth), { maxDepth: 64 })).toBe('too_deep');
      expect(performance.now() - started).toBeLessThan(1000);
    }
  });

  it('names the first fatal problem in text order: a syntax error before the depth is exceeded wins', () => {
    expect(checkStrictJson(`[}${'['.repeat(100)}`, { maxDepth: 64 })).toBe('syntax');
    expect(checkStrictJson(`${'['.repeat(100)}}`, { maxDepth: 64 })).toBe('too_deep');
  });

  it('scans any depth without a limit set, in linear time', () => {
    expect(checkStrictJson(nested(200_000))).toBeUndefined();
  });
});

describe('numbers', () => {
  it(`refuses a number token longer than ${MAX_NUMBER_LENGTH} characters, however it is spelled`, () => {
    const longest = `1.${'0'.repeat(MAX_NUMBER_LENGTH - 2)}`;
    expect(longest).toHaveLength(MAX_NUMBER_LENGTH);
    expect(checkStrictJson(`{"n":${longest}}`)).toBeUndefined();
    expect(checkStrictJson(`{"n":${longest}0}`)).toBe('unsafe_number');
    expect(checkStrictJson(`{"n":-0.${'0'.repeat(MAX_NUMBER_LENGTH)}}`)).toBe('unsafe_number');
  });

  it('accepts the longest shortest spellings of doubles JavaScript writes', () => {
    // Written as text: the spellings JavaScript and Go produce for doubles with 17 significant digits.
    for (const token of [
      '-2.2250738585072014e-308',
      '-1.7976931348623157e+308',
      '-1.2345678901234567e-7',
      '1.2345678901234567e+21',
      '-0.0000012345678901234567',
    ]) {
      const value = Number(token);
      expect(JSON.stringify(value).length).toBeLessThanOrEqual(26);
      expect(checkStrictJson(`[${JSON.stringify(value)}]`)).toBeUndefined();
    }
  });

  it('checks a 100 000-digit decimal in linear time (a quadratic regex took 7 s)', () => {
    const started = performance.now();
    for (const digits of [50_000, 100_000]) {
      const text = `{"n":1.${'0'.repeat(digits)}1}`;
      expect(checkStrictJson(text)).toBe('unsafe_number');
      expect(checkStrictJson(`{"n":${'9'.repeat(digits)}}`)).toBe('unsafe_number');
    }
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('numberSurvives runs in linear time on long tokens too', () => {
    const started = performance.now();
    expect(numberSurvives(`1.${'0'.repeat(100_000)}1`)).toBe(false);
    expect(numberSurvives(`1.${'0'.repeat(100_000)}`)).toBe(true);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

/** The reference: value and spelling compared as decimals (sign, digits, exponent), the slow way. */
function survivesByReference(token: string): boolean {
  const value = Number(token);
  if (!Number.isFinite(value)) return false;
  if (!/[.eE]/.test(token)) return Number.isSafeInteger(value) || value === 0;
  const canonical = (t: string) => {
    const [, sign = '', int = '', frac = '', exp = '0'] =
      /^(-?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(t) ?? [];
    const digits = (int + frac).replace(/^0+/, '');
    if (digits === '') return '0';
    const trimmed = digits.replace(/0+$/, '');
    return `${sign}${trimmed}e${Number(exp) - frac.length + digits.length - trimmed.length}`;
  };
  return canonical(token) === canonical(String(value));
}

describe('numberSurvives agrees with the reference on any JSON number token', () => {
  const digits = (min: number, max: number) =>
    fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });
  const token = fc
    .tuple(
      fc.boolean(),
      fc.oneof(
        fc.constant('0'),
        fc.tuple(fc.constantFrom(...'123456789'), digits(0, 22)).map(([a, b]) => a + b),
      ),
      fc.option(digits(1, 22)),
      fc.option(
        fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), fc.integer({ min: 0, max: 400 })),
      ),
    )
    .map(
      ([negative, int, frac, exp]) =>
        `${negative ? '-' : ''}${int}${frac === null ? '' : `.${frac}`}${exp === null ? '' : `${exp[0]}${exp[1]}${exp[2]}`}`,
    );

  it('for generated tokens of every shape, short and long, tiny and huge', () => {
    fc.assert(
      fc.property(token, (t) => {
        expect(numberSurvives(t)).toBe(survivesByReference(t));
      }),
      { numRuns: 20_000 },
    );
  });

  it('for the spelling JavaScript gives any double, and that spelling padded', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (d) => {
        const t = JSON.stringify(d);
        expect(numberSurvives(t)).toBe(survivesByReference(t));
        const padded = t.includes('e') || t.includes('.') ? t.replace(/(e|$)/, '000$1') : `${t}.000`;
        expect(numberSurvives(padded)).toBe(survivesByReference(padded));
      }),
    );
  });
});

describe('keys equal after case folding', () => {
  it.each([
    ['Method beside method', '{"method":"tools/call","Method":"admin"}'],
    ['NAME beside name in params', '{"params":{"name":"echo","NAME":"admin_reset"}}'],
    ['paramſ (long s) beside params', '{"params":{},"param\\u017f":{}}'],
    ['the Kelvin sign beside k', '{"key":1,"\\u212Aey":2}'],
    [
      'two spellings inside arguments, deep down',
      '{"params":{"arguments":{"a":[{"b":{"path":1,"PATH":2}}]}}}',
    ],
    ['final and medial sigma', '{"σ":1,"ς":2}'],
    ['two different unpaired surrogates (both U+FFFD upstream)', '{"\\ud800":1,"\\udbff":2}'],
  ])('refuses %s as folded_key', (_, text) => {
    expect(checkStrictJson(text)).toBe('folded_key');
  });

  it('accepts case variants in different objects, and values that fold alike', () => {
    expect(checkStrictJson('[{"name":1},{"NAME":2}]')).toBeUndefined();
    expect(checkStrictJson('{"a":{"Name":1},"name":2}')).toBeUndefined();
    expect(checkStrictJson('{"a":"NAME","b":"name"}')).toBeUndefined();
  });

  it('names a duplicate before an unsafe number before a folded key, wherever they stand', () => {
    const verdicts: Record<string, StrictJsonProblem | undefined> = {
      '{"A":1,"a":1e400,"b":1,"b":2}': 'duplicate_key',
      '{"A":1,"a":1e400}': 'unsafe_number',
      '{"A":1,"a":2}': 'folded_key',
    };
    for (const [text, verdict] of Object.entries(verdicts)) expect(checkStrictJson(text)).toBe(verdict);
  });
});
