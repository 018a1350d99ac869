/**
 * The authentication ladder (DESIGN.md step 4), table-tested with real credentials made here — API
 * keys, ES256 JWTs, X.509 client certificates — through the real verifiers:
 * - `require: any`: methods in the order listed, the first that *presents* decides; a presented
 *   credential that fails is 401, never a fall-through to another method or to anonymous;
 *   anonymous only when nothing is presented; a header credential no listed method takes is 401.
 * - `require: all`: every method must present and succeed; scopes are the intersection; key and
 *   subject name each; the earliest expiry ends the combination.
 * - Request-wide: two header credentials, a non-Bearer Authorization, an unverified certificate.
 * - Each failure maps to its refusal: missing_credential (challenge without `error`),
 *   invalid_credential (`error="invalid_token"`), idp_unavailable (503, Retry-After).
 */
import type { IncomingMessage } from 'node:http';
import { beforeAll, describe, expect, it } from 'vitest';
import { createApiKeyVerifier, newApiKey } from '../../../src/auth/api-key.js';
import { type AuthFailure, createAuthenticator, type Verifiers } from '../../../src/auth/authenticate.js';
import type { Identity } from '../../../src/auth/identity.js';
import { createJwtVerifier } from '../../../src/auth/jwt.js';
import { createMtlsMatcher } from '../../../src/auth/mtls.js';
import { parseConfig } from '../../../src/config/load.js';
import type { Config } from '../../../src/config/schema.js';
import { createTestCA, tlsSocketWith } from '../../support/certs.js';
import { freePort } from '../../support/gateway.js';
import { createSigningKey, nowSec, type SigningKey, signJwt } from '../../support/jwks.js';

const ISSUER = 'https://idp.test/';
const DOWN_ISSUER = 'https://down.test/';
const ci = newApiKey('pk_');
const old = newApiKey('pk_');
const stranger = newApiKey('pk_');

/** Every route the tables use: path → `authentication`. */
const ROUTES = {
  '/any': '{ methods: [apiKey, jwt, mtls] }',
  '/any-anon': '{ methods: [apiKey, jwt, mtls, anonymous] }',
  '/mtls-first': '{ methods: [mtls, apiKey] }',
  '/apikey-first': '{ methods: [apiKey, mtls] }',
  '/jwt-only': '{ methods: [jwt] }',
  '/apikey-anon': '{ methods: [apiKey, anonymous] }',
  '/mtls-anon': '{ methods: [mtls, anonymous] }',
  '/all-mtls-apikey': '{ methods: [mtls, apiKey], require: all }',
  '/all-mtls-jwt': '{ methods: [mtls, jwt], require: all }',
  '/all-jwt-apikey': '{ methods: [jwt, apiKey], require: all }',
} as const;
type RoutePath = keyof typeof ROUTES;

const resourceOf = (path: string) => `https://mcp.test${path}`;

let config: Config;
let verifiers: Verifiers;
let signing: SigningKey;
let otherKey: SigningKey;
/** Sockets presenting certificates: ops-agent (matches), nobody (matches no entry), unverified. */
let sockets: Record<'ops' | 'nobody' | 'unverified', object>;
/** A JWT for each route audience, and the variants that fail. */
let jwtFor: (path: string, extra?: Record<string, unknown>, key?: SigningKey) => Promise<string>;

