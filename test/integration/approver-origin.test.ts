/**
 * The approval pages share the gateway's origin with every upstream's answers. A hostile upstream
 * behind another (anonymous) route answers a browser with HTML whose script, run on that origin
 * with a logged-in approver's cookie, would read the approval page's CSRF token and post Approve
 * from the gateway's own Origin. Every answer the gateway relays says it is not a page
 * (`Content-Security-Policy: sandbox; default-src 'none'`, `nosniff`): the script never runs and
 * nobody approves. (Found by an attack review: before, the call ran.)
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { launchBrowser } from '../support/browser.js';
import { freePort, startTestGateway, type TestGateway } from '../support/gateway.js';
import { type LoginProvider, startLoginProvider } from '../support/login-provider.js';
import { postModern } from '../support/modern-call.js';

const alice = newApiKey('pk_alice_');

const HOSTILE = `<!doctype html><title>docs</title><script>
(async () => {
  const id = location.hash.slice(1);
  const page = await (await fetch('/portcullis/approvals/' + id)).text();
  const csrf = /name="csrf" value="([^"]+)"/.exec(page)[1];
  const done = await fetch('/portcullis/approvals/' + id, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'decision=approve&csrf=' + encodeURIComponent(csrf),
  });
  document.title = 'done ' + done.status;
})();
</script>`;

describe('an upstream’s HTML on the gateway’s origin cannot approve in an approver’s name', () => {
  let upstream: Peer;
  let hostile: Server;
  let provider: LoginProvider;
  let gateway: TestGateway;
  let browser: Browser;
  const echoes = () =>
    upstream.requests.filter((r) => (r.body as { params?: { name?: unknown } })?.params?.name === 'echo')
      .length;

  beforeAll(async () => {
    upstream = await startV2Server({ response: 'json' });
    hostile = createServer((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end(HOSTILE);
    });
    await new Promise<void>((r) => hostile.listen(0, '127.0.0.1', r));
    const port = await freePort();
    provider = await startLoginProvider({
      redirectUris: [`http://127.0.0.1:${port}/portcullis/callback`],
      clientId: 'portcullis-approvals',
      clientSecret: 'approvals-secret',
      scopes: ['mcp:approve'],
      accounts: { carol: { name: 'Carol Approver' } },
    });
    gateway = await startTestGateway({
      port,
      policy: `sessions: { keys: ["${Buffer.alloc(32, 9).toString('base64')}"] }
approvals:
  publicUrl: http://127.0.0.1:${port}
  oidc: { issuer: "${provider.issuer}", clientId: portcullis-approvals, clientSecret: approvals-secret }
  approverScopes: [mcp:approve]
identities:
  anonymous: { scopes: [] }
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [notes:write] }
routes:
  - route: /mcp
    resource: http://127.0.0.1:${port}/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    tools:
      echo: { scopes: notes:write, confirm: approver }
  - route: /docs/mcp
    resource: http://127.0.0.1:${port}/docs/mcp
    upstream: http://127.0.0.1:${(hostile.address() as AddressInfo).port}/mcp
    authentication: { methods: [anonymous] }
    default: allow
`,
    });
    browser = await launchBrowser();
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    await provider?.close();
    hostile?.close();
    await upstream?.close();
  });

  /** alice's tool call of `echo` (with the gateway's state, on a retry), from a client that can open a URL. */
  const call = (state?: string) =>
    postModern(`${gateway.url}/mcp`, {
      method: 'tools/call',
      params: {
        name: 'echo',
        arguments: { text: 'drop table' },
        ...(state === undefined ? {} : { requestState: state }),
      },
      key: alice.key,
      meta: { 'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } } },
    });

  it('an approver who opens a hostile upstream’s answer on the gateway approves nothing', async () => {
    const first = (await (await call()).json()) as {
      result: { requestState: string; inputRequests: Record<string, { params: { elicitationId: string } }> };
    };
    const id = first.result.inputRequests['io.portcullis/approval']?.params.elicitationId as string;
    // Carol is logged in to the approval pages (she approved something earlier this hour).
    const context = await browser.createBrowserContext();
    const page = await context.newPage();
    await page.goto(
      `${gateway.url}/portcullis/login?next=${encodeURIComponent('/portcullis/approvals/' + id)}`,
    );
    await page.waitForSelector('input[name=login]');
    await page.type('input[name=login]', 'carol');
    await page.type('input[name=password]', 'any');
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    if (page.url().includes('/interaction/'))
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    // She follows a link to the gateway's own origin (a docs route): she never presses Approve.
    const opened = await page.goto(`${gateway.url}/docs/mcp#${id}`);
    expect(opened?.headers()['content-security-policy']).toBe(
      "sandbox; default-src 'none'; frame-ancestors 'none'",
    );
    expect(opened?.headers()['x-content-type-options']).toBe('nosniff');
    const ran = await page
      .waitForFunction("document.title.startsWith('done')", { timeout: 3_000 })
      .then(() => true)
      .catch(() => false);
    expect(ran).toBe(false);
    await context.close();

    const before = echoes();
    const retry = await call(first.result.requestState);
    const text = await retry.text();
    // Four eyes: nobody approved, so the call is still waiting and never ran.
    expect(text).toContain('input_required');
    expect(text).not.toContain('"drop table"');
    expect(echoes()).toBe(before);
  }, 60_000);
});
