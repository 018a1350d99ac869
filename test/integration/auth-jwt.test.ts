/**
 * JWT bearer authentication through a real gateway (DESIGN.md step 4): real SDK clients and
 * servers, a real JWKS endpoint with rotating keys, tokens signed in the test. Every refusal is
 * checked for its status, `WWW-Authenticate`, JSON-RPC error and reason, the failure label the
 * gateway counted — and that the upstream saw nothing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  connectV1Client,
  connectV2Client,
  type Peer,
  type RecordedRequest,
  startV1Server,
  startV2Server,
} from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { firstText } from '../support/inspect.js';
import {
  createSigningKey,
  hmacWithPublicKey,
  type JwksServer,
  nowSec,
  type SigningKey,
  signJwt,
  startJwksServer,
  unsignedJwt,
} from '../support/jwks.js';
import { META, MODERN, modernHeaders } from '../support/wire.js';

const IDP = 'https://idp.example.com/';
const ROTATING = 'https://rotating.example.com/';
const STATIC = 'https://static.example.com/';
const PUBLIC = 'https://mcp.example.com';
/** Each route's public URL (`resource`): the audience its tokens must name. */
const RESOURCE = {
  modern: `${PUBLIC}/public/modern`,
  legacy: `${PUBLIC}/legacy/mcp`,
  open: `${PUBLIC}/open/mcp`,
} as const;
const TOLERANCE_SEC = 5;
const MAX_LIFETIME_SEC = 3600;
const COOLDOWN_MS = 1000;
const WELL_KNOWN = '/.well-known/oauth-protected-resource';

let v2: Peer;
let v1: Peer;
let idp: JwksServer;
let rotating: JwksServer;
let gateway: TestGateway;
let rsa: SigningKey;
let ec: SigningKey;
let rotatingKey: SigningKey;
let staticKey: SigningKey;

beforeAll(async () => {
  [rsa, ec, rotatingKey, staticKey] = await Promise.all([
    createSigningKey('RS256', 'idp-rsa'),
    createSigningKey('ES256', 'idp-ec'),
    createSigningKey('ES256', 'rotating-1'),
    createSigningKey('ES256', 'static-1'),
  ]);
  [v2, v1, idp, rotating] = await Promise.all([
    startV2Server({ response: 'json' }),
    startV1Server({ response: 'json' }),
    startJwksServer([rsa, ec]),
    startJwksServer([rotatingKey]),
  ]);
  gateway = await startTestGateway({
    policy: `authFailures: { limit: 100000/minute }
identities:
  jwt:
    - issuer: ${IDP}
      jwksUri: ${idp.url}
      algorithms: [RS256, ES256]
      clockToleranceSec: ${TOLERANCE_SEC}
      maxTokenLifetimeSec: ${MAX_LIFETIME_SEC}
      jwksCooldownMs: ${COOLDOWN_MS}
    - issuer: ${ROTATING}
      jwksUri: ${rotating.url}
      algorithms: [ES256]
      jwksCooldownMs: ${COOLDOWN_MS}
    - issuer: ${STATIC}
      keys: [${JSON.stringify(staticKey.publicJwk)}]
      algorithms: [ES256]
  anonymous: { scopes: [] }
routes:
  - route: /modern/mcp
    resource: ${RESOURCE.modern}
    upstream: ${v2.url}
    authentication: { methods: [jwt] }
    authorizationServers: [${IDP}]
    default: allow
    tools: { echo: files:read, add: [files:read, math:use] }
    resources: { "fixture://**": files:read }
  - route: /legacy/mcp
    resource: ${RESOURCE.legacy}
    upstream: ${v1.url}
    authentication: { methods: [jwt] }
    authorizationServers: [${IDP}]
    default: allow
  - route: /open/mcp
    resource: ${RESOURCE.open}
    upstream: ${v2.url}
    authentication: { methods: [jwt, anonymous], require: any }
    default: allow
`,
  });
});
afterAll(async () => {
  await gateway?.close();
  await Promise.all([v2?.close(), v1?.close(), idp?.close(), rotating?.close()]);
});