beforeAll(async () => {
  signing = await createSigningKey('ES256');
  otherKey = await createSigningKey('ES256', signing.kid);
  const deadPort = await freePort();
  config = parseConfig(`listen: { host: 127.0.0.1, port: 0 }
tls: { cert: /unused/tls.crt, key: /unused/tls.key, clientCA: /unused/ca.crt, clientCertificate: optional }
identities:
  apiKeys:
    - { id: ci, hash: "${ci.hash}", scopes: [files:read, files:write] }
    - { id: old, hash: "${old.hash}", scopes: [files:read], expires: 2020-01-01 }
  jwt:
    - { issuer: "${ISSUER}", keys: [${JSON.stringify(signing.publicJwk)}], algorithms: [ES256] }
    - { issuer: "${DOWN_ISSUER}", jwksUri: "http://127.0.0.1:${deadPort}/jwks", algorithms: [ES256] }
  mtls:
    - { name: ops-agent, match: { cn: agent-ops }, scopes: [files:read, files:admin] }
  anonymous: { scopes: [public] }
routes:
${Object.entries(ROUTES)
  .map(
    ([path, authentication]) => `  - route: ${path}
    resource: ${resourceOf(path)}
    upstream: http://127.0.0.1:9/mcp
    authentication: ${authentication}
    tools: { read_file: files:read }
`,
  )
  .join('')}`);
  verifiers = {
    apiKey: createApiKeyVerifier(config.identities.apiKeys),
    jwt: createJwtVerifier(config.identities.jwt),
    mtls: createMtlsMatcher(config.identities.mtls),
  };
  const ca = await createTestCA();
  sockets = {
    ops: tlsSocketWith(await ca.issue({ cn: 'agent-ops', client: true }), true),
    nobody: tlsSocketWith(await ca.issue({ cn: 'intern', client: true }), true),
    unverified: tlsSocketWith(await ca.issue({ cn: 'agent-ops', client: true }), false),
  };
  jwtFor = (path, extra = {}, key = signing) =>
    signJwt(key, {
      iss: ISSUER,
      sub: 'alice',
      aud: resourceOf(path),
      scope: 'files:read files:admin',
      iat: nowSec(),
      exp: nowSec() + 600,
      ...extra,
    });
});

/** What one request presents. */
interface Presenting {
  /** Header name/value pairs, as sent (repeats kept). */
  readonly headers?: readonly (readonly [string, string])[];
  readonly cert?: 'ops' | 'nobody' | 'unverified';
}

/** A request as far as the authenticator reads it: headers (raw and parsed) and the socket. */
function request({ headers = [], cert }: Presenting): IncomingMessage {
  const parsed: Record<string, string> = {};
  // Node keeps the first of repeated Authorization / X-API-Key headers.
  for (const [name, value] of headers) parsed[name.toLowerCase()] ??= value;
  return {
    headers: parsed,
    rawHeaders: headers.flat(),
    socket: cert === undefined ? { encrypted: undefined } : sockets[cert],
  } as unknown as IncomingMessage;
}

/** What a test compares: the identity's public facts, or the refusal with its labels. */
type Seen =
  | {
      readonly identity: string;
      readonly subject: string;
      readonly methods: readonly string[];
      readonly scopes: string[];
    }
  | { readonly refusal: string; readonly method: string; readonly why: string };

async function authenticate(path: RoutePath, presenting: Presenting): Promise<Identity | AuthFailure> {
  const route = config.routes.find((r) => r.route === path);
  if (route === undefined) throw new Error(`no route ${path}`);
  return createAuthenticator(config, route, verifiers)(request(presenting));
}

function seen(result: Identity | AuthFailure): Seen {
  if ('refusal' in result) return { refusal: result.refusal.reason, method: result.method, why: result.why };
  return {
    identity: result.key,
    subject: result.subject,
    methods: result.methods,
    scopes: [...result.scopes].sort(),
  };
}

const bearer = (token: string) => ['Authorization', `Bearer ${token}`] as const;
const xApiKey = (key: string) => ['X-API-Key', key] as const;

const CI = {
  identity: 'apiKey:ci',
  subject: 'ci',
  methods: ['apiKey'],
  scopes: ['files:read', 'files:write'],
};
const OPS = {
  identity: 'mtls:ops-agent',
  subject: 'ops-agent',
  methods: ['mtls'],
  scopes: ['files:admin', 'files:read'],
};
const ALICE = {
  identity: `jwt:${ISSUER}|alice`,
  subject: 'alice',
  methods: ['jwt'],
  scopes: ['files:admin', 'files:read'],
};
const ANONYMOUS = { identity: 'anonymous', subject: 'anonymous', methods: ['anonymous'], scopes: ['public'] };
const invalid = (method: string, why: string) => ({ refusal: 'invalid_credential', method, why });
const missing = (method: string, why: string) => ({ refusal: 'missing_credential', method, why });

