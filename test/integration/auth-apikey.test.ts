/**
 * API-key authentication end to end (DESIGN.md step 4): real SDK v2 and v1 clients through a real
 * gateway to real SDK servers, keys hashed exactly as in production (`newApiKey`); every refusal
 * with its status, `WWW-Authenticate`, JSON-RPC error — and proof that the upstream saw nothing;
 * damping of repeated failures per client address (peer, or the X-Forwarded-For client of a
 * trusted proxy); and the RFC 9728 metadata documents.
 */
import { generateKeyPairSync } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import {
  connectV1Client,
  connectV2Client,
  type Peer,
  type RecordedRequest,
  startV1Server,
  startV2Server,
  type V1Peer,
} from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { firstText, header } from '../support/inspect.js';
import { type RawAnswer, rawRequest } from '../support/raw-http.js';
import { sleep } from '../support/wait.js';
import { counterValue, META, MODERN, metricsText, modernHeaders } from '../support/wire.js';

/** The main route's public resource, deliberately on another host and path than the gateway's route. */
const RESOURCE = 'https://mcp.example.com/files/mcp';
const RESOURCE_METADATA = 'https://mcp.example.com/.well-known/oauth-protected-resource/files/mcp';
/** The default `challengeScopes`: every scope a single-scope tools/resources/prompts entry names. */
const CHALLENGE_SCOPES = 'notes:admin notes:prompt notes:read';
const MISSING_CHALLENGE = `Bearer scope="${CHALLENGE_SCOPES}", resource_metadata="${RESOURCE_METADATA}"`;
const INVALID_CHALLENGE = `Bearer error="invalid_token", scope="${CHALLENGE_SCOPES}", resource_metadata="${RESOURCE_METADATA}"`;
const ALL_SCOPES = '[notes:read, notes:write, notes:admin, notes:prompt, notes:export]';

/** The main route's policy tables: they also decide the metadata's `scopes_supported`. */
const ROUTE_TABLES = `    tools:
      echo: notes:read
      add: [notes:read, notes:write]
      slow_progress: notes:admin
    resources: { "fixture://**": notes:read }
    prompts: { explain: notes:prompt }
    methods: { "notes/export": notes:export }
`;

const good = newApiKey('pk_test_');
const rotatedOld = newApiKey();
const rotatedNew = newApiKey();
const expiredDay = newApiKey();
const expiredInstant = newApiKey();
const future = newApiKey();
/** Hashed like the others but never configured. */
const unknown = newApiKey('pk_test_');

function echoCall(id: number | string = 1): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name: 'echo', arguments: { text: 'hi' }, _meta: META },
  });
}

/** A modern `tools/call echo` with extra headers (credentials, X-Forwarded-For). */
function callEcho(url: string, headers: Record<string, string> = {}, id: number | string = 1) {
  return fetch(url, {
    method: 'POST',
    headers: { ...modernHeaders('tools/call', 'echo'), ...headers },
    body: echoCall(id),
  });
}

interface RpcError {
  jsonrpc: string;
  id: unknown;
  error: { code: number; message: string; data: { reason: string } };
}

async function expectRpcError(answer: Response, status: number, reason: string, code: number) {
  expect(answer.status).toBe(status);
  expect(answer.headers.get('content-type')).toBe('application/json');
  const body = (await answer.json()) as RpcError;
  // Authentication happens before the body is read: the id cannot be known.
  expect(body).toMatchObject({ jsonrpc: '2.0', id: null, error: { code, data: { reason } } });
  return body;
}

/** Sends raw header lines (a header repeated), which fetch would fold into one. */
function postRaw(
  url: string,
  headers: ReadonlyArray<readonly [string, string | string[]]>,
  body: string,
): Promise<RawAnswer> {
  const { hostname, port, pathname, search } = new URL(url);
  return rawRequest(
    { host: hostname, port, path: `${pathname}${search}`, method: 'POST' },
    { headers, body },
  );
}

