import * as crypto from 'node:crypto';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { createApiKeyVerifier, newApiKey } from '../../../src/auth/api-key.js';
import type { Identity } from '../../../src/auth/identity.js';
import type { Config } from '../../../src/config/schema.js';

// A spy that calls through: the test observes the constant-time confirmation, it does not replace it.
vi.mock('node:crypto', async (importOriginal) => {
  const original = await importOriginal<typeof import('node:crypto')>();
  return { ...original, timingSafeEqual: vi.fn(original.timingSafeEqual) };
});

type ApiKeyEntry = Config['identities']['apiKeys'][number];

const sha256 = (key: string) => `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;

function entry(id: string, key: string, extra: Partial<ApiKeyEntry> = {}): ApiKeyEntry {
  return { id, hash: sha256(key), scopes: [], ...extra };
}

function identityOf(result: ReturnType<ReturnType<typeof createApiKeyVerifier>>): Identity {
  if ('failure' in result) throw new Error(`expected an identity, got ${result.failure}`);
  return result;
}

afterEach(() => {
  vi.mocked(crypto.timingSafeEqual).mockClear();
});

describe('newApiKey', () => {
  it('makes a 256-bit base64url key and the sha256: line that accepts it', () => {
    const { key, hash } = newApiKey();
    expect(key).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(Buffer.from(key, 'base64url')).toHaveLength(32);
    expect(hash).toBe(sha256(key));
    expect(hash).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it('puts the prefix in front of the key and inside what is hashed', () => {
    const { key, hash } = newApiKey('pk_live_');
    expect(key.startsWith('pk_live_')).toBe(true);
    expect(hash).toBe(sha256(key));
    expect(identityOf(createApiKeyVerifier([{ id: 'p', hash, scopes: [] }])(key)).keyId).toBe('p');
  });

  it('never makes the same key twice, nor one shaped like a JWT', () => {
    const keys = new Set(Array.from({ length: 200 }, () => newApiKey().key));
    expect(keys.size).toBe(200);
    for (const key of keys) expect(key).not.toContain('.');
  });
});

describe('createApiKeyVerifier', () => {
  const a = newApiKey();
  const b = newApiKey();

  it('finds the identity of a configured key', () => {
    const verify = createApiKeyVerifier([entry('ci-bot', a.key, { scopes: ['files:read', 'files:write'] })]);
    const identity = identityOf(verify(a.key));
    expect(identity).toMatchObject({
      key: 'apiKey:ci-bot',
      subject: 'ci-bot',
      keyId: 'ci-bot',
      methods: ['apiKey'],
    });
    expect([...identity.scopes].sort()).toEqual(['files:read', 'files:write']);
    expect(Object.isFrozen(identity)).toBe(true);
    // Built once at load: every request of a key shares one frozen identity.
    expect(verify(a.key)).toBe(identity);
  });

  it('answers unknown for a key that is not configured, or for nothing configured', () => {
    expect(createApiKeyVerifier([entry('ci-bot', a.key)])(b.key)).toEqual({ failure: 'unknown' });
    expect(createApiKeyVerifier([])(a.key)).toEqual({ failure: 'unknown' });
  });

  it('answers unknown for near misses of a configured key', () => {
    const verify = createApiKeyVerifier([entry('ci-bot', a.key)]);
    for (const near of [
      '',
      a.key.slice(0, -1),
      `${a.key}x`,
      ` ${a.key}`,
      `${a.key} `,
      a.key.toUpperCase(),
      a.hash,
      a.hash.slice('sha256:'.length),
      `Bearer ${a.key}`,
    ]) {
      expect(verify(near), JSON.stringify(near)).toEqual({ failure: 'unknown' });
    }
  });

  it('answers unknown for any other string (property)', () => {
    const verify = createApiKeyVerifier([entry('ci-bot', a.key), entry('other', b.key)]);
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 80 }), (presented) => {
        fc.pre(presented !== a.key && presented !== b.key);
        const result = verify(presented);
        return 'failure' in result && result.failure === 'unknown';
      }),
      { numRuns: 300 },
    );
  });

  it('hashes the presented key as UTF-8', () => {
    const key = 'clé-🔑-ключ';
    const verify = createApiKeyVerifier([entry('unicode', key)]);
    expect(identityOf(verify(key)).keyId).toBe('unicode');
    expect(verify(key.normalize('NFD'))).toEqual({ failure: 'unknown' });
  });

  it('accepts both keys of a rotation (two entries sharing an id), each with its own scopes', () => {
    const verify = createApiKeyVerifier([
      entry('rotating', a.key, { scopes: ['old'] }),
      entry('rotating', b.key, { scopes: ['new'] }),
    ]);
    const old = identityOf(verify(a.key));
    const next = identityOf(verify(b.key));
    expect(old.key).toBe('apiKey:rotating');
    expect(next.key).toBe('apiKey:rotating');
    expect([...old.scopes]).toEqual(['old']);
    expect([...next.scopes]).toEqual(['new']);
  });

  describe('constant-time confirmation', () => {
    const timingSafeEqual = vi.mocked(crypto.timingSafeEqual);

    it('confirms a found key by comparing the two 32-byte digests in constant time', () => {
      const verify = createApiKeyVerifier([entry('ci-bot', a.key)]);
      timingSafeEqual.mockClear();
      identityOf(verify(a.key));
      expect(timingSafeEqual).toHaveBeenCalledTimes(1);
      const [configured, presented] = timingSafeEqual.mock.calls[0] as [Buffer, Buffer];
      const expected = createHash('sha256').update(a.key).digest();
      // Digests, never the keys: equal lengths, so the comparison cannot exit early on length.
      expect(Buffer.from(configured)).toEqual(expected);
      expect(Buffer.from(presented)).toEqual(expected);
      expect(configured).toHaveLength(32);
    });

    it('refuses a found key whose constant-time confirmation fails', () => {
      const verify = createApiKeyVerifier([entry('ci-bot', a.key)]);
      timingSafeEqual.mockReturnValueOnce(false);
      expect(verify(a.key)).toEqual({ failure: 'unknown' });
      expect(identityOf(verify(a.key)).keyId).toBe('ci-bot');
    });

    it('confirms an expired key before saying it expired', () => {
      const verify = createApiKeyVerifier([entry('old', a.key, { expires: '2020-01-01' })]);
      timingSafeEqual.mockClear();
      expect(verify(a.key)).toEqual({ failure: 'expired' });
      expect(timingSafeEqual).toHaveBeenCalledTimes(1);
    });
  });

  describe('expiry', () => {
    const midnight = Date.parse('2030-01-01T00:00:00Z');

    it('treats a bare date as 00:00Z of that day: valid until the millisecond before', () => {
      const verify = createApiKeyVerifier([entry('k', a.key, { expires: '2030-01-01' })]);
      expect(identityOf(verify(a.key, midnight - 1)).keyId).toBe('k');
      expect(verify(a.key, midnight)).toEqual({ failure: 'expired' });
      expect(verify(a.key, midnight + 1)).toEqual({ failure: 'expired' });
    });

    it.each([
      '2030-01-01T00:00:00Z',
      '2030-01-01T00:00:00z',
      '2030-01-01T00:00:00.000Z',
      '2030-01-01T02:00:00+02:00',
      '2029-12-31T19:00:00-05:00',
      '2030-01-01T00:00Z',
    ])('expires at the instant an RFC 3339 time names (%s)', (expires) => {
      const verify = createApiKeyVerifier([entry('k', a.key, { expires })]);
      expect(identityOf(verify(a.key, midnight - 1)).keyId).toBe('k');
      expect(verify(a.key, midnight)).toEqual({ failure: 'expired' });
    });

    it('never expires a key without expires', () => {
      const verify = createApiKeyVerifier([entry('k', a.key)]);
      expect(identityOf(verify(a.key, 8.64e15)).keyId).toBe('k');
    });

    it('uses the current time when none is given', () => {
      const verify = createApiKeyVerifier([
        entry('past', a.key, { expires: '2000-01-01' }),
        entry('future', b.key, { expires: '2999-01-01' }),
      ]);
      expect(verify(a.key)).toEqual({ failure: 'expired' });
      expect(identityOf(verify(b.key)).keyId).toBe('future');
    });

    it('expires one key of a rotation without touching the other', () => {
      const verify = createApiKeyVerifier([
        entry('rotating', a.key, { expires: '2030-01-01' }),
        entry('rotating', b.key),
      ]);
      expect(verify(a.key, midnight)).toEqual({ failure: 'expired' });
      expect(identityOf(verify(b.key, midnight)).key).toBe('apiKey:rotating');
    });

    it('says unknown, not expired, for an unknown key at any time', () => {
      const verify = createApiKeyVerifier([entry('k', a.key, { expires: '2000-01-01' })]);
      expect(verify(b.key, midnight)).toEqual({ failure: 'unknown' });
    });
  });
});