/** A credential by name, made per route (a JWT's audience is its route's resource). */
type Credential =
  | 'ci key'
  | 'expired key'
  | 'unknown key'
  | 'jwt'
  | 'expired jwt'
  | 'jwt for another route'
  | 'jwt signed by another key'
  | 'jwt from an unknown issuer'
  | 'jwt from an issuer that is down';

async function header(credential: Credential, path: RoutePath): Promise<readonly [string, string]> {
  switch (credential) {
    case 'ci key':
      return bearer(ci.key);
    case 'expired key':
      return xApiKey(old.key);
    case 'unknown key':
      return bearer(stranger.key);
    case 'jwt':
      return bearer(await jwtFor(path));
    case 'expired jwt':
      return bearer(await jwtFor(path, { iat: nowSec() - 7200, exp: nowSec() - 3600 }));
    case 'jwt for another route':
      return bearer(await jwtFor('/elsewhere'));
    case 'jwt signed by another key':
      return bearer(await jwtFor(path, {}, otherKey));
    case 'jwt from an unknown issuer':
      return bearer(await jwtFor(path, { iss: 'https://nobody.test/' }));
    case 'jwt from an issuer that is down':
      return bearer(await jwtFor(path, { iss: DOWN_ISSUER }));
  }
}

type Row = readonly [
  what: string,
  path: RoutePath,
  credential: Credential | undefined,
  cert: Presenting['cert'],
  expected: Seen,
];

async function check([, path, credential, cert, expected]: Row): Promise<void> {
  const headers = credential === undefined ? [] : [await header(credential, path)];
  expect(seen(await authenticate(path, { headers, ...(cert ? { cert } : {}) }))).toEqual(expected);
}

describe('require: any — the first method that presents decides', () => {
  it.each<Row>([
    [
      'nothing presented, no anonymous: missing',
      '/any',
      undefined,
      undefined,
      missing('none', 'no_credential'),
    ],
    ['nothing presented, anonymous listed: anonymous', '/any-anon', undefined, undefined, ANONYMOUS],
    ['a good API key', '/any', 'ci key', undefined, CI],
    ['a good API key where anonymous is listed too', '/any-anon', 'ci key', undefined, CI],
    ['a good JWT', '/any', 'jwt', undefined, ALICE],
    ['a good certificate', '/any', undefined, 'ops', OPS],
    ['a good certificate where anonymous is listed too', '/any-anon', undefined, 'ops', OPS],
    ['an unknown API key', '/any', 'unknown key', undefined, invalid('apiKey', 'unknown')],
    ['an expired API key', '/any', 'expired key', undefined, invalid('apiKey', 'expired')],
    ['an expired JWT', '/any', 'expired jwt', undefined, invalid('jwt', 'expired')],
    ['a JWT for another audience', '/any', 'jwt for another route', undefined, invalid('jwt', 'claims')],
    [
      'a JWT with a bad signature',
      '/any',
      'jwt signed by another key',
      undefined,
      invalid('jwt', 'bad_signature'),
    ],
    [
      'a JWT of an unknown issuer',
      '/any',
      'jwt from an unknown issuer',
      undefined,
      invalid('jwt', 'unknown_issuer'),
    ],
    ['a certificate that names no identity', '/any', undefined, 'nobody', invalid('mtls', 'no_identity')],
  ])('%s', async (...row) => check(row));

  it.each<Row>([
    ['an unknown API key', '/any-anon', 'unknown key', undefined, invalid('apiKey', 'unknown')],
    ['an expired API key', '/apikey-anon', 'expired key', undefined, invalid('apiKey', 'expired')],
    ['an expired JWT', '/any-anon', 'expired jwt', undefined, invalid('jwt', 'expired')],
    [
      'a certificate that names no identity',
      '/mtls-anon',
      undefined,
      'nobody',
      invalid('mtls', 'no_identity'),
    ],
  ])('a failing credential never falls through to anonymous: %s', async (...row) => check(row));

  it.each<Row>([
    [
      'mtls listed first: a good certificate decides, the bad API key is not read',
      '/mtls-first',
      'unknown key',
      'ops',
      OPS,
    ],
    [
      'mtls listed first: a certificate without identity decides, the good API key cannot save it',
      '/mtls-first',
      'ci key',
      'nobody',
      invalid('mtls', 'no_identity'),
    ],
    [
      'apiKey listed first: the bad API key decides, the good certificate cannot save it',
      '/apikey-first',
      'unknown key',
      'ops',
      invalid('apiKey', 'unknown'),
    ],
    ['apiKey listed first: the good API key decides', '/apikey-first', 'ci key', 'nobody', CI],
    ['apiKey listed first, no API key: the certificate decides', '/apikey-first', undefined, 'ops', OPS],
  ])('order: %s', async (...row) => check(row));

  it.each<Row>([
    [
      'an API key on a JWT-only route',
      '/jwt-only',
      'ci key',
      undefined,
      invalid('none', 'method_not_accepted'),
    ],
    [
      'a JWT on an API-key route that lists anonymous: never anonymous',
      '/apikey-anon',
      'jwt',
      undefined,
      invalid('none', 'method_not_accepted'),
    ],
    [
      'an API key on an mTLS route that lists anonymous',
      '/mtls-anon',
      'ci key',
      undefined,
      invalid('none', 'method_not_accepted'),
    ],
    [
      'an API key on an mTLS route, with a good certificate: the certificate decides first',
      '/mtls-anon',
      'ci key',
      'ops',
      OPS,
    ],
  ])('a header credential no listed method takes: %s', async (...row) => check(row));

  it('a certificate on a route that does not list mtls is no credential there', async () => {
    await check(['', '/jwt-only', undefined, 'ops', missing('none', 'no_credential')]);
    await check(['', '/apikey-anon', undefined, 'ops', ANONYMOUS]);
  });
});