/** A GET of `path` exactly as written (no dot-segment resolution), to the origin of `base`. */
function getRaw(base: string, path: string): Promise<RawAnswer> {
  const { hostname, port } = new URL(base);
  return rawRequest({ host: hostname, port, path, method: 'GET' });
}

function expectNoClientCredential(requests: readonly RecordedRequest[]): void {
  for (const request of requests) {
    expect(request.headers, `${request.method} ${JSON.stringify(request.body)}`).not.toHaveProperty(
      'authorization',
    );
    expect(request.headers).not.toHaveProperty('x-api-key');
    const all = JSON.stringify(request.headers);
    for (const key of [good.key, rotatedOld.key, rotatedNew.key, future.key]) expect(all).not.toContain(key);
  }
}

describe('API keys through a real gateway', () => {
  let v2: Peer;
  let v1: V1Peer;
  let gateway: TestGateway;
  let v2Url: string;
  let v1Url: string;
  let openUrl: string;
  let jwtUrl: string;
  /** Upstream requests seen (both peers) before the current test. */
  let seen = 0;
  const upstreamCount = () => v2.requests.length + v1.requests.length;

  beforeAll(async () => {
    v2 = await startV2Server({ response: 'json' });
    v1 = await startV1Server({ response: 'json' });
    const jwk = JSON.stringify({
      ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }),
      kid: 'k1',
      alg: 'ES256',
    });
    gateway = await startTestGateway({
      policy: `authFailures: { limit: 1000/second }
identities:
  apiKeys:
    - { id: ci-bot, hash: "${good.hash}", scopes: ${ALL_SCOPES} }
    - { id: rotating, hash: "${rotatedOld.hash}", scopes: ${ALL_SCOPES} }
    - { id: rotating, hash: "${rotatedNew.hash}", scopes: ${ALL_SCOPES} }
    - { id: expired-day, hash: "${expiredDay.hash}", scopes: ${ALL_SCOPES}, expires: 2020-01-01 }
    - { id: expired-instant, hash: "${expiredInstant.hash}", scopes: ${ALL_SCOPES}, expires: "2021-06-01T12:30:00+02:00" }
    - { id: future, hash: "${future.hash}", scopes: ${ALL_SCOPES}, expires: 2999-01-01 }
  jwt:
    - issuer: https://idp.example.com/
      keys: [${jwk}]
      algorithms: [ES256]
  anonymous: { scopes: [notes:read] }
routes:
  - route: /v2/mcp
    resource: ${RESOURCE}
    upstream: ${v2.url}
    authentication: { methods: [apiKey] }
    authorizationServers: [https://idp.example.com/, https://idp2.example.com/]
${ROUTE_TABLES}
  - route: /v1/mcp
    resource: http://127.0.0.1/v1/mcp
    upstream: ${v1.url}
    authentication: { methods: [apiKey] }
${ROUTE_TABLES}
  - route: /open/mcp
    resource: http://127.0.0.1/open/mcp
    upstream: ${v2.url}
    authentication: { methods: [anonymous, apiKey] }
${ROUTE_TABLES}
  - route: /jwt/mcp
    resource: http://127.0.0.1/jwt/mcp
    upstream: ${v2.url}
    authentication: { methods: [jwt] }
${ROUTE_TABLES}
`,
    });
    v2Url = `${gateway.url}/v2/mcp`;
    v1Url = `${gateway.url}/v1/mcp`;
    openUrl = `${gateway.url}/open/mcp`;
    jwtUrl = `${gateway.url}/jwt/mcp`;
  });
  afterAll(async () => {
    await gateway?.close();
    await v2?.close();
    await v1?.close();
  });
  afterEach(() => {
    seen = upstreamCount();
  });
  const expectUpstreamSawNothing = () => expect(upstreamCount(), 'the upstream must see nothing').toBe(seen);

  describe('accepted keys', () => {
    it.each([
      ['Authorization: Bearer', (key: string) => ({ authorization: `Bearer ${key}` })],
      ['X-API-Key', (key: string) => ({ 'x-api-key': key })],
    ])(
      'serves the SDK v2 client presenting its key in %s, and never forwards the key',
      async (_, headers) => {
        const before = v2.requests.length;
        const client = await connectV2Client(v2Url, { headers: headers(good.key) });
        try {
          expect(client.getNegotiatedProtocolVersion()).toBe(MODERN);
          const { tools } = await client.listTools();
          expect(tools.map((t) => t.name)).toContain('echo');
          expect(firstText(await client.callTool({ name: 'echo', arguments: { text: 'keyed' } }))).toBe(
            'keyed',
          );
        } finally {
          await client.close();
        }
        const received = v2.requests.slice(before);
        expect(
          received.some((r) => (r.body as { method?: string } | undefined)?.method === 'tools/call'),
        ).toBe(true);
        expectNoClientCredential(received);
        for (const request of received) expect(header(request, 'x-forwarded-for')).toBe('127.0.0.1');
      },
    );

    it.each([
      ['Authorization: Bearer', (key: string) => ({ authorization: `Bearer ${key}` })],
      ['X-API-Key', (key: string) => ({ 'x-api-key': key })],
    ])('serves the SDK v1 client (legacy sessions) presenting its key in %s', async (_, headers) => {
      const before = v1.requests.length;
      const client = await connectV1Client(v1Url, { headers: headers(good.key) });
      try {
        const { tools } = await client.listTools();
        expect(tools.map((t) => t.name)).toContain('echo');
        expect(firstText(await client.callTool({ name: 'echo', arguments: { text: 'legacy' } }))).toBe(
          'legacy',
        );
      } finally {
        await client.close();
      }
      const received = v1.requests.slice(before);
      const methods = received.map((r) => (r.body as { method?: string } | undefined)?.method);
      expect(methods).toEqual(expect.arrayContaining(['initialize', 'tools/list', 'tools/call']));
      expectNoClientCredential(received);
    });

    it('accepts both keys of a rotation (two entries sharing an id) with the SDK v2 client', async () => {
      for (const { key } of [rotatedOld, rotatedNew]) {
        const client = await connectV2Client(v2Url, { headers: { authorization: `Bearer ${key}` } });
        try {
          expect(firstText(await client.callTool({ name: 'echo', arguments: { text: 'r' } }))).toBe('r');
        } finally {
          await client.close();
        }
      }
      const records = await gateway.auditRecords();
      const allowed = records.filter((r) => r.decision === 'allow' && r.method === 'tools/call');
      expect(allowed.map((r) => (r.identity as { key?: string } | null)?.key)).toContain('apiKey:rotating');
      expectNoClientCredential(v2.requests);
    });

    it('accepts a key whose bare-date expiry is in the future, and a lower-case bearer scheme', async () => {
      const answer = await callEcho(v2Url, { authorization: `Bearer ${future.key}` });
      expect(answer.status).toBe(200);
      const scheme = await callEcho(v2Url, { authorization: `bearer ${good.key}` });
      expect(scheme.status).toBe(200);
      expectNoClientCredential(v2.requests);
    });

    it('never writes a presented key into the audit stream', async () => {
      await callEcho(v2Url, { 'x-api-key': good.key });
      await callEcho(v2Url, { 'x-api-key': unknown.key });
      const text = JSON.stringify(await gateway.auditRecords());
      for (const { key } of [good, unknown, rotatedOld, rotatedNew, future]) expect(text).not.toContain(key);
    });
  });

  describe('refused keys', () => {
    it.each([
      ['an unknown key', unknown.key],
      ['a key whose bare-date expiry (00:00Z) has passed', expiredDay.key],
      ['a key whose RFC 3339 expiry has passed', expiredInstant.key],
      ['an empty-looking key', '-'],
    ])('refuses %s with 401 invalid_credential, in either header', async (_, key) => {
      for (const credential of [{ authorization: `Bearer ${key}` }, { 'x-api-key': key }]) {
        const answer = await callEcho(v2Url, credential);
        expect(answer.headers.get('www-authenticate')).toBe(INVALID_CHALLENGE);
        await expectRpcError(answer, 401, 'invalid_credential', -31091);
      }
      expectUpstreamSawNothing();
    });

    it('refuses a request without a credential with 401 missing_credential, and no error= in the challenge', async () => {
      for (const method of ['POST', 'GET', 'DELETE'] as const) {
        const answer =
          method === 'POST'
            ? await callEcho(v2Url)
            : await fetch(v2Url, {
                method,
                headers: { accept: 'text/event-stream', 'mcp-protocol-version': '2025-11-25' },
              });
        const challenge = answer.headers.get('www-authenticate');
        expect(challenge, method).toBe(MISSING_CHALLENGE);
        expect(challenge).not.toContain('error=');
        await expectRpcError(answer, 401, 'missing_credential', -31091);
      }
      expectUpstreamSawNothing();
    });

    it('refuses two credentials at once (Authorization and X-API-Key, both valid) with 401', async () => {
      const answer = await callEcho(v2Url, { authorization: `Bearer ${good.key}`, 'x-api-key': future.key });
      expect(answer.headers.get('www-authenticate')).toBe(INVALID_CHALLENGE);
      await expectRpcError(answer, 401, 'invalid_credential', -31091);
      expectUpstreamSawNothing();
    });

    it.each([
      ['authorization', [`Bearer ${good.key}`, `Bearer ${good.key}`]],
      ['authorization', [`Bearer ${good.key}`, `Bearer ${future.key}`]],
      ['x-api-key', [good.key, good.key]],
      ['x-api-key', [unknown.key, good.key]],
    ])('refuses the %s header sent twice with 401', async (name, values) => {
      const answer = await postRaw(
        v2Url,
        [...Object.entries(modernHeaders('tools/call', 'echo')), [name, values]],
        echoCall(),
      );
      expect(answer.status).toBe(401);
      expect(answer.headers['www-authenticate']).toBe(INVALID_CHALLENGE);
      expect(JSON.parse(answer.body)).toMatchObject({
        error: { code: -31091, data: { reason: 'invalid_credential' } },
      });
      expectUpstreamSawNothing();
    });

    it.each([
      ['Basic', `Basic ${Buffer.from(`user:${good.key}`).toString('base64')}`],
      ['Token', `Token ${good.key}`],
      ['ApiKey', `ApiKey ${good.key}`],
      ['no scheme', good.key],
      ['Bearer without a value', 'Bearer'],
      ['Bearer glued to the key', `Bearer${good.key}`],
      ['two Bearer values folded into one header', `Bearer ${good.key}, Bearer ${good.key}`],
    ])('refuses an Authorization header that is not one Bearer value (%s) with 401', async (_, value) => {
      const answer = await callEcho(v2Url, { authorization: value });
      expect(answer.headers.get('www-authenticate')).toBe(INVALID_CHALLENGE);
      await expectRpcError(answer, 401, 'invalid_credential', -31091);
      expectUpstreamSawNothing();
    });

    it.each(['api_key', 'access_token', 'apikey', 'token'])(
      'refuses a credential in the query string (?%s=) with 400, even beside a valid header key',
      async (param) => {
        for (const headers of [{}, { authorization: `Bearer ${good.key}` }]) {
          const answer = await callEcho(`${v2Url}?${param}=${encodeURIComponent(good.key)}`, headers);
          expect(answer.headers.get('www-authenticate')).toBeNull();
          await expectRpcError(answer, 400, 'credential_in_query', -32600);
        }
        expectUpstreamSawNothing();
      },
    );

    it('refuses a failing key on a route that also lists anonymous with 401, never serving it anonymously', async () => {
      const anonymous = await callEcho(openUrl);
      expect(anonymous.status).toBe(200);
      seen = upstreamCount();
      for (const credential of [
        { authorization: `Bearer ${unknown.key}` },
        { 'x-api-key': unknown.key },
        { 'x-api-key': expiredDay.key },
        { authorization: `Basic ${good.key}` },
      ]) {
        const answer = await callEcho(openUrl, credential);
        expect(answer.headers.get('www-authenticate')).toContain('error="invalid_token"');
        await expectRpcError(answer, 401, 'invalid_credential', -31091);
      }
      expectUpstreamSawNothing();
      const keyed = await callEcho(openUrl, { 'x-api-key': good.key });
      expect(keyed.status).toBe(200);
      const records = await gateway.auditRecords();
      expect(records.at(-1)).toMatchObject({
        route: '/open/mcp',
        identity: expect.objectContaining({ key: 'apiKey:ci-bot' }),
      });
    });

    it('refuses a valid API key on a route that accepts only JWTs with 401', async () => {
      for (const credential of [{ authorization: `Bearer ${good.key}` }, { 'x-api-key': good.key }]) {
        const answer = await callEcho(jwtUrl, credential);
        expect(answer.headers.get('www-authenticate')).toBe(
          // No authorizationServers on this route: no resource_metadata to send clients nowhere.
          `Bearer error="invalid_token", scope="${CHALLENGE_SCOPES}"`,
        );
        await expectRpcError(answer, 401, 'invalid_credential', -31091);
      }
      expectUpstreamSawNothing();
    });

    it('counts refusals in portcullis_auth_failures_total by reason, without naming the key', async () => {
      const count = (text: string, reason: string) =>
        counterValue(text, 'portcullis_auth_failures_total', { route: '/v2/mcp', method: 'apiKey', reason });
      const before = await metricsText(gateway);
      await callEcho(v2Url, { 'x-api-key': unknown.key });
      await callEcho(v2Url, { 'x-api-key': expiredDay.key });
      await callEcho(v2Url, { authorization: `Bearer ${expiredInstant.key}` });
      const text = await metricsText(gateway);
      expect(count(text, 'unknown') - count(before, 'unknown')).toBe(1);
      expect(count(text, 'expired') - count(before, 'expired')).toBe(2);
      expect(text).not.toContain(unknown.key);
      expectUpstreamSawNothing();
    });
  });

  describe('RFC 9728 protected resource metadata', () => {
    const expected = {
      resource: RESOURCE,
      authorization_servers: ['https://idp.example.com/', 'https://idp2.example.com/'],
      scopes_supported: ['notes:admin', 'notes:export', 'notes:prompt', 'notes:read', 'notes:write'],
      bearer_methods_supported: ['header'],
    };

    it.each([
      ['the resource’s own path', '/.well-known/oauth-protected-resource/files/mcp'],
      ['the route’s path', '/.well-known/oauth-protected-resource/v2/mcp'],
    ])('serves the route’s document at %s without a credential', async (_, path) => {
      const answer = await fetch(`${gateway.url}${path}`);
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toBe('application/json');
      expect(await answer.json()).toEqual(expected);
      expectUpstreamSawNothing();
    });

    it('the 401 challenge points at a URL whose path serves that document', async () => {
      const answer = await callEcho(v2Url);
      const metadata = /resource_metadata="([^"]+)"/.exec(answer.headers.get('www-authenticate') ?? '')?.[1];
      expect(metadata).toBe(RESOURCE_METADATA);
      const document = await fetch(`${gateway.url}${new URL(metadata!).pathname}`);
      expect(((await document.json()) as { resource: string }).resource).toBe(RESOURCE);
    });

    it('serves no document for a route without authorizationServers, and its challenges name none', async () => {
      for (const route of ['jwt', 'v1', 'open']) {
        const answer = await fetch(`${gateway.url}/.well-known/oauth-protected-resource/${route}/mcp`);
        expect(answer.status, route).toBe(404);
      }
      const challenge = (await callEcho(v1Url)).headers.get('www-authenticate');
      expect(challenge).toBe(`Bearer scope="${CHALLENGE_SCOPES}"`);
      expectUpstreamSawNothing();
    });

    it.each([
      '/.well-known/oauth-protected-resource',
      '/.well-known/oauth-protected-resource/',
      '/.well-known/oauth-protected-resource/nope/mcp',
      '/.well-known/oauth-protected-resource/v2/mcp/',
      '/.well-known/oauth-protected-resource/V2/mcp',
      '/.well-known/oauth-protected-resource/%76%32/mcp',
      '/.well-known/oauth-authorization-server',
      '/.well-known/openid-configuration',
      '/.well-known/oauth-protected-resource/files/mcp/../../v2/mcp',
    ])('answers 404 for %s', async (path) => {
      // Sent as written: fetch would resolve the dot-segments before they reach the gateway.
      const answer = await getRaw(`${gateway.url}${path}`, path);
      expect(answer.status).toBe(404);
      expect(JSON.parse(answer.body)).toEqual({ error: 'not_found', message: 'Not found' });
      expectUpstreamSawNothing();
    });

    it('answers 404 to a POST on a metadata path', async () => {
      const answer = await fetch(`${gateway.url}/.well-known/oauth-protected-resource/v2/mcp`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      });
      expect(answer.status).toBe(404);
      expectUpstreamSawNothing();
    });
  });
});

