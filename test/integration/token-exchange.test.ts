/**
 * Identity to the upstream by RFC 8693 token exchange (`upstreamIdentity: { mode: tokenExchange }`)
 * against a real authorization server: `oidc-provider` with a token-exchange grant registered as
 * test code (test/support/token-exchange-provider.ts). The upstream, built with the official SDK
 * v2, accepts only tokens the authorization server says are active (introspection) and reports
 * whose they are. The caller's own token goes to the token endpoint and never upstream.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, McpServer } from '@modelcontextprotocol/server';
import type { JWK } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectV1Client, listenRecording, type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { createSigningKey, type JwksServer, nowSec, signJwt, startJwksServer } from '../support/jwks.js';
import {
  type ExchangeServer,
  startTokenExchangeProvider,
  TOKEN_EXCHANGE_GRANT,
} from '../support/token-exchange-provider.js';
import { sleep } from '../support/wait.js';
import { META } from '../support/wire.js';

const SUBJECT_ISSUER = 'https://idp.test/';
const AUDIENCE = 'https://notes.upstream';
const UPSTREAM_CLIENT = { id: 'notes-upstream', secret: 'notes-upstream-secret-0123456789' };
const GATEWAY_SECRET = 'portcullis-client-secret-0123456789';

/** An upstream that serves only callers whose token the authorization server says is active. */
async function startIntrospectingUpstream(as: () => ExchangeServer): Promise<Peer & { refused: number }> {
  const handler = createMcpHandler(
    (ctx) => {
      const server = new McpServer(
        { name: 'introspecting', version: '1.0.0' },
        { capabilities: { tools: {} } },
      );
      server.registerTool('whoami', { description: 'What introspection said' }, async () => ({
        content: [{ type: 'text', text: JSON.stringify(ctx.authInfo?.extra?.introspection ?? null) }],
      }));
      return server;
    },
    { responseMode: 'json', legacy: 'stateless', keepAliveMs: 0 },
  );
  const node = toNodeHandler(handler);
  const state = { refused: 0 };
  const peer = await listenRecording(
    async (req, res, body) => {
      const header = req.headers.authorization;
      const token = typeof header === 'string' && header.startsWith('Bearer ') ? header.slice(7) : '';
      const introspection =
        token === ''
          ? { active: false }
          : await as().introspect(token, UPSTREAM_CLIENT.id, UPSTREAM_CLIENT.secret);
      if (introspection.active !== true) {
        state.refused++;
        res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end();
        return;
      }
      (req as typeof req & { auth: unknown }).auth = {
        token,
        clientId: String(introspection.client_id),
        scopes: String(introspection.scope ?? '').split(' '),
        extra: { introspection },
      };
      await node(req as never, res, body);
    },
    () => handler.close(),
  );
  return Object.assign(peer, state);
}

