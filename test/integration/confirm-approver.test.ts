/**
 * `confirm: approver`: another person approves a call on the gateway's approval page, in a real
 * browser (Debian's chromium through puppeteer-core), after a real OpenID Connect login
 * (oidc-provider, code flow + PKCE). The caller is a real SDK v2 client; the upstream (SDK v2)
 * is proven to see nothing before the approval.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  Client as V2Client,
  StreamableHTTPClientTransport as V2ClientTransport,
} from '@modelcontextprotocol/client';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { launchBrowser } from '../support/browser.js';
import { freePort, startTestGateway, type TestGateway } from '../support/gateway.js';
import { type LoginProvider, startLoginProvider } from '../support/login-provider.js';

const alice = newApiKey('pk_alice_');

/** What the approvers' webhook received. */
interface Notice {
  readonly link: string;
  readonly tool: string;
  readonly requester: string;
}

describe('confirm: approver on the 2026-07-28 protocol', () => {
  let upstream: Peer;
  let provider: LoginProvider;
  let gateway: TestGateway;
  let browser: Browser;
  let hook: Server;
  const notices: Notice[] = [];

  const echoes = () =>
    upstream.requests.filter(
      (r) => (r.body as { params?: { name?: unknown } } | undefined)?.params?.name === 'echo',
    ).length;

  beforeAll(async () => {
    upstream = await startV2Server({ response: 'json' });
    const port = await freePort();
    const publicUrl = `http://127.0.0.1:${port}`;
    provider = await startLoginProvider({
      redirectUri: `${publicUrl}/portcullis/callback`,
      clientId: 'portcullis-approvals',
      clientSecret: 'approvals-secret',
      scopes: ['mcp:approve'],
      accounts: { carol: { name: 'Carol Approver' }, alice: { name: 'Alice Requester' } },
    });
    hook = createServer((req, res) => {
      let text = '';
      req.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      req.on('end', () => {
        notices.push(JSON.parse(text) as Notice);
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    gateway = await startTestGateway({
      port,
      policy: `approvals:
  publicUrl: ${publicUrl}
  oidc: { issuer: "${provider.issuer}", clientId: portcullis-approvals, clientSecret: approvals-secret }
  approverScopes: [mcp:approve]
  owners: { "apiKey:alice": alice }
  notify: { webhook: "http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook" }
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [notes:write] }
routes:
  - route: /mcp
    resource: ${publicUrl}/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    tools:
      echo: { scopes: notes:write, confirm: approver }
      add: notes:write
`,
    });
    browser = await launchBrowser();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await gateway?.close();
    await provider?.close();
    hook?.close();
    await upstream?.close();
  });

  /** Logs `login` in at the provider's development pages (any password), then consents. */
  async function logIn(page: Page, login: string): Promise<void> {
    await page.waitForSelector('input[name=login]');
    await page.type('input[name=login]', login);
    await page.type('input[name=password]', 'any');
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    // The consent page, when the provider shows one.
    if (page.url().includes('/interaction/'))
      await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  }

  it('a requester’s call waits; an approver logs in, sees it and approves; the call then runs once', async () => {
    const before = echoes();
    let statusUrl = '';
    let heardWhenAsked = -1;
    let approved: () => void = () => undefined;
    const decided = new Promise<void>((resolve) => {
      approved = resolve;
    });
    const client = new V2Client(
      { name: 'requester', version: '1.0.0' },
      { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    client.setRequestHandler('elicitation/create', async (request) => {
      const params = request.params as { mode?: string; url?: string };
      expect(params.mode).toBe('url');
      statusUrl = String(params.url);
      heardWhenAsked = echoes();
      // The person follows the status page until an approver decides, then the client calls again.
      await decided;
      return { action: 'accept' };
    });
    await client.connect(
      new V2ClientTransport(new URL(`${gateway.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${alice.key}` } },
      }),
    );
    const calling = client.callTool({ name: 'echo', arguments: { text: 'drop table', password: 'hunter2' } });

    // The approvers' webhook names the approval page; the requester's URL is the status page.
    const deadline = Date.now() + 10_000;
    while (notices.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const notice = notices[0] as Notice;
    expect(notice).toMatchObject({ tool: 'echo', requester: 'apiKey:alice' });
    expect(statusUrl).toBe(`${notice.link}/status`);
    expect(heardWhenAsked).toBe(before);

    const page = await browser.newPage();
    await page.goto(notice.link);
    await logIn(page, 'carol');
    expect(page.url()).toBe(notice.link);
    const shown = await page.content();
    expect(shown).toContain('echo');
    expect(shown).toContain('apiKey:alice');
    expect(shown).toContain('tools.echo');
    expect(shown).toContain('"text"="drop table"');
    expect(shown).not.toContain('hunter2');
    expect(echoes()).toBe(before);
    await Promise.all([page.waitForNavigation(), page.click('button.approve')]);
    expect(await page.content()).toContain('Approved.');
    await page.close();

    approved();
    const result = await calling;
    expect((result.content as { text: string }[])[0]?.text).toBe('drop table');
    expect(echoes()).toBe(before + 1);
    await client.close();

    const records = await gateway.auditRecords();
    const events = records.filter(
      (r) => r.event === 'approval' && r.approval === notice.link.split('/').pop(),
    );
    expect(events.map((e) => e.step)).toEqual(['pending', 'approved']);
    expect(events[1]?.by).toMatchObject({ subject: 'carol' });
  }, 60_000);
});
