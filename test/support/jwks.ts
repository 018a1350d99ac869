/**
 * A real JWKS endpoint and real signing keys for JWT tests: an HTTP server on 127.0.0.1 (port 0)
 * serving `{ keys: [...] }` made with `jose`, whose key set can change while it runs (rotation),
 * which can be made to fail, and which counts every fetch it answers.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  exportJWK,
  exportSPKI,
  type GenerateKeyPairResult,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';

export type SigningAlg = 'RS256' | 'ES256';

/** A private key that signs tokens and the public JWK an issuer publishes for it. */
export interface SigningKey {
  readonly kid: string;
  readonly alg: SigningAlg;
  readonly privateKey: GenerateKeyPairResult['privateKey'];
  /** The public key as published: `kid`, `alg` and `use: sig` set. */
  readonly publicJwk: JWK;
  /** The public key as SPKI PEM (what a key-confusion attacker uses as an HMAC secret). */
  readonly publicPem: string;
}

export async function createSigningKey(
  alg: SigningAlg,
  kid: string = `${alg}-${randomUUID()}`,
): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk, publicPem: await exportSPKI(publicKey) };
}

/** Signs `payload` as given (`iat`, `exp`… are whatever the caller wrote); `header` adds to `{ alg, kid }`. */
export async function signJwt(
  key: SigningKey,
  payload: JWTPayload,
  header: Record<string, unknown> = {},
): Promise<string> {
  return new SignJWT(payload)
    .setProtectedHeader({ alg: key.alg, kid: key.kid, ...header })
    .sign(key.privateKey);
}

/** Epoch seconds now, the unit of `iat`, `nbf` and `exp`. */
export function nowSec(): number {
  return Math.floor(Date.now() / 1000);
}

const b64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An unsecured JWT (`alg: none`, empty signature): `header.payload.` */
export function unsignedJwt(payload: JWTPayload, header: Record<string, unknown> = {}): string {
  return `${b64url({ alg: 'none', typ: 'JWT', ...header })}.${b64url(payload)}.`;
}

/**
 * The algorithm-confusion attack: an `HS256` token whose HMAC secret is the bytes of `key`'s
 * public PEM, with `key`'s `kid`, hoping a verifier feeds the public key to HMAC.
 */
export function hmacWithPublicKey(key: SigningKey, payload: JWTPayload): string {
  const input = `${b64url({ alg: 'HS256', typ: 'JWT', kid: key.kid })}.${b64url(payload)}`;
  const signature = createHmac('sha256', key.publicPem).update(input).digest('base64url');
  return `${input}.${signature}`;
}

/** A running JWKS endpoint. */
export interface JwksServer {
  /** The key set's URL, e.g. `http://127.0.0.1:1234/jwks.json`. */
  readonly url: string;
  /** How many times the key set was requested (answered or failed on purpose). */
  readonly fetches: number;
  /** The key ids currently published. */
  kids(): string[];
  /** Publishes a key (rotation: add the new one first…). */
  add(key: SigningKey): void;
  /** …then withdraw the old one. */
  remove(kid: string): void;
  /** `false`: every fetch is answered 503 (the identity provider is down); `true` again to recover. */
  setAvailable(available: boolean): void;
  /**
   * How fetches fail from now on: `none` (served), an HTTP status (`503`, `500`…), `hang` (never
   * answered: headers never sent), `invalid-json` (200 with a body that is not JSON),
   * `not-a-key-set` (200 with JSON that is no JWKS). Each is still counted in {@link fetches}.
   */
  setFault(fault: JwksFault): void;
  /**
   * Resolves on the next fetch answered with a key set (the fetch an action is expected to cause);
   * rejects if none comes within `timeoutMs`.
   */
  nextFetch(timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

export type JwksFault = 'none' | number | 'hang' | 'invalid-json' | 'not-a-key-set';

export async function startJwksServer(initial: readonly SigningKey[] = []): Promise<JwksServer> {
  const keys = new Map<string, JWK>(initial.map((k) => [k.kid, k.publicJwk]));
  let fetches = 0;
  let fault: JwksFault = 'none';
  let waiting: Array<() => void> = [];
  const server = createServer((req, res) => {
    if (req.url !== '/jwks.json') {
      res.writeHead(404).end();
      return;
    }
    fetches++;
    if (fault === 'hang') return; // closed by close() (closeAllConnections)
    if (typeof fault === 'number') {
      res.writeHead(fault, { 'content-type': 'text/plain' }).end('unavailable');
      return;
    }
    if (fault === 'invalid-json' || fault === 'not-a-key-set') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(fault === 'invalid-json' ? '{"keys": [' : '{"keys": "none"}');
      return;
    }
    const body = JSON.stringify({ keys: [...keys.values()] });
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(body, () => {
      const resolve = waiting;
      waiting = [];
      for (const done of resolve) done();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/jwks.json`,
    get fetches() {
      return fetches;
    },
    kids: () => [...keys.keys()],
    add(key) {
      keys.set(key.kid, key.publicJwk);
    },
    remove(kid) {
      keys.delete(kid);
    },
    setAvailable(value) {
      fault = value ? 'none' : 503;
    },
    setFault(value) {
      fault = value;
    },
    nextFetch: (timeoutMs = 2000) =>
      new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no JWKS fetch within ${timeoutMs} ms`)), timeoutMs);
        waiting.push(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
