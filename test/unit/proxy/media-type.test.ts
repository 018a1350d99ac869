import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bodyKind, isEventStream, parseMediaType } from '../../../src/proxy/media-type.js';
import { growthRatio } from '../../support/linear.js';

describe('parseMediaType (RFC 9110 §8.3.1)', () => {
  it('lower-cases type and subtype and parameter names, keeping values', () => {
    const media = parseMediaType('Text/Event-Stream; Charset=UTF-8');
    expect(media?.essence).toBe('text/event-stream');
    expect([...(media?.parameters ?? [])]).toEqual([['charset', 'UTF-8']]);
  });

  it.each([
    ['application/json', 'application/json', []],
    ['application/json;charset=utf-8', 'application/json', [['charset', 'utf-8']]],
    [
      '  application/json \t;  charset=utf-8 ; q=1  ',
      'application/json',
      [
        ['charset', 'utf-8'],
        ['q', '1'],
      ],
    ],
    ['application/json; charset="utf-8"', 'application/json', [['charset', 'utf-8']]],
    ['text/plain; x="a \\"b\\" c;d"', 'text/plain', [['x', 'a "b" c;d']]],
    ['text/plain;;x=1;', 'text/plain', [['x', '1']]],
  ] as const)('parses %j', (value, essence, parameters) => {
    const media = parseMediaType(value);
    expect(media?.essence).toBe(essence);
    expect([...(media?.parameters ?? [])]).toEqual(parameters);
  });

  it.each([
    '',
    'application',
    'application/',
    '/json',
    'application/json extra',
    'application /json',
    'application/json; charset',
    'application/json; charset=',
    'application/json; charset="utf-8',
    'application/json; charset=utf-8 latin1',
    'application/json; charset=utf-8; charset=latin1',
    'application/json, text/event-stream',
    'application/jsön',
    'application/json; x="\u0001"',
  ])('refuses %j', (value) => {
    expect(parseMediaType(value)).toBeUndefined();
  });

  it('refuses a repeated header and an absent one', () => {
    expect(parseMediaType(['application/json', 'text/event-stream'])).toBeUndefined();
    expect(parseMediaType(undefined)).toBeUndefined();
  });

  it('never throws, whatever the value', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary' }), (value) => void parseMediaType(value)));
  });

  it('is linear on long hostile values', () => {
    const hostile = (n: number) => [
      `a/b${'; x="'.repeat(n)}`,
      `a/b; x="${'\\"'.repeat(2 * n)}`,
      `a/b${' '.repeat(2 * n)}x`,
      `a/b${';'.repeat(2 * n)}`,
    ];
    // 10× the input: about 10× the time when linear, 100× when quadratic.
    const ratio = growthRatio(
      hostile,
      (values) => {
        for (const value of values) parseMediaType(value);
      },
      20_000,
    );
    expect(ratio).toBeLessThan(40);
  });
});

describe('bodyKind', () => {
  it.each([
    ['application/json', 'json'],
    ['Application/JSON; charset=UTF-8', 'json'],
    ['text/event-stream', 'sse'],
    ['Text/Event-Stream', 'sse'],
    ['text/event-stream;charset=utf-8', 'sse'],
    ['text/event-stream; charset=latin1', 'other'],
    ['application/json; charset=utf-16', 'other'],
    ['application/json-seq', 'other'],
    ['application/problem+json', 'other'],
    ['text/html', 'other'],
    ['application/json, text/html', 'other'],
  ] as const)('%j is %s', (value, kind) => {
    expect(bodyKind(value)).toBe(kind);
  });

  it('calls an absent or repeated Content-Type other', () => {
    expect(bodyKind(undefined)).toBe('other');
    expect(bodyKind(['application/json', 'application/json'])).toBe('other');
  });
});

describe('isEventStream (stream accounting)', () => {
  it.each([
    ['text/event-stream', true],
    ['Text/Event-Stream; charset=latin1', true],
    [' text/event-stream, junk', true],
    ['application/json', false],
    ['text/event', false],
  ] as const)('%j → %s', (value, expected) => {
    expect(isEventStream(value)).toBe(expected);
  });

  it('counts a repeated header that names a stream, and no header as none', () => {
    expect(isEventStream(['application/json', 'text/event-stream'])).toBe(true);
    expect(isEventStream(undefined)).toBe(false);
  });
});
