import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Opaque values the gateway hands a client and must get back unaltered — a stdio server's
 * `requestState` wrapped with who may bring it back — sealed with AES-256-GCM under the session
 * keys. Each value is labelled with its purpose (authenticated, not encrypted: the GCM additional
 * data), so a value sealed for one purpose never opens as another's. The first key seals, every
 * key opens (rotation); without keys a random key per process is used.
 */
export interface Sealer {
  seal(purpose: string, fields: readonly unknown[]): string;
  /** The fields, or undefined when the value does not open for this purpose under any key. */
  open(purpose: string, sealed: string): unknown[] | undefined;
}

/** Distinct from the session ids' format byte (1): one can never be taken for the other. */
const FORMAT = 2;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The longest sealed value opened: a client cannot make the gateway decrypt megabytes. */
const MAX_SEALED = 65_536;

export function createSealer(base64Keys: readonly string[] | undefined): Sealer {
  const keys = (base64Keys ?? []).map((k) => Buffer.from(k, 'base64'));
  if (keys.length === 0) keys.push(randomBytes(32));
  const sealing = keys[0] as Buffer;
  return {
    seal(purpose, fields) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', sealing, iv);
      cipher.setAAD(Buffer.from(purpose, 'utf8'));
      const body = Buffer.concat([cipher.update(JSON.stringify(fields), 'utf8'), cipher.final()]);
      return Buffer.concat([Buffer.of(FORMAT), iv, body, cipher.getAuthTag()]).toString('base64url');
    },
    open(purpose, sealed) {
      if (sealed.length > MAX_SEALED || !/^[A-Za-z0-9_-]+$/.test(sealed)) return undefined;
      const bytes = Buffer.from(sealed, 'base64url');
      if (bytes[0] !== FORMAT || bytes.length < 1 + IV_BYTES + TAG_BYTES + 2) return undefined;
      const iv = bytes.subarray(1, 1 + IV_BYTES);
      const body = bytes.subarray(1 + IV_BYTES, bytes.length - TAG_BYTES);
      const tag = bytes.subarray(bytes.length - TAG_BYTES);
      for (const key of keys) {
        const decipher = createDecipheriv('aes-256-gcm', key, iv);
        decipher.setAAD(Buffer.from(purpose, 'utf8'));
        decipher.setAuthTag(tag);
        const head = decipher.update(body);
        let tail: Buffer;
        try {
          tail = decipher.final();
        } catch (err) {
          if (isTagMismatch(err)) continue;
          throw err;
        }
        const value: unknown = JSON.parse(Buffer.concat([head, tail]).toString('utf8'));
        return Array.isArray(value) ? value : undefined;
      }
      return undefined;
    },
  };
}

/**
 * Whether `final()` failed because the GCM tag did not verify. Node reports that as a plain Error
 * with no `code` (OpenSSL queues no error for a tag mismatch); everything else `final()` can throw
 * carries one — misuse of the decipher `ERR_CRYPTO_*`, an OpenSSL fault `ERR_OSSL_*` — and is a
 * bug to rethrow. Decided by that structure, never by the message's text.
 */
export function isTagMismatch(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === undefined;
}
