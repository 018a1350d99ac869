/** Arguments with no RFC 8785 canonical form (a lone surrogate is JSON, not I-JSON): still bound, never a 500. Found by an attack review. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { postModern } from '../support/modern-call.js';

const alice = newApiKey('pk_alice_');

describe('a confirm: approver call whose arguments are not I-JSON (a lone surrogate)', () => {
  let upstream: Peer;
  let gateway: TestGateway;
  beforeAll(async () => {
    upstream = await startV2Server({ response: 'json' });
    gateway = await startTestGateway({
      policy: `approvals:
  publicUrl: http://127.0.0.1:9
  oidc: { issuer: "http://127.0.0.1:9/", clientId: c }
  approverScopes: [mcp:approve]
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [notes:write] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    tools:
      echo: { scopes: notes:write, confirm: approver }
`,
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });
  /** A tool call of `echo` as alice, from a client that can open a URL. */
  const call = (args: Record<string, unknown>) =>
    postModern(`${gateway.url}/mcp`, {
      method: 'tools/call',
      params: { name: 'echo', arguments: args },
      key: alice.key,
      meta: { 'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } } },
    });
  it('asks for an approval of a call whose arguments hold a lone surrogate (no 500), and forwards nothing', async () => {
    // JSON.stringify writes it as the escape `\ud800`: the gateway parses a lone surrogate.
    const answer = await call({ text: '\ud800' });
    expect(answer.status).toBe(200);
    const text = await answer.text();
    expect(text).toContain('input_required');
    expect(text).toContain('io.portcullis/approval');
    expect(upstream.requests.filter((r) => JSON.stringify(r.body).includes('tools/call'))).toHaveLength(0);
  });
});
