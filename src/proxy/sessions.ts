import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { isTagMismatch } from './seal.js';

/** What a sealed session id carries (DESIGN.md step 8). */
export interface SessionClaims {
  /** The upstream's own `Mcp-Session-Id`, never shown to the client. */
  readonly upstreamId: string;
  readonly route: string;
  /** The identity key that opened the session. */
  readonly identity: string;
  /** The protocol version negotiated when it opened. */
  readonly version: string;
  /** When it was sealed, epoch seconds. */
  readonly issuedAt: number;
}

export interface SessionSealer {
  seal(claims: SessionClaims): string;
  /** The claims of a sealed id, or undefined when it does not open under any key (forged, truncated). */
  open(sealed: string): SessionClaims | undefined;
}

const FORMAT = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * Session ids sealed with AES-256-GCM: the client holds an opaque id that names the upstream
 * session, the route, the identity, the protocol version and the time, and cannot alter any of
 * it. The first key seals, every key opens (rotation). Without configured keys a random key per
 * process is used, so sessions then live and die with the process. Any replica with the same
 * keys serves any session: no Redis, no sticky routing.
 */
export function createSessionSealer(base64Keys: readonly string[] | undefined): SessionSealer {
  const keys = (base64Keys ?? []).map((k) => Buffer.from(k, 'base64'));
  if (keys.length === 0) keys.push(randomBytes(32));
  const sealing = keys[0] as Buffer;
  return {
    seal(claims) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', sealing, iv);
      const plaintext = JSON.stringify([
        claims.upstreamId,
        claims.route,
        claims.identity,
        claims.version,
        claims.issuedAt,
      ]);
      const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return Buffer.concat([Buffer.of(FORMAT), iv, body, cipher.getAuthTag()]).toString('base64url');
    },
    open(sealed) {
      if (!/^[A-Za-z0-9_-]{40,4096}$/.test(sealed)) return undefined;
      const bytes = Buffer.from(sealed, 'base64url');
      if (bytes[0] !== FORMAT || bytes.length < 1 + IV_BYTES + TAG_BYTES + 2) return undefined;
      const iv = bytes.subarray(1, 1 + IV_BYTES);
      const body = bytes.subarray(1 + IV_BYTES, bytes.length - TAG_BYTES);
      const tag = bytes.subarray(bytes.length - TAG_BYTES);
      for (const key of keys) {
        const decipher = createDecipheriv('aes-256-gcm', key, iv);
        decipher.setAuthTag(tag);
        const head = decipher.update(body);
        let tail: Buffer;
        try {
          tail = decipher.final();
        } catch (err) {
          // Sealed under another key (rotation), or forged: try the next key.
          if (isTagMismatch(err)) continue;
          throw err;
        }
        return claimsOf(Buffer.concat([head, tail]).toString('utf8'));
      }
      return undefined;
    },
  };
}

function claimsOf(plaintext: string): SessionClaims | undefined {
  const value: unknown = JSON.parse(plaintext);
  if (!Array.isArray(value) || value.length !== 5) return undefined;
  const [upstreamId, route, identity, version, issuedAt] = value as unknown[];
  if (typeof upstreamId !== 'string' || typeof route !== 'string' || typeof identity !== 'string')
    return undefined;
  if (typeof version !== 'string' || typeof issuedAt !== 'number') return undefined;
  return { upstreamId, route, identity, version, issuedAt };
}