describe('damping repeated authentication failures', () => {
  let upstream: Peer;
  beforeAll(async () => {
    upstream = await startV2Server({ response: 'json' });
  });
  afterAll(async () => {
    await upstream?.close();
  });

  async function dampingGateway(top: string): Promise<TestGateway> {
    return startTestGateway({
      policy: `${top}
authFailures: { limit: 3/second }
identities:
  apiKeys:
    - { id: ci-bot, hash: "${good.hash}", scopes: ${ALL_SCOPES} }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
${ROUTE_TABLES}`,
    });
  }

  async function expectDamped(answer: Response): Promise<number> {
    const retryAfter = Number(answer.headers.get('retry-after'));
    expect(Number.isInteger(retryAfter) && retryAfter >= 1, `Retry-After ${retryAfter}`).toBe(true);
    expect(answer.headers.get('www-authenticate')).toBeNull();
    const body = await expectRpcError(answer, 429, 'too_many_failures', -31093);
    expect(body.error.message).toBe('Too many failed authentication attempts');
    return retryAfter;
  }

  it('answers 429 too_many_failures after the budget of failures, even to a good key, then recovers', async () => {
    const gateway = await dampingGateway('');
    try {
      const url = `${gateway.url}/mcp`;
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) {
        const answer = await callEcho(url, { 'x-api-key': unknown.key });
        statuses.push(answer.status);
        await answer.body?.cancel();
      }
      // 3/second: three failures are counted; the fourth attempt is already over the budget.
      expect(statuses).toEqual([401, 401, 401, 429]);
      const before = upstream.requests.length;
      const retryAfter = await expectDamped(await callEcho(url, { 'x-api-key': good.key }));
      expect(upstream.requests.length, 'the upstream must see nothing').toBe(before);

      const text = await metricsText(gateway);
      expect(
        counterValue(text, 'portcullis_auth_failures_total', {
          route: '/mcp',
          method: 'apiKey',
          reason: 'unknown',
        }),
      ).toBe(3);
      const audit = await gateway.auditRecords();
      expect(audit.filter((r) => r.reason === 'too_many_failures')).toHaveLength(2);
      expect(audit.find((r) => r.reason === 'too_many_failures')).toMatchObject({
        decision: 'rate-limited',
        status: 429,
      });

      await sleep(retryAfter * 1000);
      const after = await callEcho(url, { 'x-api-key': good.key });
      expect(after.status).toBe(200);
      expect(upstream.requests.length).toBe(before + 1);
    } finally {
      await gateway.close();
    }
  });

  it('does not count requests without a credential: that is how clients discover the metadata', async () => {
    const gateway = await dampingGateway('');
    try {
      const url = `${gateway.url}/mcp`;
      for (let i = 0; i < 6; i++) {
        const answer = await callEcho(url, {});
        expect(answer.status).toBe(401);
        await answer.body?.cancel();
      }
      const answer = await callEcho(url, { 'x-api-key': good.key });
      expect(answer.status).toBe(200);
      await answer.body?.cancel();
    } finally {
      await gateway.close();
    }
  });

  it('damps by the peer when it is not a trusted proxy: rotating X-Forwarded-For does not dodge it', async () => {
    const gateway = await dampingGateway('');
    try {
      const url = `${gateway.url}/mcp`;
      for (let i = 1; i <= 3; i++) {
        const answer = await callEcho(url, {
          'x-api-key': unknown.key,
          'x-forwarded-for': `198.51.100.${i}`,
        });
        expect(answer.status).toBe(401);
        await answer.body?.cancel();
      }
      const before = upstream.requests.length;
      await expectDamped(await callEcho(url, { 'x-api-key': good.key, 'x-forwarded-for': '198.51.100.99' }));
      await expectDamped(await callEcho(url, { 'x-api-key': good.key }));
      expect(upstream.requests.length, 'the upstream must see nothing').toBe(before);
    } finally {
      await gateway.close();
    }
  });

  it('sends the upstream only the peer as X-Forwarded-For when the peer is not trusted', async () => {
    const gateway = await dampingGateway('');
    try {
      const answer = await callEcho(`${gateway.url}/mcp`, {
        'x-api-key': good.key,
        'x-forwarded-for': '203.0.113.66, 10.0.0.1',
      });
      expect(answer.status).toBe(200);
      expect(header(upstream.requests.at(-1)!, 'x-forwarded-for')).toBe('127.0.0.1');
    } finally {
      await gateway.close();
    }
  });

  it('damps by the X-Forwarded-For client when the peer is a trusted proxy', async () => {
    const gateway = await dampingGateway('trustedProxies: [127.0.0.1/32]');
    try {
      const url = `${gateway.url}/mcp`;
      for (let i = 0; i < 3; i++) {
        const answer = await callEcho(url, { 'x-api-key': unknown.key, 'x-forwarded-for': '203.0.113.1' });
        expect(answer.status).toBe(401);
        await answer.body?.cancel();
      }
      const before = upstream.requests.length;
      await expectDamped(await callEcho(url, { 'x-api-key': good.key, 'x-forwarded-for': '203.0.113.1' }));
      // Entries the client wrote left of what the proxy appended are never read.
      await expectDamped(
        await callEcho(url, { 'x-api-key': good.key, 'x-forwarded-for': '192.0.2.77, 203.0.113.1' }),
      );
      expect(upstream.requests.length, 'the upstream must see nothing').toBe(before);

      // Another client behind the same proxy, and the proxy itself, are not damped.
      const other = await callEcho(url, { 'x-api-key': good.key, 'x-forwarded-for': '203.0.113.2' });
      expect(other.status).toBe(200);
      const direct = await callEcho(url, { 'x-api-key': good.key });
      expect(direct.status).toBe(200);
      expect(upstream.requests.length).toBe(before + 2);
    } finally {
      await gateway.close();
    }
  });

  it('extends a trusted proxy’s X-Forwarded-For chain with the peer’s address upstream', async () => {
    const gateway = await dampingGateway('trustedProxies: [127.0.0.1/32]');
    try {
      const url = `${gateway.url}/mcp`;
      const direct = await callEcho(url, { 'x-api-key': good.key });
      expect(direct.status).toBe(200);
      expect(header(upstream.requests.at(-1)!, 'x-forwarded-for')).toBe('127.0.0.1');

      for (const chain of ['203.0.113.2', '192.0.2.1, 203.0.113.2']) {
        const answer = await callEcho(url, { 'x-api-key': good.key, 'x-forwarded-for': chain });
        expect(answer.status).toBe(200);
        expect(header(upstream.requests.at(-1)!, 'x-forwarded-for')).toBe(`${chain}, 127.0.0.1`);
      }
    } finally {
      await gateway.close();
    }
  });
});
