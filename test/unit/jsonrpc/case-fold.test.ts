import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { foldCodePoint, foldKey } from '../../../src/jsonrpc/case-fold.js';

/**
 * Orbits of Go's `unicode.SimpleFold` (what `encoding/json` matches field names by), chosen for
 * the traps: members outside ASCII that fold into ASCII, three-member orbits, final sigma,
 * titlecase digraphs, symbols (Kelvin, Ångström, Ohm), characters whose full upper case is several
 * letters, and a supplementary-plane script. Every member of one orbit must fold alike. The
 * integration test against a real Go upstream checks every orbit Go reports.
 */
const ORBITS: readonly (readonly number[])[] = [
  [0x6b, 0x4b, 0x212a], // k K K(KELVIN SIGN)
  [0x73, 0x53, 0x17f], // s S ſ(LONG S)
  [0x3c3, 0x3a3, 0x3c2], // σ Σ ς
  [0xb5, 0x3bc, 0x39c], // µ(MICRO SIGN) μ Μ
  [0xe5, 0xc5, 0x212b], // å Å Å(ANGSTROM SIGN)
  [0x3b8, 0x398, 0x3d1, 0x3f4], // θ Θ ϑ ϴ
  [0x3c9, 0x3a9, 0x2126], // ω Ω Ω(OHM SIGN)
  [0x3b2, 0x392, 0x3d0], // β Β ϐ
  [0x3b9, 0x399, 0x345, 0x1fbe], // ι Ι ͅ ι
  [0x3c0, 0x3a0, 0x3d6], // π Π ϖ
  [0x3ba, 0x39a, 0x3f0], // κ Κ ϰ
  [0x3c1, 0x3a1, 0x3f1], // ρ Ρ ϱ
  [0x3b5, 0x395, 0x3f5], // ε Ε ϵ
  [0x1c4, 0x1c5, 0x1c6], // Ǆ ǅ ǆ
  [0x1c7, 0x1c8, 0x1c9], // Ǉ ǈ ǉ
  [0xdf, 0x1e9e], // ß ẞ (ß upper-cases to "SS": not simple)
  [0x1fb3, 0x1fbc], // ᾳ ᾼ (both upper-case to two letters in full)
  [0x1e61, 0x1e60, 0x1e9b], // ṡ Ṡ ẛ
  [0x13a0, 0xab70], // Cherokee Ꭰ ꭰ
  [0x10400, 0x10428], // Deseret 𐐀 𐐨 (outside the BMP)
  [0x1fd3, 0x390], // ΐ ΐ (simple folding in recent Unicode)
  [0xfb05, 0xfb06], // ﬅ ﬆ
];

const hex = (cp: number) => `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;

describe('foldCodePoint', () => {
  it.each(ORBITS.map((orbit) => [orbit.map(hex).join(' '), orbit] as const))(
    'folds every member of the orbit %s alike',
    (_, orbit) => {
      const folds = new Set(orbit.map(foldCodePoint));
      expect(folds.size).toBe(1);
    },
  );

  it('folds the two non-ASCII letters Go matches to ASCII names into them', () => {
    expect(String.fromCodePoint(foldCodePoint(0x17f))).toBe('s');
    expect(String.fromCodePoint(foldCodePoint(0x212a))).toBe('k');
  });

  it('keeps apart letters that are not case variants of each other', () => {
    for (const [a, b] of [
      [0x61, 0x62],
      [0xe9, 0x65], // é is not e
      [0x3c3, 0x3c4], // σ τ
      [0x130, 0x69], // İ has no simple folding
    ] as const) {
      expect(foldCodePoint(a), `${hex(a)} ${hex(b)}`).not.toBe(foldCodePoint(b));
    }
  });

  it('folds every unpaired surrogate to U+FFFD, as decoders upstream replace them', () => {
    expect(foldCodePoint(0xd800)).toBe(0xfffd);
    expect(foldCodePoint(0xdfff)).toBe(0xfffd);
    expect(foldKey('a\ud800')).toBe(foldKey('a\udbff'));
    expect(foldKey('a\ud800')).toBe(foldKey('a\ufffd'));
  });
});

describe('foldKey', () => {
  it('returns a lower-case ASCII key as it is (the hot path)', () => {
    const key = 'arguments';
    expect(foldKey(key)).toBe(key);
  });

  it.each([
    ['Method', 'method'],
    ['NAME', 'name'],
    ['param\u017f', 'params'],
    ['\u212Aey', 'key'],
    ['ARGUMENTſ', 'arguments'],
    ['Σίσυφος', 'σίσυφοσ'],
  ])('folds %s like %s', (a, b) => {
    expect(foldKey(a)).toBe(foldKey(b));
  });

  it('is idempotent and agrees with folding each code point', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (key) => {
        const once = foldKey(key);
        expect(foldKey(once)).toBe(once);
        const byCodePoint = Array.from(key, (c) =>
          String.fromCodePoint(foldCodePoint(c.codePointAt(0) as number)),
        ).join('');
        expect(once).toBe(byCodePoint);
      }),
    );
  });

  it('folds a key and its upper- and lower-cased spellings alike when each letter maps to one', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme-composite' }), (key) => {
        const upper = Array.from(key, (c) =>
          Array.from(c.toUpperCase()).length === 1 ? c.toUpperCase() : c,
        );
        const lower = Array.from(key, (c) =>
          Array.from(c.toLowerCase()).length === 1 ? c.toLowerCase() : c,
        );
        expect(foldKey(upper.join(''))).toBe(foldKey(key));
        expect(foldKey(lower.join(''))).toBe(foldKey(key));
      }),
    );
  });
});
