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
/** The longest sealed value opened: a client cannot make the gateway decrypt megabytes. */
const MAX_SEALED = 65_536;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export function createSealer(base64Keys: readonly string[] | undefined): Sealer {
  const keys = sealingKeys(base64Keys);
  return {
    seal: (purpose, fields) => sealText(keys, FORMAT, JSON.stringify(fields), purpose),
    open(purpose, sealed) {
      if (sealed.length > MAX_SEALED || !/^[A-Za-z0-9_-]+$/.test(sealed)) return undefined;
      const text = openText(keys, FORMAT, sealed, purpose);
      if (text === undefined) return undefined;
      const value: unknown = JSON.parse(text);
      return Array.isArray(value) ? value : undefined;
    },
  };
}

/** The keys of `sessions.keys` (base64, 32 bytes each), or one random key for this process. */
export function sealingKeys(base64Keys: readonly string[] | undefined): readonly Buffer[] {
  const keys = (base64Keys ?? []).map((k) => Buffer.from(k, 'base64'));
  if (keys.length === 0) keys.push(randomBytes(32));
  return keys;
}

/**
 * `text` sealed under the first key: the format byte, a random IV, the ciphertext and the tag, as
 * base64url. `purpose`, when given, is authenticated with it (GCM additional data).
 */
export function sealText(keys: readonly Buffer[], format: number, text: string, purpose?: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keys[0] as Buffer, iv);
  if (purpose !== undefined) cipher.setAAD(Buffer.from(purpose, 'utf8'));
  const body = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.of(format), iv, body, cipher.getAuthTag()]).toString('base64url');
}

/** The text of a value {@link sealText} made, under any key; undefined when it does not open. */
export function openText(
  keys: readonly Buffer[],
  format: number,
  sealed: string,
  purpose?: string,
): string | undefined {
  const bytes = Buffer.from(sealed, 'base64url');
  if (bytes[0] !== format || bytes.length < 1 + IV_BYTES + TAG_BYTES + 2) return undefined;
  const iv = bytes.subarray(1, 1 + IV_BYTES);
  const body = bytes.subarray(1 + IV_BYTES, bytes.length - TAG_BYTES);
  const tag = bytes.subarray(bytes.length - TAG_BYTES);
  for (const key of keys) {
    const decipher = createDecipheriv('aes-256-gcm', key, iv);
    if (purpose !== undefined) decipher.setAAD(Buffer.from(purpose, 'utf8'));
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
    return Buffer.concat([head, tail]).toString('utf8');
  }
  return undefined;
}

/**
 * Whether `final()` failed because the GCM tag did not verify. Node reports that as a plain Error
 * with no `code` (OpenSSL queues no error for a tag mismatch); everything else `final()` can throw
 * carries one — misuse of the decipher `ERR_CRYPTO_*`, an OpenSSL fault `ERR_OSSL_*` — and is a
 * bug to rethrow. Decided by that structure, never by the message's text.
 */
function isTagMismatch(err: unknown): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === undefined;
}