function call(base: string, route: string, token: string, tool = 'whoami'): Promise<Response> {
  return fetch(`${base}${route}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': tool,
      authorization: `Bearer ${token}`,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 7,
      method: 'tools/call',
      params: { name: tool, arguments: {}, _meta: META },
    }),
  });
}

describe('upstreamIdentity: mode tokenExchange (RFC 8693)', () => {
  let idpKey: Awaited<ReturnType<typeof createSigningKey>>;
  let idp: JwksServer;
  let as: ExchangeServer;
  let upstream: Peer & { refused: number };
  let plain: Peer;
  let gateway: TestGateway;
  let clientKeyFile: string;

  const tokenFor = (sub: string, route = '/mcp', extra: Record<string, unknown> = {}) =>
    signJwt(idpKey, {
      iss: SUBJECT_ISSUER,
      sub,
      aud: `http://127.0.0.1${route}`,
      scope: 'notes:read notes:write',
      iat: nowSec(),
      exp: nowSec() + 600,
      ...extra,
    });

  const route = (path: string, identity: string) => `  - route: ${path}
    resource: http://127.0.0.1${path}
    upstream: ${upstream.url}
    upstreamIdentity: ${identity}
    authentication: { methods: [jwt] }
    tools: { whoami: notes:read }
`;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-exchange-'));
    const clientKey = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    clientKeyFile = join(dir, 'client.pem');
    writeFileSync(clientKeyFile, clientKey.privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const clientJwk = { ...(clientKey.publicKey.export({ format: 'jwk' }) as JWK), alg: 'ES256', use: 'sig' };
    idpKey = await createSigningKey('ES256');
    idp = await startJwksServer([idpKey]);
    as = await startTokenExchangeProvider({
      subjectIssuer: SUBJECT_ISSUER,
      subjectKeys: [idpKey.publicJwk],
      audiences: [AUDIENCE],
      clients: [
        {
          client_id: 'portcullis',
          client_secret: GATEWAY_SECRET,
          grant_types: [TOKEN_EXCHANGE_GRANT],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_basic',
        },
        {
          client_id: 'portcullis-jwt',
          grant_types: [TOKEN_EXCHANGE_GRANT],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'private_key_jwt',
          token_endpoint_auth_signing_alg: 'ES256',
          jwks: { keys: [clientJwk] },
        },
        {
          client_id: UPSTREAM_CLIENT.id,
          client_secret: UPSTREAM_CLIENT.secret,
          grant_types: [],
          response_types: [],
          redirect_uris: [],
          token_endpoint_auth_method: 'client_secret_basic',
        },
      ],
    });
    upstream = await startIntrospectingUpstream(() => as);
    plain = await startV2Server({ response: 'json', legacy: 'stateless' });
    const secret = `{ mode: tokenExchange, tokenEndpoint: "${as.tokenEndpoint}", clientId: portcullis, clientSecret: "${GATEWAY_SECRET}", audience: "${AUDIENCE}" }`;
    gateway = await startTestGateway({
      policy: `identities:
  jwt:
    - { issuer: "${SUBJECT_ISSUER}", jwksUri: "${idp.url}", algorithms: [ES256] }
routes:
${route('/mcp', secret)}${route('/pkjwt', `{ mode: tokenExchange, tokenEndpoint: "${as.tokenEndpoint}", issuer: "${as.issuer}", clientId: portcullis-jwt, clientKey: "${clientKeyFile}", audience: "${AUDIENCE}", scopes: call }`)}${route('/elsewhere', `{ mode: tokenExchange, tokenEndpoint: "${as.tokenEndpoint}", clientId: portcullis, clientSecret: "${GATEWAY_SECRET}", audience: "https://unknown.upstream" }`)}${route('/down', `{ mode: tokenExchange, tokenEndpoint: "http://127.0.0.1:9/token", clientId: portcullis, clientSecret: "${GATEWAY_SECRET}", audience: "${AUDIENCE}", timeoutMs: 1000 }`)}  - route: /fed
    resource: http://127.0.0.1/fed
    servers:
      a: { upstream: "${upstream.url}", upstreamIdentity: ${secret} }
      b: { upstream: "${plain.url}" }
    authentication: { methods: [jwt] }
    tools: { a__whoami: notes:read, b__echo: notes:read }
  - route: /fednarrow
    resource: http://127.0.0.1/fednarrow
    servers:
      a: { upstream: "${upstream.url}", upstreamIdentity: ${secret.replace(' }', ', scopes: call }')} }
    authentication: { methods: [jwt] }
    tools: { a__whoami: notes:read }
  - route: /all
    resource: http://127.0.0.1/all
    upstream: ${upstream.url}
    upstreamIdentity: ${secret}
    authentication: { methods: [jwt], require: all }
    tools: { whoami: notes:read }
`,
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
    await plain?.close();
    await as?.close();
    await idp?.close();
  });

  it("exchanges the caller's token for one meant for the upstream, which the upstream accepts; the caller's never reaches it", async () => {
    const token = await tokenFor('user-7');
    const before = as.exchanges.length;
    const answer = await call(gateway.url, '/mcp', token);
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { result: { content: { text: string }[] } };
    const seen = JSON.parse(body.result.content[0]?.text ?? 'null') as Record<string, unknown>;
    expect(seen).toMatchObject({
      active: true,
      sub: 'user-7',
      client_id: 'portcullis',
      scope: 'notes:read notes:write',
    });
    const exchange = as.exchanges.at(before);
    expect(exchange).toMatchObject({ clientId: 'portcullis', subjectToken: token, audience: AUDIENCE });
    expect(upstream.requests.at(-1)?.headers.authorization).toBe(`Bearer ${exchange?.issued}`);
    expect(JSON.stringify(upstream.requests)).not.toContain(token);
  });

  it('caches the issued token per subject token: a second call is not exchanged again, another caller is', async () => {
    const token = await tokenFor('user-8');
    expect((await call(gateway.url, '/mcp', token)).status).toBe(200);
    const after = as.exchanges.length;
    expect((await call(gateway.url, '/mcp', token)).status).toBe(200);
    expect(as.exchanges.length).toBe(after);
    expect((await call(gateway.url, '/mcp', await tokenFor('user-9'))).status).toBe(200);
    expect(as.exchanges.length).toBe(after + 1);
  });

  it("never uses an issued token past the subject token's own exp, though the server issued it for longer", async () => {
    // The authorization server issues for 300 s; the subject token expires in 5.
    const token = await tokenFor('user-late', '/mcp', { exp: nowSec() + 5 });
    const before = as.exchanges.length;
    expect((await call(gateway.url, '/mcp', token)).status).toBe(200);
    expect((await call(gateway.url, '/mcp', token)).status).toBe(200);
    expect(as.exchanges.length).toBe(before + 1);
    // Re-exchanged with half of what the subject token has left: never handed out past its exp.
    await sleep(3_100);
    expect((await call(gateway.url, '/mcp', token)).status).toBe(200);
    expect(as.exchanges.length).toBe(before + 2);
  });

  it("authenticates to the token endpoint by private_key_jwt and asks for the call's scopes only", async () => {
    const token = await tokenFor('user-10', '/pkjwt');
    const answer = await call(gateway.url, '/pkjwt', token);
    expect(answer.status).toBe(200);
    expect(as.exchanges.at(-1)).toMatchObject({ clientId: 'portcullis-jwt', scope: 'notes:read' });
  });

  it('a refused exchange is 403 exchange_refused with the server’s error; the upstream never hears of the call', async () => {
    const requests = upstream.requests.length;
    const blocked = await call(gateway.url, '/mcp', await tokenFor('blocked'));
    expect(blocked.status).toBe(403);
    const body = (await blocked.json()) as { error: { code: number; data: Record<string, unknown> } };
    expect(body.error.code).toBe(-31092);
    expect(body.error.data).toMatchObject({ reason: 'exchange_refused', error: 'invalid_grant' });
    const foreign = await call(gateway.url, '/elsewhere', await tokenFor('user-11', '/elsewhere'));
    expect(foreign.status).toBe(403);
    expect(((await foreign.json()) as { error: { data: Record<string, unknown> } }).error.data.error).toBe(
      'invalid_target',
    );
    expect(upstream.requests.length).toBe(requests);
    const records = await gateway.auditRecords();
    expect(records.filter((r) => r.reason === 'exchange_refused').length).toBeGreaterThanOrEqual(2);
    const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    expect(metrics).toMatch(
      /portcullis_token_exchanges_total\{route="\/mcp",server="",result="refused"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /portcullis_token_exchanges_total\{route="\/mcp",server="",result="issued"\} [1-9]/,
    );
  });

  it('an authorization server that cannot be reached, or answers 503, is 503 idp_unavailable with Retry-After', async () => {
    const requests = upstream.requests.length;
    const down = await call(gateway.url, '/down', await tokenFor('user-12', '/down'));
    expect(down.status).toBe(503);
    expect(down.headers.get('retry-after')).toBe('5');
    expect(((await down.json()) as { error: { data: Record<string, unknown> } }).error.data.reason).toBe(
      'idp_unavailable',
    );
    as.setFailing(true);
    try {
      const failing = await call(gateway.url, '/mcp', await tokenFor('user-13'));
      expect(failing.status).toBe(503);
    } finally {
      as.setFailing(false);
    }
    expect(upstream.requests.length).toBe(requests);
    // Not cached: the next call is exchanged and served.
    expect((await call(gateway.url, '/mcp', await tokenFor('user-13'))).status).toBe(200);
  });

  it('per server on a federated route: server a gets the exchanged token, server b no Authorization, neither the caller’s', async () => {
    const token = await tokenFor('user-15', '/fed');
    const answer = await call(gateway.url, '/fed', token, 'a__whoami');
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { result: { content: { text: string }[] } };
    expect(JSON.parse(body.result.content[0]?.text ?? 'null')).toMatchObject({
      active: true,
      sub: 'user-15',
    });
    const echo = await fetch(`${gateway.url}/fed`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'b__echo',
        authorization: `Bearer ${token}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 8,
        method: 'tools/call',
        params: { name: 'b__echo', arguments: { text: 'hi' }, _meta: META },
      }),
    });
    expect(echo.status).toBe(200);
    expect(plain.requests.length).toBeGreaterThan(0);
    for (const request of plain.requests) expect(request.headers.authorization).toBeUndefined();
    expect(JSON.stringify([...upstream.requests, ...plain.requests])).not.toContain(token);
  });

  it("scopes: call on a federated server asks for the call's scopes; require: all with jwt alone is exchanged too", async () => {
    const narrow = await call(
      gateway.url,
      '/fednarrow',
      await tokenFor('user-16', '/fednarrow'),
      'a__whoami',
    );
    expect(narrow.status).toBe(200);
    expect(as.exchanges.at(-1)).toMatchObject({ scope: 'notes:read' });
    const before = as.exchanges.length;
    const all = await call(gateway.url, '/all', await tokenFor('user-17', '/all'));
    expect(all.status).toBe(200);
    const body = (await all.json()) as { result: { content: { text: string }[] } };
    expect(JSON.parse(body.result.content[0]?.text ?? 'null')).toMatchObject({
      active: true,
      sub: 'user-17',
    });
    expect(as.exchanges.length).toBe(before + 1);
  });

  it('an SDK v1 client on the legacy protocol: every request of its session carries the exchanged token', async () => {
    const token = await tokenFor('user-14');
    const client = await connectV1Client(`${gateway.url}/mcp`, {
      headers: { authorization: `Bearer ${token}` },
    });
    try {
      const result = await client.callTool({ name: 'whoami', arguments: {} });
      const text = (result.content as { text: string }[])[0]?.text ?? 'null';
      expect(JSON.parse(text)).toMatchObject({ active: true, sub: 'user-14' });
    } finally {
      await client.close();
    }
    expect(JSON.stringify(upstream.requests)).not.toContain(token);
  });
});
