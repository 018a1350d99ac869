import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { arrayIndex, createJsonBuilder } from '../../../src/jsonrpc/json-builder.js';
import { createStrictJsonScanner, type StrictJsonProblem } from '../../../src/jsonrpc/strict-json.js';

/** Scans and builds `text` written in pieces cut at `cuts` (indexes, any order). */
function build(text: string, cuts: readonly number[] = [], maxDepth = 64) {
  const builder = createJsonBuilder();
  const scanner = createStrictJsonScanner({ maxDepth, builder });
  let at = 0;
  for (const cut of [...cuts].map((c) => c % (text.length + 1)).sort((a, b) => a - b)) {
    scanner.write(text.slice(at, cut));
    at = cut;
  }
  scanner.write(text.slice(at));
  const problem: StrictJsonProblem | undefined = scanner.end();
  return { problem, value: builder.value, forward: builder.forward };
}

/** What the native pair gives: the value, and its text (which also shows the key order). */
function expectNative(text: string, cuts: readonly number[] = []): void {
  const { problem, value, forward } = build(text, cuts);
  expect(problem === 'syntax' || problem === 'too_deep').toBe(false);
  const native: unknown = JSON.parse(text);
  // Strict deep equality compares prototypes too: a `__proto__` key must stay an own property.
  expect(isDeepStrictEqual(value, native)).toBe(true);
  expect(JSON.stringify(value)).toBe(JSON.stringify(native));
  if (problem === undefined) expect(forward).toBe(JSON.stringify(native));
}

// Text generators: any JSON text, spelled in every way the grammar allows (escapes of any
// character, whitespace, number spellings), with keys V8 orders specially.
const ws = fc.constantFrom('', '', ' ', '\n', '\t ', '\r\n');

/** One character of a string's content as JSON may spell it. */
const charSpelling = fc.oneof(
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }).map((c) => JSON.stringify(c).slice(1, -1)),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 }).map((c) => JSON.stringify(c).slice(1, -1)),
  fc
    .integer({ min: 0, max: 0xffff })
    .map((u) => `\\u${u.toString(16).padStart(4, '0')}`)
    .chain((e) => fc.constantFrom(e, e.toUpperCase().replace('\\U', '\\u'))),
  fc.constantFrom(
    '\\ud83d\\ude00',
    '\\ud800',
    '\\udc00x',
    '\\/',
    '\\b',
    '\\f',
    '\\"',
    '\\\\',
    '\u2028',
    '😀',
  ),
);
const stringText = fc.array(charSpelling, { maxLength: 8 }).map((cs) => `"${cs.join('')}"`);

const keyText = fc.oneof(
  stringText,
  fc
    .constantFrom(
      '0',
      '1',
      '2',
      '10',
      '9',
      '007',
      '-1',
      '1.5',
      '4294967294',
      '4294967295',
      '4294967296',
      '99999999999',
      '__proto__',
      'constructor',
      'toString',
      'a',
      'b',
      'A',
      '',
    )
    .map((k) => JSON.stringify(k)),
  fc.constantFrom('"\\u0030"', '"\\u005f_proto__"', '"1\\u0030"'),
);

const numberText = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }).map(String),
  fc.integer().map(String),
  fc.constantFrom(
    '-0',
    '0',
    '-0.0',
    '1E2',
    '1e+2',
    '1.50e-3',
    '0.1',
    '1e-7',
    '123456789012345678',
    '1e400',
    '-1e-400',
  ),
  fc
    .tuple(
      fc.boolean(),
      fc.stringMatching(/^(0|[1-9][0-9]{0,20})$/),
      fc.option(fc.stringMatching(/^[0-9]{1,20}$/)),
      fc.option(fc.tuple(fc.constantFrom('e', 'E', 'e+', 'e-', 'E-'), fc.stringMatching(/^[0-9]{1,3}$/))),
    )
    .map(
      ([minus, int, frac, exp]) =>
        `${minus ? '-' : ''}${int}${frac === null ? '' : `.${frac}`}${exp === null ? '' : exp.join('')}`,
    ),
);

const { text: jsonText } = fc.letrec<{ text: string }>((tie) => ({
  text: fc.oneof(
    { depthSize: 'small' },
    stringText,
    numberText,
    fc.constantFrom('true', 'false', 'null'),
    fc
      .array(fc.tuple(ws, tie('text'), ws), { maxLength: 5 })
      .map((items) => `[${items.map(([a, v, b]) => a + v + b).join(',')}]`),
    fc
      .uniqueArray(fc.tuple(keyText, tie('text'), ws), { maxLength: 6, selector: ([k]) => JSON.parse(k) })
      .map((members) => `{${members.map(([k, v, w]) => `${w}${k}${w}:${w}${v}`).join(',')}}`),
  ),
}));

