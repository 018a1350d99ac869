import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  BATCH_VERSION,
  DEFAULT_VERSION,
  isModern,
  isVersionToken,
  LEGACY_VERSIONS,
} from '../../../src/jsonrpc/protocol-version.js';

describe('isModern', () => {
  it.each(['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25'])(
    'reads %s as a legacy (session) version',
    (version) => {
      expect(isModern(version)).toBe(false);
    },
  );

  it.each(['2026-07-28', 'v999.0.0', '2027-01-01'])(
    'reads %s as modern: an unknown version is left for the upstream to refuse',
    (version) => {
      expect(isModern(version)).toBe(true);
    },
  );

  it('takes a request without a version to speak a legacy version, the one batches exist in', () => {
    expect(LEGACY_VERSIONS.has(DEFAULT_VERSION)).toBe(true);
    expect(isModern(DEFAULT_VERSION)).toBe(false);
    expect(BATCH_VERSION).toBe('2025-03-26');
  });
});

describe('isVersionToken', () => {
  it.each(['2025-11-25', '2026-07-28', 'v999.0.0', "a!#$%&'*+-.^_`|~z", 'x'.repeat(32)])(
    'accepts %s as one version',
    (value) => {
      expect(isVersionToken(value)).toBe(true);
    },
  );

  it.each([
    ['empty', ''],
    ['longer than 32 characters', 'x'.repeat(33)],
    ['a list of versions', '2025-11-25, 2026-07-28'],
    ['two headers joined without a space', '2025-11-25,2026-07-28'],
    ['a space', '2025 11 25'],
    ['a quote', '"2025-11-25"'],
    ['a control character', '2025-11-25\t'],
    ['a non-ASCII letter', '2025-11-2５'],
    ['a separator', '2025/11/25'],
  ])('refuses %s', (_what, value) => {
    expect(isVersionToken(value)).toBe(false);
  });

  it('accepts exactly the RFC 9110 tchar strings of 1 to 32 characters', () => {
    const tchar = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}$/;
    fc.assert(
      fc.property(fc.string({ unit: 'binary-ascii', maxLength: 40 }), (value) => {
        expect(isVersionToken(value)).toBe(tchar.test(value));
      }),
      { numRuns: 2000 },
    );
  });
});
