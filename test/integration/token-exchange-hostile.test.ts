/**
 * A token endpoint that misbehaves (`upstreamIdentity: { mode: tokenExchange }`): garbage, a
 * "token" that would inject headers, an endless answer, silence, a redirect, an error string that
 * is not an OAuth error code. Each is a precise refusal within the timeout, the upstream never hears
 * of the call, and the gateway keeps serving.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { createSigningKey, nowSec, type SigningKey, signJwt } from '../support/jwks.js';
import { META } from '../support/wire.js';

const ISSUER = 'https://idp.test/';

/** What the hostile token endpoint does at each path. */
const CASES: Record<string, (res: import('node:http').ServerResponse, body: string) => void> = {
  '/garbage': (res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"access_token": '),
  '/html': (res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<html>hello</html>'),
  '/injection': (res) =>
    res
      .writeHead(200, { 'content-type': 'application/json' })
      .end(JSON.stringify({ access_token: 'abc\r\nx-injected: yes', token_type: 'Bearer', expires_in: 60 })),
  '/endless': (res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"access_token":"');
    const chunk = 'a'.repeat(16 * 1024);
    const timer = setInterval(() => {
      if (!res.write(chunk)) return;
    }, 1);
    res.on('close', () => clearInterval(timer));
  },
  '/silent': () => {},
  '/redirect': (res) => res.writeHead(307, { location: 'http://127.0.0.1:9/token' }).end(),
  // A lenient server handing the caller's own token back: it must never go upstream.
  '/echo-subject': (res, body) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        access_token: new URLSearchParams(body).get('subject_token'),
        issued_token_type: 'urn:ietf:params:oauth:token-type:access_token',
        token_type: 'Bearer',
        expires_in: 60,
      }),
    ),
  // RFC 8693: `N_A` is not a token to present as Bearer.
  '/not-an-access-token': (res) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        access_token: 'eyJhbGciOiJub25lIn0.e30.',
        issued_token_type: 'urn:ietf:params:oauth:token-type:id_token',
        token_type: 'N_A',
        expires_in: 60,
      }),
    ),
  // Busy, or refusing the gateway itself as a client: unavailable, not the caller refused.
  '/busy': (res) =>
    res.writeHead(429, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'slow_down' })),
  '/bad-client': (res) =>
    res
      .writeHead(400, { 'content-type': 'application/json' })
      .end(JSON.stringify({ error: 'invalid_client' })),
  '/weird-error': (res) =>
    res
      .writeHead(400, { 'content-type': 'application/json' })
      .end(JSON.stringify({ error: 'bad"</script>\u0000grant', error_description: 'no' })),
};

describe('a hostile token endpoint', () => {
  let signer: SigningKey;
  let upstream: Peer;
  let endpoint: Server;
  let base: string;
  let gateway: TestGateway;

  const call = async (route: string) => {
    const token = await signJwt(signer, {
      iss: ISSUER,
      sub: 'alice',
      aud: `http://127.0.0.1${route}`,
      scope: 'notes:read',
      iat: nowSec(),
      exp: nowSec() + 300,
    });
    const started = performance.now();
    const answer = await fetch(`${gateway.url}${route}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'hi' }, _meta: META },
      }),
    });
    const body = (await answer.json()) as { error?: { data?: Record<string, unknown> } };
    return {
      status: answer.status,
      retryAfter: answer.headers.get('retry-after'),
      data: body.error?.data,
      ms: performance.now() - started,
    };
  };

  beforeAll(async () => {
    signer = await createSigningKey('ES256');
    upstream = await startV2Server({ response: 'json' });
    endpoint = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const behave = CASES[req.url ?? ''];
        if (behave === undefined) res.writeHead(404).end();
        else behave(res, Buffer.concat(chunks).toString('utf8'));
      });
    });
    await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`;
    const routes = Object.keys(CASES)
      .map(
        (path) => `  - route: ${path}
    resource: http://127.0.0.1${path}
    upstream: ${upstream.url}
    upstreamIdentity: { mode: tokenExchange, tokenEndpoint: "${base}${path}", clientId: portcullis, clientSecret: s3cret-value-0123456789, audience: https://up.test, timeoutMs: 1000 }
    authentication: { methods: [jwt] }
    tools: { echo: notes:read }
`,
      )
      .join('');
    gateway = await startTestGateway({
      policy: `identities:
  jwt: [{ issuer: "${ISSUER}", keys: [${JSON.stringify(signer.publicJwk)}], algorithms: [ES256] }]
routes:
${routes}`,
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
    endpoint?.closeAllConnections();
    await new Promise((resolve) => endpoint?.close(resolve));
  });

  it.each([
    '/garbage',
    '/html',
    '/injection',
    '/endless',
    '/silent',
    '/redirect',
    '/echo-subject',
    '/not-an-access-token',
    '/busy',
    '/bad-client',
  ])('%s: 503 idp_unavailable with Retry-After, within the timeout', async (route) => {
    const result = await call(route);
    expect(result.status).toBe(503);
    expect(result.data?.reason).toBe('idp_unavailable');
    expect(result.retryAfter).toBe('5');
    expect(result.ms).toBeLessThan(3_000);
  });

  it('an error string outside the OAuth error charset is passed on as invalid_request, never reflected', async () => {
    const result = await call('/weird-error');
    expect(result.status).toBe(403);
    expect(result.data).toMatchObject({ reason: 'exchange_refused', error: 'invalid_request' });
  });

  it('never reached the upstream, and the gateway serves on', async () => {
    expect(upstream.requests).toHaveLength(0);
    const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(
      /portcullis_token_exchanges_total\{route="\/endless",server="",result="unavailable"\} 1/,
    );
    expect(metrics).not.toContain('s3cret-value');
    const records = await gateway.auditRecords();
    expect(JSON.stringify(records)).not.toContain('s3cret-value');
  });
});