describe('the builder gives what JSON.parse and JSON.stringify give', () => {
  it('for any JSON text the scanner accepts, under any chunking', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          jsonText,
          fc.jsonValue({ maxDepth: 5 }).map((v) => JSON.stringify(v)),
          fc.jsonValue({ maxDepth: 4 }).map((v) => JSON.stringify(v, null, 2)),
        ),
        fc.array(fc.nat(), { maxLength: 8 }),
        (text, cuts) => {
          const { problem } = build(text, cuts);
          if (problem === 'syntax' || problem === 'too_deep') return; // nothing is built then
          expectNative(text, cuts);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('cut at every position of texts with the tricky cases', () => {
    const texts = [
      '{"b":1,"10":2,"a":[3,{"2":4,"1":5,"x":6}],"0":7,"__proto__":{"9":8}}',
      '"\\ud83d\\ude00 \\ud800 \\udc00 😀 \\u0000 \u2028 \\/"',
      '[-0, 1E2, 1.50e-3, -0.0, 1e-7, 0.1, 123456789]',
      '{"4294967294":1,"4294967295":2,"007":3,"7":4}',
      '{"a":"\\u005c\\"","\\u0031":true}',
    ];
    for (const text of texts) {
      for (let cut = 0; cut <= text.length; cut++) expectNative(text, [cut]);
      expectNative(
        text,
        Array.from({ length: text.length }, (_, i) => i),
      ); // one character at a time
    }
  });
});

describe('the builder: cases JSON.parse and JSON.stringify treat specially', () => {
  it('keeps __proto__ an own data property, never the prototype', () => {
    const { value, forward } = build('{"__proto__":{"polluted":true},"a":1}', [3, 15]);
    expect(Object.getPrototypeOf(value)).toBe(Object.prototype);
    expect(Object.hasOwn(value as object, '__proto__')).toBe(true);
    expect((value as { polluted?: unknown }).polluted).toBeUndefined();
    expect(forward).toBe('{"__proto__":{"polluted":true},"a":1}');
  });

  it('writes array-index keys first, ascending, as V8 orders them', () => {
    const text = '{"b":1,"10":2,"a":3,"2":4,"4294967295":5,"4294967294":6,"01":7}';
    const { value, forward } = build(text, [20]);
    expect(Object.keys(value as object)).toEqual(Object.keys(JSON.parse(text)));
    expect(forward).toBe('{"2":4,"10":2,"4294967294":6,"b":1,"a":3,"4294967295":5,"01":7}');
    expect(forward).toBe(JSON.stringify(JSON.parse(text)));
  });

  it('spells numbers as String(Number(token)), -0 as 0', () => {
    expect(build('[-0,1E2,1.50e-3,-0.0,1e-7,100000000000000000000,1e21]').forward).toBe(
      '[0,100,0.0015,0,1e-7,100000000000000000000,1e+21]',
    );
    expect(Object.is((build('[-0]').value as number[])[0], -0)).toBe(true);
  });

  it('writes an overflowing number as null, as JSON.stringify does (and the scanner refuses it)', () => {
    const { problem, value, forward } = build('[1e400]');
    expect(problem).toBe('unsafe_number');
    expect(value).toEqual([Number.POSITIVE_INFINITY]);
    expect(forward).toBe('[null]');
  });

  it('keeps the whole of a number longer than the cap: its value may be an id a refusal answers', () => {
    const token = `1.${'0'.repeat(60)}`;
    const { problem, value } = build(`{"id":${token}}`, [10, 30]);
    expect(problem).toBe('unsafe_number');
    expect(value).toEqual({ id: 1 });
  });

  it('escapes lone surrogates as JSON.stringify does, and pairs split across chunks stay one character', () => {
    const text = '["\\ud800","\\udc00","\\ud83d\\ude00","😀"]';
    for (let cut = 0; cut <= text.length; cut++) {
      const { forward } = build(text, [cut]);
      expect(forward).toBe('["\\ud800","\\udc00","😀","😀"]');
    }
    // A raw pair cut between its halves (only a test can cut a string there; the decoder never does).
    expect(build('"a😀b"', [2]).forward).toBe('"a😀b"');
  });

  it('builds a long string in pieces: value and text as native', () => {
    const text = `{"content":"${'x'.repeat(5000)}\\n${'é'.repeat(5000)}\\ud83d","k":"\\ude00"}`;
    expectNative(text, [100, 2000, 5003, 5004, 9000]);
  });

  it('parses a long array of numbers and records across chunk boundaries', () => {
    const rows = Array.from({ length: 500 }, (_, i) => `{"id":${i},"v":${i * 1.5},"t":["a"],"n":null}`);
    const text = `{"rows":[${rows.join(',')}],"10":0}`;
    expectNative(
      text,
      Array.from({ length: 40 }, (_, i) => i * 997),
    );
  });
});

describe('arrayIndex', () => {
  it.each([
    ['0', 0],
    ['7', 7],
    ['4294967294', 4294967294],
    ['4294967295', -1],
    ['01', -1],
    ['-1', -1],
    ['1.0', -1],
    ['', -1],
    ['12345678901', -1],
    ['1a', -1],
  ])('%j → %d', (key, expected) => {
    expect(arrayIndex(key)).toBe(expected);
  });
});
