import { createHash, hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Config } from '../config/schema.js';
import type { ApiKeyFailure, Failed } from './failures.js';
import type { Identity } from './identity.js';

type ApiKeyEntry = Config['identities']['apiKeys'][number];

interface CompiledKey {
  readonly digest: Buffer;
  readonly identity: Identity;
  /** Epoch ms after which the key is refused; Infinity when it never expires. */
  readonly expiresAt: number;
}

export type ApiKeyResult = Identity | Failed<ApiKeyFailure>;

const UNKNOWN: Failed<'unknown'> = Object.freeze({ failure: 'unknown' });
const EXPIRED: Failed<'expired'> = Object.freeze({ failure: 'expired' });

/**
 * API keys are configured only as SHA-256 hashes. A presented key is hashed, found by a map
 * lookup on that hash, and confirmed with a constant-time comparison of the digests: the lookup
 * itself reveals nothing about any configured key, since an attacker controls only the input of
 * the hash, never its output.
 */
export function createApiKeyVerifier(
  entries: readonly ApiKeyEntry[],
): (presented: string, now?: number) => ApiKeyResult {
  const byHash = new Map<string, CompiledKey>();
  for (const entry of entries) {
    const hex = entry.hash.slice('sha256:'.length);
    byHash.set(hex, {
      digest: Buffer.from(hex, 'hex'),
      expiresAt: entry.expires === undefined ? Number.POSITIVE_INFINITY : expiryOf(entry.expires),
      identity: Object.freeze({
        key: `apiKey:${entry.id}`,
        subject: entry.id,
        methods: Object.freeze(['apiKey'] as const),
        scopes: new Set(entry.scopes),
        keyId: entry.id,
        ...(entry.expires === undefined ? {} : { expiresAt: expiryOf(entry.expires) }),
      }),
    });
  }
  return (presented, now = Date.now()) => {
    // One-shot: no Hash object per request.
    const digest = hash('sha256', presented, 'buffer');
    const found = byHash.get(digest.toString('hex'));
    if (found === undefined || !timingSafeEqual(found.digest, digest)) return UNKNOWN;
    if (now >= found.expiresAt) return EXPIRED;
    return found.identity;
  };
}

/** RFC 3339 time, or a bare date meaning 00:00Z of that day (DESIGN.md). */
function expiryOf(expires: string): number {
  return Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(expires) ? `${expires}T00:00:00Z` : expires);
}

/** A new 256-bit key (base64url) with an optional prefix, and the policy line that accepts it. */
export function newApiKey(prefix = ''): { key: string; hash: string } {
  const key = `${prefix}${randomBytes(32).toString('base64url')}`;
  return { key, hash: `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}` };
}