describe('require: all — every method presents and succeeds', () => {
  it('certificate and API key: one identity naming both; scopes are the intersection', async () => {
    await check([
      '',
      '/all-mtls-apikey',
      'ci key',
      'ops',
      {
        identity: 'mtls:ops-agent+apiKey:ci',
        subject: 'ops-agent + ci',
        methods: ['mtls', 'apiKey'],
        scopes: ['files:read'],
      },
    ]);
  });

  it('certificate and JWT: the JWT’s issuer and claims and the certificate are kept', async () => {
    const token = await jwtFor('/all-mtls-jwt');
    const result = await authenticate('/all-mtls-jwt', { headers: [bearer(token)], cert: 'ops' });
    expect(seen(result)).toEqual({
      identity: `mtls:ops-agent+jwt:${ISSUER}|alice`,
      subject: 'ops-agent + alice',
      methods: ['mtls', 'jwt'],
      scopes: ['files:admin', 'files:read'],
    });
    if ('refusal' in result) throw new Error('expected an identity');
    expect(result.issuer).toBe(ISSUER);
    expect(result.claims?.sub).toBe('alice');
    expect(result.certificate?.subject).toBe('CN=agent-ops');
    expect(result.expiresAt).toBe(((result.claims?.exp as number) + 30) * 1000);
  });

  it('the earliest expiry of its parts ends the combination', async () => {
    const expires = nowSec() + 120;
    const token = await jwtFor('/all-mtls-jwt', { exp: expires });
    const result = await authenticate('/all-mtls-jwt', { headers: [bearer(token)], cert: 'ops' });
    if ('refusal' in result) throw new Error('expected an identity');
    expect(result.expiresAt).toBe((expires + 30) * 1000);
  });

  it.each<Row>([
    [
      'no certificate: missing, naming mtls',
      '/all-mtls-apikey',
      'ci key',
      undefined,
      missing('mtls', 'not_presented'),
    ],
    [
      'no API key: missing, naming apiKey',
      '/all-mtls-apikey',
      undefined,
      'ops',
      missing('apiKey', 'not_presented'),
    ],
    [
      'nothing at all: missing, naming the first method',
      '/all-mtls-apikey',
      undefined,
      undefined,
      missing('mtls', 'not_presented'),
    ],
    [
      'a certificate without identity',
      '/all-mtls-apikey',
      'ci key',
      'nobody',
      invalid('mtls', 'no_identity'),
    ],
    [
      'an unknown API key beside a good certificate',
      '/all-mtls-apikey',
      'unknown key',
      'ops',
      invalid('apiKey', 'unknown'),
    ],
    [
      'an expired JWT beside a good certificate',
      '/all-mtls-jwt',
      'expired jwt',
      'ops',
      invalid('jwt', 'expired'),
    ],
    [
      'a JWT on an mTLS + API-key route',
      '/all-mtls-apikey',
      'jwt',
      'ops',
      invalid('none', 'method_not_accepted'),
    ],
    [
      'an API key on an mTLS + JWT route',
      '/all-mtls-jwt',
      'ci key',
      'ops',
      invalid('none', 'method_not_accepted'),
    ],
    [
      'a JWT alone: missing, naming apiKey',
      '/all-jwt-apikey',
      'jwt',
      undefined,
      missing('apiKey', 'not_presented'),
    ],
  ])('%s', async (...row) => check(row));

  it('JWT + API key can never both be presented: two header credentials are refused', async () => {
    const token = await jwtFor('/all-jwt-apikey');
    const result = await authenticate('/all-jwt-apikey', { headers: [bearer(token), xApiKey(ci.key)] });
    expect(seen(result)).toEqual(invalid('none', 'two_credentials'));
  });

  it('a token bound to another certificate (RFC 8705) fails beside a good certificate', async () => {
    const token = await jwtFor('/all-mtls-jwt', { cnf: { 'x5t#S256': 'not-this-certificate' } });
    const result = await authenticate('/all-mtls-jwt', { headers: [bearer(token)], cert: 'ops' });
    expect(seen(result)).toEqual(invalid('jwt', 'certificate_binding'));
  });
});

