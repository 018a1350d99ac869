import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { Config } from '../../config/schema.js';

/** The algorithms the gateway signs assertions with: one per key type, so the key file decides. */
export type SigningAlgorithm = 'ES256' | 'EdDSA';

/** One of `gatewayIdentity.signingKeys`, read and ready to sign. */
export interface SigningKey {
  /** RFC 7638 thumbprint of the public key: the JWT header's `kid` and the JWKS entry's. */
  readonly kid: string;
  readonly alg: SigningAlgorithm;
  readonly privateKey: KeyObject;
  /** What the JWKS publishes: the public half only, with `kid`, `alg` and `use`. */
  readonly publicJwk: JWK;
}

/**
 * The private key in `path` and the algorithm it signs with, or why it cannot sign: EC P-256 →
 * ES256, Ed25519 → EdDSA, and RSA → RS256 where `rsa` allows it (a client key for
 * `private_key_jwt`; the gateway's own assertions are never RSA). Synchronous, so a start or a
 * reload can refuse a key that does not load before anything is swapped.
 */
export function readPrivateKey(
  path: string,
  rsa = false,
): { key: KeyObject; alg: SigningAlgorithm | 'RS256' } | string {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (err) {
    return `cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`;
  }
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    // The parser's message is not repeated: for a file holding something else it could quote it.
    return 'is not a PEM private key';
  }
  if (key.asymmetricKeyType === 'ed25519') return { key, alg: 'EdDSA' };
  if (key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1')
    return { key, alg: 'ES256' };
  if (rsa && key.asymmetricKeyType === 'rsa' && (key.asymmetricKeyDetails?.modulusLength ?? 0) >= 2048)
    return { key, alg: 'RS256' };
  return rsa
    ? 'must be an EC P-256 (ES256), Ed25519 (EdDSA) or RSA ≥ 2048 bits (RS256) private key'
    : 'must be an EC P-256 (ES256) or Ed25519 (EdDSA) private key';
}

/** Why `gatewayIdentity.signingKeys` cannot be used, one line per key (start and reload refuse). */
export function signingKeyProblems(config: Config): string[] {
  const problems: string[] = [];
  config.gatewayIdentity?.signingKeys.forEach((path, i) => {
    const read = readPrivateKey(path);
    if (typeof read === 'string') problems.push(`gatewayIdentity.signingKeys[${i}]: ${path} ${read}`);
  });
  return problems;
}

/** The keys in `paths`, the signing one first; throws naming the first that cannot be used. */
export async function loadSigningKeys(paths: readonly string[]): Promise<SigningKey[]> {
  return Promise.all(
    paths.map(async (path, i) => {
      const read = readPrivateKey(path);
      if (typeof read === 'string') throw new Error(`gatewayIdentity.signingKeys[${i}]: ${path} ${read}`);
      const alg = read.alg as SigningAlgorithm;
      const jwk = createPublicKey(read.key).export({ format: 'jwk' }) as JWK;
      const kid = await calculateJwkThumbprint(jwk, 'sha256');
      return { kid, alg, privateKey: read.key, publicJwk: { ...jwk, kid, alg, use: 'sig' } };
    }),
  );
}

/** The JWKS document (RFC 7517) an upstream verifies assertions with: every key, public halves only. */
export function jwksDocument(keys: readonly SigningKey[]): string {
  return JSON.stringify({ keys: keys.map((key) => key.publicJwk) });
}
