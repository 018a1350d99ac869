import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { exceedsDepth } from '../../../src/jsonrpc/json-depth.js';

/** The nesting of a parsed value, computed the obvious (recursive) way: the oracle. */
function depthOf(value: unknown): number {
  if (Array.isArray(value)) return 1 + value.reduce((m: number, v) => Math.max(m, depthOf(v)), 0);
  if (typeof value === 'object' && value !== null)
    return 1 + Object.values(value).reduce((m: number, v) => Math.max(m, depthOf(v)), 0);
  return 0;
}

describe('exceedsDepth', () => {
  it('counts arrays and objects alike, one level each', () => {
    expect(exceedsDepth('[]', 0)).toBe(true);
    expect(exceedsDepth('[]', 1)).toBe(false);
    expect(exceedsDepth('{"a":[{"b":1}]}', 3)).toBe(false);
    expect(exceedsDepth('{"a":[{"b":1}]}', 2)).toBe(true);
    expect(exceedsDepth('42', 0)).toBe(false);
  });

  it('never counts brackets inside strings, escaped quotes included', () => {
    expect(exceedsDepth('{"k":"[[[[{{{{"}', 1)).toBe(false);
    expect(exceedsDepth('["\\"[[[[", "\\\\", "[["]', 1)).toBe(false);
    expect(exceedsDepth('["\\\\"]', 1)).toBe(false);
    expect(exceedsDepth('["\\\\\\"[["]', 1)).toBe(false);
    // After an escaped backslash the quote ends the string: what follows is structure.
    expect(exceedsDepth('["\\\\",[[]]]', 2)).toBe(true);
  });

  it('measures siblings, not the total number of containers', () => {
    expect(exceedsDepth(`[${'[],'.repeat(10_000)}[]]`, 2)).toBe(false);
  });

  it('agrees with a recursive measure of the parsed value', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 12 }), fc.nat({ max: 14 }), (value, max) => {
        const text = JSON.stringify(value);
        expect(exceedsDepth(text, max)).toBe(depthOf(value) > max);
      }),
      { numRuns: 500 },
    );
  });

  it('answers for a million-deep text without recursion, in linear time', () => {
    const deep = `${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}`;
    const started = performance.now();
    expect(exceedsDepth(deep, 64)).toBe(true);
    expect(exceedsDepth(deep, 1_000_000)).toBe(false);
    // Many short strings full of escapes: each backslash is found once, not once per string.
    const escapes = `[${'"\\\\\\"",'.repeat(200_000)}1]`;
    expect(exceedsDepth(escapes, 1)).toBe(false);
    expect(performance.now() - started).toBeLessThan(500);
  });
});