/** Requests each upstream had received when the current test started, or since {@link mark}. */
let seen = { v1: 0, v2: 0 };
function mark(): void {
  seen = { v1: v1.requests.length, v2: v2.requests.length };
}
afterEach(mark);

function claims(aud: string | string[] = RESOURCE.modern, extra: Record<string, unknown> = {}) {
  const now = nowSec();
  return { iss: IDP, aud, sub: 'alice', scope: 'files:read', iat: now, exp: now + 600, ...extra };
}

/** The headers of a modern `tools/call echo`, with `token` as its bearer credential. */
function echoHeaders(token: string | undefined): Record<string, string> {
  return {
    ...modernHeaders('tools/call', 'echo'),
    ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
  };
}

/** A modern `tools/call echo` on `route` with `token` as its bearer credential. */
function callEcho(token: string | undefined, route = '/modern/mcp'): Promise<Response> {
  return fetch(`${gateway.url}${route}`, {
    method: 'POST',
    headers: echoHeaders(token),
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: { text: 'hi' }, _meta: META },
    }),
  });
}

/** What the gateway counted in `portcullis_auth_failures_total`, by failure label. */
async function authFailures(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const { labels, value } of (await gateway.metrics.authFailures.get()).values) {
    const reason = String(labels.reason);
    counts[reason] = (counts[reason] ?? 0) + value;
  }
  return counts;
}

function metadataUrl(resource: string): string {
  return `${PUBLIC}${WELL_KNOWN}${new URL(resource).pathname}`;
}

/**
 * The 401 challenge each route answers with: `error` when a credential was refused, its default
 * `challengeScopes` (single-scope entries: the modern route's `echo` and resources), and
 * `resource_metadata` only where the route names an authorization server (not `/open/mcp`).
 */
function challengeOf(reason: 'invalid_credential' | 'missing_credential', resource: string): string {
  const params = [
    ...(reason === 'invalid_credential' ? ['error="invalid_token"'] : []),
    ...(resource === RESOURCE.modern ? ['scope="files:read"'] : []),
    ...(resource === RESOURCE.open ? [] : [`resource_metadata="${metadataUrl(resource)}"`]),
  ];
  return params.length === 0 ? 'Bearer' : `Bearer ${params.join(', ')}`;
}

/** The answer to a refused request, and the upstreams untouched. */
async function expectRefused(
  answer: Response,
  reason: 'invalid_credential' | 'missing_credential',
  resource: string = RESOURCE.modern,
): Promise<void> {
  expect(answer.status).toBe(401);
  expect(answer.headers.get('www-authenticate')).toBe(challengeOf(reason, resource));
  expect(await answer.json()).toMatchObject({
    jsonrpc: '2.0',
    id: null,
    error: { code: -31091, data: { reason } },
  });
  expect(v2.requests.length, 'the upstream must see nothing').toBe(seen.v2);
  expect(v1.requests.length, 'the upstream must see nothing').toBe(seen.v1);
}

/** Sends `token`, expects 401 `invalid_credential` and that the gateway counted `why`. */
async function expectInvalid(
  token: string,
  why: string,
  route = '/modern/mcp',
  resource: string = RESOURCE.modern,
) {
  const before = await authFailures();
  mark();
  await expectRefused(await callEcho(token, route), 'invalid_credential', resource);
  const after = await authFailures();
  expect(after[why] ?? 0, `counted as ${why}: ${JSON.stringify(after)}`).toBe((before[why] ?? 0) + 1);
}

async function expectAccepted(token: string | undefined, route = '/modern/mcp'): Promise<RecordedRequest> {
  const answer = await callEcho(token, route);
  expect(answer.status, await answer.clone().text()).toBe(200);
  expect(await answer.json()).toMatchObject({ id: 1, result: { content: [{ type: 'text', text: 'hi' }] } });
  const received = v2.requests.at(-1)!;
  expect(received.headers.authorization).toBeUndefined();
  return received;
}

