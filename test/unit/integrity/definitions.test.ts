import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { definitionHash, MAX_DEFINITION_BYTES, pinnedForm } from '../../../src/integrity/definitions.js';

const NONE = new Set<string>();

/** The same JSON value with every object's keys in another order. */
function shuffled(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((item, i) => shuffled(item, seed + i));
  if (typeof value !== 'object' || value === null) return value;
  const entries = Object.entries(value);
  const order = entries
    .map((_, i) => i)
    .sort((a, b) => ((a * 31 + seed) % 7) - ((b * 31 + seed) % 7) || b - a);
  return Object.fromEntries(order.map((i) => [entries[i]?.[0], shuffled(entries[i]?.[1], seed + i)]));
}

const json = fc.jsonValue({ maxDepth: 4 }).map((value) => JSON.parse(JSON.stringify(value)) as unknown);
const definition = fc.record({ name: fc.string(), description: fc.string(), inputSchema: json });

describe('definition hashes', () => {
  it('do not depend on key order', () => {
    fc.assert(
      fc.property(definition, fc.nat(), (item, seed) => {
        expect(definitionHash(shuffled(item, seed) as typeof item, NONE)).toBe(definitionHash(item, NONE));
      }),
    );
  });

  it('do not depend on how a number is spelled', () => {
    fc.assert(
      fc.property(fc.integer({ min: -1e6, max: 1e6 }), (n) => {
        const spellings = [`${n}`, `${n}.0`, `${n}.000`, `${n}e0`, `${n * 10}e-1`];
        const hashes = spellings.map((spelled) =>
          definitionHash(JSON.parse(`{"name":"t","inputSchema":{"maximum":${spelled}}}`), NONE),
        );
        expect(new Set(hashes).size).toBe(1);
      }),
    );
  });

  it('change with any change of content', () => {
    fc.assert(
      fc.property(definition, fc.string({ minLength: 1 }), (item, extra) => {
        const base = definitionHash(item, NONE);
        expect(definitionHash({ ...item, description: `${item.description}${extra}` }, NONE)).not.toBe(base);
        expect(definitionHash({ ...item, inputSchema: { wrapped: item.inputSchema } }, NONE)).not.toBe(base);
        expect(definitionHash({ ...item, title: extra }, NONE)).not.toBe(base);
      }),
    );
  });

  it('leave out only the volatile _meta keys', () => {
    const item = { name: 't', _meta: { 'ui/icon': 'a', 'vendor/rev': 1 } };
    const volatile = new Set(['vendor/rev']);
    expect(pinnedForm(item, volatile)).toEqual({ name: 't', _meta: { 'ui/icon': 'a' } });
    expect(definitionHash(item, volatile)).toBe(
      definitionHash({ name: 't', _meta: { 'ui/icon': 'a', 'vendor/rev': 2 } }, volatile),
    );
    expect(definitionHash(item, volatile)).not.toBe(
      definitionHash({ name: 't', _meta: { 'ui/icon': 'b', 'vendor/rev': 1 } }, volatile),
    );
    // _meta is hashed unless a key is listed: a change there is a change of the definition.
    expect(definitionHash(item, NONE)).not.toBe(definitionHash({ ...item, _meta: { 'ui/icon': 'a' } }, NONE));
    expect(pinnedForm({ name: 't', _meta: { 'vendor/rev': 1 } }, volatile)).toEqual({ name: 't' });
  });

  it('are the SHA-256 of RFC 8785 canonical JSON; none for what cannot be canonicalized or is too large', () => {
    // RFC 8785 §3.2.3: keys sorted by UTF-16 code units, numbers in ECMAScript form.
    const canonical = '{"a":"é","b":1e+21}';
    expect(definitionHash({ b: 1e21, a: 'é' }, NONE)).toBe(
      `sha256:${createHash('sha256').update(canonical).digest('hex')}`,
    );
    expect(definitionHash({ name: '\ud800' }, NONE)).toEqual({ unhashable: 'not_canonical' });
    expect(definitionHash({ name: 'x'.repeat(MAX_DEFINITION_BYTES) }, NONE)).toEqual({
      unhashable: 'too_large',
    });
  });
});