describe('what a request presents as a whole', () => {
  it('two header credentials: Authorization and X-API-Key', async () => {
    const result = await authenticate('/any', { headers: [bearer(ci.key), xApiKey(ci.key)] });
    expect(seen(result)).toEqual(invalid('none', 'two_credentials'));
  });

  it('two Authorization headers: the second can never hide behind the first', async () => {
    const result = await authenticate('/any-anon', { headers: [bearer(ci.key), bearer(stranger.key)] });
    expect(seen(result)).toEqual(invalid('none', 'two_credentials'));
  });

  it('an Authorization that is not Bearer', async () => {
    const basic = ['Authorization', `Basic ${Buffer.from('ci:secret').toString('base64')}`] as const;
    expect(seen(await authenticate('/any-anon', { headers: [basic] }))).toEqual(
      invalid('none', 'not_bearer'),
    );
  });

  it('a certificate that did not verify, on any route — even one that does not list mtls', async () => {
    expect(seen(await authenticate('/any', { cert: 'unverified' }))).toEqual(
      invalid('mtls', 'unverified_certificate'),
    );
    expect(seen(await authenticate('/jwt-only', { cert: 'unverified' }))).toEqual(
      invalid('mtls', 'unverified_certificate'),
    );
  });
});

describe('each failure answers its refusal', () => {
  it('missing_credential: 401 with a challenge that names no error', async () => {
    const result = await authenticate('/any', {});
    if (!('refusal' in result)) throw new Error('expected a refusal');
    expect(result.refusal.headers?.['www-authenticate']).toBe('Bearer scope="files:read"');
  });

  it('invalid_credential: 401 with error="invalid_token"', async () => {
    const result = await authenticate('/any', { headers: [bearer(stranger.key)] });
    if (!('refusal' in result)) throw new Error('expected a refusal');
    expect(result.refusal.reason).toBe('invalid_credential');
    expect(result.refusal.headers?.['www-authenticate']).toBe(
      'Bearer error="invalid_token", scope="files:read"',
    );
  });

  it('idp_unavailable: a JWT whose issuer’s JWKS cannot be read is 503 with Retry-After, never invalid', async () => {
    const result = await authenticate('/any', {
      headers: [await header('jwt from an issuer that is down', '/any')],
    });
    expect(seen(result)).toEqual({ refusal: 'idp_unavailable', method: 'jwt', why: 'jwks_unavailable' });
    if (!('refusal' in result)) throw new Error('expected a refusal');
    expect(Number(result.refusal.headers?.['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(result.refusal.headers?.['www-authenticate']).toBeUndefined();
  });
});