function expectNoCredentialUpstream(requests: readonly RecordedRequest[]): void {
  expect(requests.length).toBeGreaterThan(0);
  for (const request of requests) {
    expect(request.headers.authorization).toBeUndefined();
    expect(request.headers['x-api-key']).toBeUndefined();
  }
}

describe('valid tokens, end to end with the SDK clients', () => {
  it.each(['RS256', 'ES256'] as const)(
    'accepts an %s token from the SDK v2 client (modern) and never forwards it',
    async (alg) => {
      const key = alg === 'RS256' ? rsa : ec;
      const token = await signJwt(
        key,
        claims(RESOURCE.modern, { sub: `v2-${alg}`, scope: 'files:read math:use' }),
      );
      const client = await connectV2Client(`${gateway.url}/modern/mcp`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      try {
        expect(client.getNegotiatedProtocolVersion()).toBe(MODERN);
        expect(firstText(await client.callTool({ name: 'echo', arguments: { text: alg } }))).toBe(alg);
        expect(firstText(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }))).toBe('5');
      } finally {
        await client.close();
      }
      expectNoCredentialUpstream(v2.requests.slice(seen.v2));
      const records = await gateway.auditRecords();
      expect(records).toContainEqual(
        expect.objectContaining({
          route: '/modern/mcp',
          identity: expect.objectContaining({ key: `jwt:${IDP}|v2-${alg}` }),
          method: 'tools/call',
          tool: 'echo',
          decision: 'allow',
          status: 200,
        }),
      );
      expect(JSON.stringify(records)).not.toContain(token);
    },
  );

  it('denies a tool whose scopes the token lacks; the SDK client reads the insufficient_scope challenge', async () => {
    const token = await signJwt(rsa, claims(RESOURCE.modern, { sub: 'v2-narrow' }));
    const client = await connectV2Client(`${gateway.url}/modern/mcp`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    const before = v2.requests.length;
    try {
      await expect(client.callTool({ name: 'add', arguments: { a: 2, b: 3 } })).rejects.toThrow(
        /files:read math:use/,
      );
    } finally {
      await client.close();
    }
    expect(
      v2.requests.slice(before).some((r) => (r.body as { method?: string })?.method === 'tools/call'),
    ).toBe(false);
  });

  it.each(['RS256', 'ES256'] as const)(
    'accepts an %s token from the SDK v1 client (legacy sessions) and never forwards it',
    async (alg) => {
      const key = alg === 'RS256' ? rsa : ec;
      const token = await signJwt(key, claims(RESOURCE.legacy, { sub: `v1-${alg}` }));
      const client = await connectV1Client(`${gateway.url}/legacy/mcp`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      try {
        const { tools } = await client.listTools();
        expect(tools.map((t) => t.name)).toContain('echo');
        expect(firstText(await client.callTool({ name: 'echo', arguments: { text: alg } }))).toBe(alg);
      } finally {
        await client.close();
      }
      const received = v1.requests.slice(seen.v1);
      expect(received.map((r) => (r.body as { method?: string } | undefined)?.method)).toContain(
        'initialize',
      );
      expectNoCredentialUpstream(received);
      expect(await gateway.auditRecords()).toContainEqual(
        expect.objectContaining({
          route: '/legacy/mcp',
          identity: expect.objectContaining({ key: `jwt:${IDP}|v1-${alg}` }),
          tool: 'echo',
        }),
      );
    },
  );

  it('accepts a token from an issuer configured with static keys', async () => {
    await expectAccepted(await signJwt(staticKey, claims(RESOURCE.modern, { iss: STATIC, sub: 'static' })));
    expect(await gateway.auditRecords()).toContainEqual(
      expect.objectContaining({
        identity: expect.objectContaining({ key: `jwt:${STATIC}|static` }),
        status: 200,
      }),
    );
  });

  it('accepts a token whose `aud` array contains the route’s resource', async () => {
    await expectAccepted(await signJwt(ec, claims([RESOURCE.legacy, RESOURCE.modern])));
  });
});

describe('refused tokens: 401 invalid_token, nothing forwarded', () => {
  it('refuses an unsigned token (alg: none)', async () => {
    await expectInvalid(unsignedJwt(claims()), 'bad_signature');
    await expectInvalid(unsignedJwt(claims(), { kid: rsa.kid }), 'bad_signature');
  });

  it('refuses a token signed with HS256 using the RSA public key as the HMAC secret', async () => {
    await expectInvalid(hmacWithPublicKey(rsa, claims()), 'bad_signature');
    await expectInvalid(
      hmacWithPublicKey(staticKey, claims(RESOURCE.modern, { iss: STATIC })),
      'bad_signature',
    );
  });

  it('refuses a token signed with an algorithm its issuer does not allow', async () => {
    // The static issuer allows ES256 only: an RS256 token claiming it is refused even if well formed.
    await expectInvalid(await signJwt(rsa, claims(RESOURCE.modern, { iss: STATIC })), 'bad_signature');
  });

  it('refuses an expired token beyond the clock tolerance, and accepts one within it', async () => {
    const now = nowSec();
    await expectInvalid(
      await signJwt(rsa, claims(RESOURCE.modern, { iat: now - 600, exp: now - TOLERANCE_SEC - 5 })),
      'expired',
    );
    await expectAccepted(await signJwt(rsa, claims(RESOURCE.modern, { iat: now - 600, exp: now - 2 })));
  });

  it('refuses a token not yet valid beyond the clock tolerance, and accepts one within it', async () => {
    const now = nowSec();
    await expectInvalid(await signJwt(ec, claims(RESOURCE.modern, { nbf: now + 60 })), 'claims');
    await expectAccepted(await signJwt(ec, claims(RESOURCE.modern, { nbf: now + 2 })));
  });

  it('refuses a token whose lifetime exceeds maxTokenLifetimeSec, or that has no iat to tell', async () => {
    const now = nowSec();
    await expectInvalid(
      await signJwt(rsa, claims(RESOURCE.modern, { iat: now, exp: now + MAX_LIFETIME_SEC + 1 })),
      'lifetime',
    );
    const noIat: Record<string, unknown> = claims();
    delete noIat.iat;
    await expectInvalid(await signJwt(rsa, noIat), 'lifetime');
    await expectAccepted(
      await signJwt(rsa, claims(RESOURCE.modern, { iat: now, exp: now + MAX_LIFETIME_SEC })),
    );
  });

  it('does not let a future iat stretch a token past maxTokenLifetimeSec from now', async () => {
    // exp - iat is exactly the maximum, but the token is good for a day and an hour from now.
    // A token issued in the future is refused as such (reason `claims`), whatever the lifetime bound.
    const iat = nowSec() + 86_400;
    await expectInvalid(
      await signJwt(rsa, claims(RESOURCE.modern, { iat, exp: iat + MAX_LIFETIME_SEC })),
      'claims',
    );
  });

  it('refuses a token from an issuer that is not configured', async () => {
    await expectInvalid(
      await signJwt(rsa, claims(RESOURCE.modern, { iss: 'https://evil.example.com/' })),
      'unknown_issuer',
    );
    await expectInvalid(
      await signJwt(rsa, claims(RESOURCE.modern, { iss: 'https://idp.example.com' })),
      'unknown_issuer',
    );
  });

  it('refuses a token naming a configured issuer but signed with a key it does not publish', async () => {
    await expectInvalid(await signJwt(staticKey, claims(RESOURCE.modern, { iss: IDP })), 'unknown_key');
    // Even when it borrows the kid of a published key.
    const attacker = await createSigningKey('ES256', ec.kid);
    await expectInvalid(await signJwt(attacker, claims()), 'bad_signature');
  });

  it('refuses a token whose `aud` is wrong or missing', async () => {
    await expectInvalid(await signJwt(rsa, claims('https://elsewhere.example.com/mcp')), 'claims');
    await expectInvalid(await signJwt(rsa, claims(`${RESOURCE.modern}/`)), 'claims');
    const noAud: Record<string, unknown> = claims();
    delete noAud.aud;
    await expectInvalid(await signJwt(rsa, noAud), 'claims');
  });

  it('refuses a token issued for another route’s resource (RFC 8707)', async () => {
    const forLegacy = await signJwt(ec, claims(RESOURCE.legacy));
    await expectInvalid(forLegacy, 'claims', '/modern/mcp', RESOURCE.modern);
    const forModern = await signJwt(ec, claims(RESOURCE.modern));
    await expectAccepted(forModern);
    // Cached after that success, it is still not good on the other route.
    await expectInvalid(forModern, 'claims', '/open/mcp', RESOURCE.open);
  });

  it('refuses a token whose signature or payload was tampered with', async () => {
    const token = await signJwt(rsa, claims());
    const [header, payload, signature] = token.split('.') as [string, string, string];
    const middle = Math.floor(signature.length / 2);
    const flipped = `${signature.slice(0, middle)}${signature[middle] === 'A' ? 'B' : 'A'}${signature.slice(middle + 1)}`;
    await expectInvalid(`${header}.${payload}.${flipped}`, 'bad_signature');
    const forged = Buffer.from(JSON.stringify({ ...claims(), sub: 'admin' })).toString('base64url');
    await expectInvalid(`${header}.${forged}.${signature}`, 'bad_signature');
    // The untouched token is fine.
    await expectAccepted(token);
  });

  it('refuses a token whose kid is unknown even after a refetch, fetching at most once per cooldown under a flood', async () => {
    const stranger = await createSigningKey('ES256', 'not-published');
    const strangers = await Promise.all(
      Array.from({ length: 40 }, async (_, i) =>
        signJwt(stranger, claims(RESOURCE.modern, { iss: ROTATING }), {
          kid: `random-${i}-${Math.random()}`,
        }),
      ),
    );
    // Let any earlier fetch's cooldown pass: the first unknown kid then causes one refetch.
    await new Promise((resolve) => setTimeout(resolve, COOLDOWN_MS + 100));
    const before = rotating.fetches;
    await expectInvalid(await signJwt(stranger, claims(RESOURCE.modern, { iss: ROTATING })), 'unknown_key');
    expect(rotating.fetches).toBe(before + 1);

    const started = Date.now();
    const answers = await Promise.all(strangers.map((token) => callEcho(token)));
    const elapsed = Date.now() - started;
    for (const answer of answers) await expectRefused(answer, 'invalid_credential');
    expect(rotating.fetches - (before + 1)).toBeLessThanOrEqual(Math.floor(elapsed / COOLDOWN_MS));
  });
});

describe('the verified-token cache and key rotation', () => {
  it('keeps answering a verified token after its key is withdrawn, without refetching, until a refetch shows the key left', async () => {
    const token = await signJwt(rotatingKey, claims(RESOURCE.modern, { iss: ROTATING, sub: 'rotor' }));
    await expectAccepted(token);
    const fetched = rotating.fetches;

    // The identity provider rotates: a new key is published and the old one withdrawn.
    const next = await createSigningKey('ES256', 'rotating-2');
    rotating.add(next);
    rotating.remove(rotatingKey.kid);
    for (let i = 0; i < 3; i++) await expectAccepted(token);
    expect(rotating.fetches, 'a cached token costs no JWKS fetch').toBe(fetched);

    // A token from the new key has an unknown kid: once the cooldown allows, the JWKS is refetched…
    await new Promise((resolve) => setTimeout(resolve, COOLDOWN_MS + 100));
    await expectAccepted(await signJwt(next, claims(RESOURCE.modern, { iss: ROTATING, sub: 'rotor' })));
    expect(rotating.fetches).toBe(fetched + 1);
    // …and tokens signed by the withdrawn key stop working at once.
    await expectInvalid(token, 'unknown_key');
    rotatingKey = next;
  });
});

describe('no credential, and the resource metadata', () => {
  it('answers a request without a credential 401 missing_credential, with no error= in the challenge', async () => {
    const before = await authFailures();
    await expectRefused(await callEcho(undefined), 'missing_credential');
    expect((await authFailures()).no_credential).toBe((before.no_credential ?? 0) + 1);
    const legacy = await fetch(`${gateway.url}/legacy/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    await expectRefused(legacy, 'missing_credential', RESOURCE.legacy);
  });

  it('refuses a credential that is not a Bearer token', async () => {
    const answer = await fetch(`${gateway.url}/modern/mcp`, {
      method: 'POST',
      headers: {
        ...echoHeaders(undefined),
        authorization: `Basic ${Buffer.from('a:b').toString('base64')}`,
      },
      body: '{}',
    });
    await expectRefused(answer, 'invalid_credential');
  });

  it('serves RFC 9728 metadata where the challenge points', async () => {
    const answer = await callEcho(undefined);
    const challenge = answer.headers.get('www-authenticate') ?? '';
    const pointed = /resource_metadata="([^"]+)"/.exec(challenge)?.[1];
    expect(pointed).toBe(`${PUBLIC}${WELL_KNOWN}/public/modern`);
    const expected = {
      resource: RESOURCE.modern,
      authorization_servers: [IDP],
      scopes_supported: ['files:read', 'math:use'],
      bearer_methods_supported: ['header'],
    };
    // Served at the resource's own metadata path (what the challenge names) and at the route's.
    for (const path of [new URL(pointed!).pathname, `${WELL_KNOWN}/modern/mcp`]) {
      const metadata = await fetch(`${gateway.url}${path}`);
      expect(metadata.status, path).toBe(200);
      expect(metadata.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await metadata.json()).toEqual(expected);
    }
    const legacy = await fetch(`${gateway.url}${WELL_KNOWN}/legacy/mcp`);
    expect(await legacy.json()).toEqual({
      resource: RESOURCE.legacy,
      authorization_servers: [IDP],
      scopes_supported: [],
      bearer_methods_supported: ['header'],
    });
    expect((await fetch(`${gateway.url}${WELL_KNOWN}/nothing/here`)).status).toBe(404);
    expect(v2.requests.length + v1.requests.length).toBe(seen.v2 + seen.v1);
  });
});

describe('require: any with [jwt, anonymous]', () => {
  it('serves a request without a credential as anonymous', async () => {
    await expectAccepted(undefined, '/open/mcp');
    expect(await gateway.auditRecords()).toContainEqual(
      expect.objectContaining({
        route: '/open/mcp',
        identity: expect.objectContaining({ key: 'anonymous' }),
        status: 200,
      }),
    );
  });

  it('accepts a valid token as that identity, not as anonymous', async () => {
    await expectAccepted(await signJwt(ec, claims(RESOURCE.open, { sub: 'open-user' })), '/open/mcp');
    expect(await gateway.auditRecords()).toContainEqual(
      expect.objectContaining({
        route: '/open/mcp',
        identity: expect.objectContaining({ key: `jwt:${IDP}|open-user` }),
        status: 200,
      }),
    );
  });

  it('refuses a bad token 401, never falling back to anonymous', async () => {
    const now = nowSec();
    const bad = [
      unsignedJwt(claims(RESOURCE.open)),
      await signJwt(ec, claims(RESOURCE.open, { iat: now - 600, exp: now - 60 })),
      await signJwt(ec, claims(RESOURCE.modern)),
      hmacWithPublicKey(rsa, claims(RESOURCE.open)),
    ];
    for (const token of bad) {
      await expectRefused(await callEcho(token, '/open/mcp'), 'invalid_credential', RESOURCE.open);
    }
    const records = await gateway.auditRecords();
    expect(records.filter((r) => r.route === '/open/mcp' && r.status === 401).length).toBeGreaterThanOrEqual(
      bad.length,
    );
  });
});
