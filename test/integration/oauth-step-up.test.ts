/**
 * The step-up challenge as the official SDK v2 client acts on it (issue 13, class 13): after a
 * 403 `insufficient_scope` the client re-authorizes with the challenge's `scope`. When its token
 * response carried no `scope` (as many authorization servers answer), the SDK's own union has
 * nothing to add, so the challenge alone decides what the client asks for: it must name the
 * scopes the call needs together with those the token already holds, or the client loses them.
 *
 * The gateway is real and serves the RFC 9728 document the SDK discovers; the authorization server
 * is only its metadata (handed to the SDK as cached discovery state), since the flow is observed at
 * the authorization URL the SDK builds, before any browser would open it.
 */
import { generateKeyPairSync } from 'node:crypto';
import {
  type OAuthClientProvider,
  Client as V2Client,
  StreamableHTTPClientTransport as V2ClientTransport,
} from '@modelcontextprotocol/client';
import { exportJWK, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { freePort, startTestGateway, type TestGateway } from '../support/gateway.js';
import { firstText } from '../support/inspect.js';
import { nowSec } from '../support/jwks.js';

const ISSUER = 'https://as.example.com/';
const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

let upstream: Peer;
let gateway: TestGateway;
let resource: string;

beforeAll(async () => {
  upstream = await startV2Server({ response: 'json' });
  const port = await freePort();
  resource = `http://127.0.0.1:${port}/mcp`;
  const jwk = JSON.stringify({ ...(await exportJWK(publicKey)), kid: 'as-1', alg: 'ES256' });
  gateway = await startTestGateway({
    port,
    policy: `identities:
  jwt:
    - issuer: ${ISSUER}
      keys: [${jwk}]
      algorithms: [ES256]
routes:
  - route: /mcp
    resource: ${resource}
    upstream: ${upstream.url}
    authentication: { methods: [jwt] }
    authorizationServers: [${ISSUER}]
    tools: { echo: files:read, add: math:admin }
`,
  });
});
afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});

function token(scope: string): Promise<string> {
  const now = nowSec();
  return new SignJWT({ iss: ISSUER, aud: resource, sub: 'alice', scope, iat: now, exp: now + 600 })
    .setProtectedHeader({ alg: 'ES256', kid: 'as-1' })
    .sign(privateKey);
}

/** An OAuth provider holding `accessToken` (its token response had no `scope`); records redirects. */
function provider(accessToken: string, redirects: URL[]): OAuthClientProvider {
  return {
    get redirectUrl() {
      return 'http://127.0.0.1/callback';
    },
    get clientMetadata() {
      return { redirect_uris: ['http://127.0.0.1/callback'], client_name: 'step-up test' };
    },
    clientInformation: () => ({ client_id: 'step-up-test' }),
    tokens: () => ({ access_token: accessToken, token_type: 'Bearer' }),
    saveTokens: () => undefined,
    redirectToAuthorization: (url) => {
      redirects.push(url);
    },
    saveCodeVerifier: () => undefined,
    codeVerifier: () => 'unused',
    discoveryState: () => ({
      authorizationServerUrl: ISSUER,
      authorizationServerMetadata: {
        issuer: ISSUER,
        authorization_endpoint: `${ISSUER}authorize`,
        token_endpoint: `${ISSUER}token`,
        response_types_supported: ['code'],
        code_challenge_methods_supported: ['S256'],
      },
    }),
    saveDiscoveryState: () => undefined,
  };
}

describe('step-up with the official SDK v2 client', () => {
  it('asks the authorization server for the needed scope together with the scope it already had', async () => {
    const redirects: URL[] = [];
    const client = new V2Client(
      { name: 'step-up-client', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    await client.connect(
      new V2ClientTransport(new URL(`${gateway.url}/mcp`), {
        authProvider: provider(await token('files:read'), redirects),
      }),
    );
    try {
      expect(firstText(await client.callTool({ name: 'echo', arguments: { text: 'before' } }))).toBe(
        'before',
      );
      const before = upstream.requests.length;
      // `add` needs math:admin: the SDK steps up and ends at the authorization URL (no browser here).
      await expect(client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).rejects.toThrow();
      expect(
        upstream.requests.slice(before).some((r) => (r.body as { method?: string })?.method === 'tools/call'),
        'the denied call never reached the upstream',
      ).toBe(false);
      expect(redirects).toHaveLength(1);
      const asked = redirects[0]!;
      expect(asked.origin + asked.pathname).toBe(`${ISSUER}authorize`);
      // The needed scope and the one held: after this step-up `echo` still works.
      expect(asked.searchParams.get('scope')?.split(' ').sort()).toEqual(['files:read', 'math:admin']);
      expect(asked.searchParams.get('resource')).toBe(resource);
      // The gateway kept serving the same client.
      expect(firstText(await client.callTool({ name: 'echo', arguments: { text: 'after' } }))).toBe('after');
    } finally {
      await client.close();
    }
  });

  it('sends the exact step-up challenge on the wire', async () => {
    const answer = await fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
        authorization: `Bearer ${await token('files:read notes:extra')}`,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'add' } }),
    });
    expect(answer.status).toBe(403);
    expect(answer.headers.get('www-authenticate')).toBe(
      `Bearer error="insufficient_scope", scope="math:admin files:read notes:extra", resource_metadata="${resource.replace('/mcp', '/.well-known/oauth-protected-resource/mcp')}"`,
    );
    expect(await answer.json()).toMatchObject({
      id: 7,
      error: { code: -31092, data: { reason: 'insufficient_scope', requiredScopes: ['math:admin'] } },
    });
  });

  it('names the route’s challengeScopes on the 401 a client without a token gets', async () => {
    const answer = await fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    expect(answer.status).toBe(401);
    expect(answer.headers.get('www-authenticate')).toBe(
      `Bearer scope="files:read math:admin", resource_metadata="${resource.replace('/mcp', '/.well-known/oauth-protected-resource/mcp')}"`,
    );
  });
});
