/**
 * `confirm: approver`: another person approves a call on the gateway's approval page, in a real
 * browser (Debian's chromium through puppeteer-core), after a real OpenID Connect login
 * (oidc-provider, code flow + PKCE). Callers are real SDK v2 (2026-07-28 and 2025-11-25) and SDK
 * v1 clients; the upstream (SDK v2) is proven to see nothing before the approval.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Client as V2Client,
  StreamableHTTPClientTransport as V2ClientTransport,
} from '@modelcontextprotocol/client';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1ClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitationCompleteNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { acceptedContent, createMcpHandler, inputRequired, McpServer } from '@modelcontextprotocol/server';
import type { Browser, Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { newApiKey } from '../../src/auth/api-key.js';
import { listenRecording, type Peer, startV1Server, startV2Server, type V1Peer } from '../fixtures/peers.js';
import { launchBrowser } from '../support/browser.js';
import { freePort, startTestGateway, type TestGateway } from '../support/gateway.js';
import { ensureBuilt, type GatewayProcess, startGatewayProcess } from '../support/gateway-process.js';
import { type LoginProvider, startLoginProvider } from '../support/login-provider.js';
import { type RedisServer, startRedis } from '../support/redis.js';

const alice = newApiKey('pk_alice_');
const sessionKey = Buffer.alloc(32, 9).toString('base64');

/** What the approvers' webhook received. */
interface Notice {
  readonly approval: string;
  readonly link: string;
  readonly tool: string;
  readonly requester: string;
}

/** The approvers' webhook: every notice it received, in order. */
async function startHook(): Promise<{ server: Server; url: string; notices: Notice[] }> {
  const notices: Notice[] = [];
  const server = createServer((req, res) => {
    let text = '';
    req.on('data', (chunk: Buffer) => {
      text += chunk.toString();
    });
    req.on('end', () => {
      notices.push(JSON.parse(text) as Notice);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, notices };
}

async function nextNotice(notices: Notice[], seen: number): Promise<Notice> {
  const deadline = Date.now() + 10_000;
  while (notices.length <= seen && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
  const notice = notices[seen];
  if (notice === undefined) throw new Error('no approver was notified');
  return notice;
}

const policyFor = (opts: {
  publicUrl: string;
  issuer: string;
  hook: string;
  upstream: string;
  top?: string;
}) => `${opts.top ?? ''}sessions: { keys: ["${sessionKey}"] }
approvals:
  publicUrl: ${opts.publicUrl}
  oidc: { issuer: "${opts.issuer}", clientId: portcullis-approvals, clientSecret: approvals-secret }
  approverScopes: [mcp:approve]
  owners: { "apiKey:alice": alice }
  notify: { webhook: "${opts.hook}" }
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [notes:write] }
routes:
  - route: /mcp
    resource: ${opts.publicUrl}/mcp
    upstream: ${opts.upstream}
    authentication: { methods: [apiKey] }
    tools:
      echo: { scopes: notes:write, confirm: approver }
      add: notes:write
`;

/** What an approver test runs against: a login provider, the approvers' webhook, gateways, chromium. */
interface Rig {
  readonly provider: LoginProvider;
  readonly hook: Awaited<ReturnType<typeof startHook>>;
  /** One gateway per upstream given, in order. */
  readonly gateways: TestGateway[];
  readonly browser: Browser;
  close(): Promise<void>;
}

/**
 * Starts a login provider with `accounts`, the webhook, one gateway in front of each of
 * `upstreams` (the policy of {@link policyFor}, changed by `edit`) and chromium.
 */
async function startRig(opts: {
  readonly upstreams: readonly string[];
  readonly accounts: Parameters<typeof startLoginProvider>[0]['accounts'];
  readonly scopes?: readonly string[];
  readonly edit?: (policy: string) => string;
}): Promise<Rig> {
  const ports: number[] = [];
  for (const _ of opts.upstreams) ports.push(await freePort());
  const provider = await startLoginProvider({
    redirectUris: ports.map((p) => `http://127.0.0.1:${p}/portcullis/callback`),
    clientId: 'portcullis-approvals',
    clientSecret: 'approvals-secret',
    accounts: opts.accounts,
    ...(opts.scopes === undefined ? {} : { scopes: opts.scopes }),
  });
  const hook = await startHook();
  const gateways: TestGateway[] = [];
  for (const [i, upstream] of opts.upstreams.entries()) {
    const port = ports[i] as number;
    const policy = policyFor({
      publicUrl: `http://127.0.0.1:${port}`,
      issuer: provider.issuer,
      hook: hook.url,
      upstream,
    });
    gateways.push(await startTestGateway({ port, policy: opts.edit?.(policy) ?? policy }));
  }
  const browser = await launchBrowser();
  return {
    provider,
    hook,
    gateways,
    browser,
    async close() {
      await browser.close();
      for (const gateway of gateways) await gateway.close();
      await provider.close();
      hook.server.close();
    },
  };
}

/** Logs `login` in at the provider's development pages (any password), then consents. */
async function logIn(page: Page, login: string): Promise<void> {
  await page.waitForSelector('input[name=login]');
  await page.type('input[name=login]', login);
  await page.type('input[name=password]', 'any');
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  if (page.url().includes('/interaction/'))
    await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
}

/** Opens `link` in a fresh browser context as `login` (logging in on the way). */
async function openAs(browser: Browser, link: string, login: string): Promise<Page> {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.goto(link);
  await logIn(page, login);
  return page;
}

async function decide(page: Page, decision: 'approve' | 'deny'): Promise<string> {
  await Promise.all([page.waitForNavigation(), page.click(`button.${decision}`)]);
  return page.content();
}

/** An SDK v2 client on 2026-07-28 whose URL elicitation handler waits for `released` before it accepts. */
async function modernClient(url: string, released: Promise<void>, seen: string[]) {
  const client = new V2Client(
    { name: 'requester', version: '1.0.0' },
    { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: { pin: '2026-07-28' } } },
  );
  client.setRequestHandler('elicitation/create', async (request) => {
    const params = request.params as { mode?: string; url?: string };
    seen.push(`${params.mode} ${params.url}`);
    await released;
    return { action: 'accept' };
  });
  await client.connect(
    new V2ClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${alice.key}` } },
    }),
  );
  return client;
}

/** The `elicitationId` of a -32042 error's first URL elicitation. */
function elicitationOf(error: unknown): string | undefined {
  return (error as { data?: { elicitations?: { elicitationId?: string }[] } }).data?.elicitations?.[0]
    ?.elicitationId;
}

function latch(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

describe('confirm: approver, one gateway', () => {
  let upstream: Peer;
  let legacyUpstream: V1Peer;
  let rig: Rig;
  let gateway: TestGateway;
  let legacyGateway: TestGateway;
  let browser: Browser;
  let hook: Awaited<ReturnType<typeof startHook>>;

  const echoes = (peer: Peer = upstream) =>
    peer.requests.filter(
      (r) => (r.body as { params?: { name?: unknown } } | undefined)?.params?.name === 'echo',
    ).length;

  beforeAll(async () => {
    upstream = await startV2Server({ response: 'json' });
    legacyUpstream = await startV1Server({ response: 'json' });
    rig = await startRig({
      upstreams: [upstream.url, legacyUpstream.url],
      scopes: ['mcp:approve'],
      accounts: { carol: { name: 'Carol Approver' }, alice: { name: 'Alice Requester' } },
    });
    ({ hook, browser } = rig);
    [gateway, legacyGateway] = rig.gateways as [TestGateway, TestGateway];
  }, 60_000);

  afterAll(async () => {
    await rig?.close();
    await upstream?.close();
    await legacyUpstream?.close();
  });

  it('2026-07-28: the call waits; an approver logs in, sees it and approves; the call then runs once', async () => {
    const before = echoes();
    const seen: string[] = [];
    const release = latch();
    const client = await modernClient(`${gateway.url}/mcp`, release.promise, seen);
    const notified = hook.notices.length;
    const calling = client.callTool({ name: 'echo', arguments: { text: 'drop table', password: 'hunter2' } });

    const notice = await nextNotice(hook.notices, notified);
    expect(notice).toMatchObject({ tool: 'echo', requester: 'apiKey:alice' });
    expect(seen).toEqual([`url ${notice.link}/status`]);
    expect(echoes()).toBe(before);

    const page = await openAs(browser, notice.link, 'carol');
    expect(page.url()).toBe(notice.link);
    const shown = await page.content();
    expect(shown).toContain('echo');
    expect(shown).toContain('apiKey:alice');
    expect(shown).toContain('tools.echo');
    // The whole arguments, nothing cut or masked: an approver approves what they saw.
    expect(shown).toContain('"text": "drop table"');
    expect(shown).toContain('"password": "hunter2"');
    // The page's headers: no framing, no script, no cache.
    const headers = (await page.reload())?.headers() ?? {};
    expect(headers['content-security-policy']).toContain("frame-ancestors 'none'");
    expect(headers['content-security-policy']).toContain("default-src 'none'");
    expect(headers['cache-control']).toBe('no-store');
    expect(echoes()).toBe(before);
    expect(await decide(page, 'approve')).toContain('Approved.');
    await page.browserContext().close();

    release.open();
    const result = await calling;
    expect((result.content as { text: string }[])[0]?.text).toBe('drop table');
    expect(echoes()).toBe(before + 1);
    await client.close();

    const records = await gateway.auditRecords();
    const events = records.filter((r) => r.event === 'approval' && r.approval === notice.approval);
    expect(events.map((e) => e.step)).toEqual(['pending', 'approved']);
    expect(events[1]?.by).toMatchObject({ subject: 'carol' });
    const call = records.find(
      (r) => r.tool === 'echo' && (r.confirmation as { step?: string } | undefined)?.step === 'approved',
    );
    expect(call?.confirmation).toEqual({ step: 'approved', id: notice.approval });
  }, 60_000);

  it('a denial is confirmation_declined and never reaches the upstream', async () => {
    const before = echoes();
    const release = latch();
    const client = await modernClient(`${gateway.url}/mcp`, release.promise, []);
    const notified = hook.notices.length;
    const calling = client
      .callTool({ name: 'echo', arguments: { text: 'deny me' } })
      .catch((e: unknown) => e);
    const notice = await nextNotice(hook.notices, notified);
    const page = await openAs(browser, notice.link, 'carol');
    expect(await decide(page, 'deny')).toContain('Denied.');
    await page.browserContext().close();
    release.open();
    // 403 with the JSON-RPC error naming the approval (the SDK reports the HTTP status).
    const refused = String(await calling);
    expect(refused).toContain('confirmation_declined');
    expect(refused).toContain(notice.approval);
    expect(echoes()).toBe(before);
    await client.close();
  }, 60_000);

  it('the requester cannot approve their own call; the status page is theirs alone; forged and cross-origin decisions are refused', async () => {
    const before = echoes();
    const release = latch();
    const client = await modernClient(`${gateway.url}/mcp`, release.promise, []);
    const notified = hook.notices.length;
    const calling = client.callTool({ name: 'echo', arguments: { text: 'mine' } }).catch((e: unknown) => e);
    const notice = await nextNotice(hook.notices, notified);

    // Alice owns apiKey:alice (owners): she may follow it, never approve it.
    const hers = await openAs(browser, notice.link, 'alice');
    expect(await hers.content()).toContain('You asked for this call');
    expect(await hers.$('button.approve')).toBeNull();
    const status = await hers.goto(`${notice.link}/status`);
    expect(status?.status()).toBe(200);
    expect(await hers.content()).toContain('pending');
    // Even a POST with her own valid session is refused, and audited.
    const aliceCookie = (await hers.browserContext().cookies()).find((c) =>
      c.name.startsWith('__Host-portcullis-approvals'),
    );
    await hers.browserContext().close();

    // Carol may approve, but not see alice's status page.
    const carols = await openAs(browser, `${notice.link}/status`, 'carol');
    expect(await carols.content()).toContain('Not yours');
    await carols.goto(notice.link);
    const cookie = (await carols.browserContext().cookies()).find((c) =>
      c.name.startsWith('__Host-portcullis-approvals'),
    );
    const token = await carols.$eval(
      'input[name=csrf]',
      (input) => (input as unknown as { value: string }).value,
    );
    const origin = new URL(notice.link).origin;
    const post = (headers: Record<string, string>, body: string) =>
      fetch(notice.link, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body,
      });
    const session = `${cookie?.name}=${cookie?.value}`;
    // A forged token, a token with no session, a cross-origin post, no Origin at all: all 403.
    expect((await post({ cookie: session, origin }, 'decision=approve&csrf=forged')).status).toBe(403);
    expect((await post({ origin }, `decision=approve&csrf=${token}`)).status).toBe(403);
    expect(
      (await post({ cookie: session, origin: 'https://evil.example' }, `decision=approve&csrf=${token}`))
        .status,
    ).toBe(403);
    expect((await post({ cookie: session }, `decision=approve&csrf=${token}`)).status).toBe(403);
    // Alice's own session with a token for her session: refused as self-approval.
    const hersession = `${aliceCookie?.name}=${aliceCookie?.value}`;
    expect((await post({ cookie: hersession, origin }, `decision=approve&csrf=${token}`)).status).toBe(403);
    expect(echoes()).toBe(before);

    // Carol's own approval, then the same link again: decided, no form; a second POST is 409.
    expect(await decide(carols, 'approve')).toContain('Approved.');
    expect((await post({ cookie: session, origin }, `decision=deny&csrf=${token}`)).status).toBe(409);
    await carols.browserContext().close();
    release.open();
    await calling;
    expect(echoes()).toBe(before + 1);
    await client.close();

    const refused = (await gateway.auditRecords()).filter(
      (r) => r.event === 'approval' && r.approval === notice.approval && r.step === 'refused',
    );
    expect(refused.map((r) => r.reason)).toEqual([
      'csrf',
      'no_session',
      'origin',
      'origin',
      'csrf',
      'decided',
    ]);
  }, 60_000);

  it('an unknown approval id is 404, a malformed one never reaches the store, a login link cannot redirect elsewhere', async () => {
    const origin = gateway.url;
    expect(
      (await fetch(`${origin}/portcullis/approvals/AAAAAAAAAAAAAAAAAAAAAA`, { redirect: 'manual' })).status,
    ).toBe(302);
    expect((await fetch(`${origin}/portcullis/approvals/..%2F..%2Fetc`, { redirect: 'manual' })).status).toBe(
      404,
    );
    expect(
      (await fetch(`${origin}/portcullis/login?next=https://evil.example/`, { redirect: 'manual' })).status,
    ).toBe(400);
    expect(
      (
        await fetch(`${origin}/portcullis/login?next=//evil.example/portcullis/approvals/x`, {
          redirect: 'manual',
        })
      ).status,
    ).toBe(400);
  });

  it('2025-11-25, SDK v1: -32042 with the status URL; notifications/elicitation/complete when approved; the same call then runs once', async () => {
    const before = echoes(legacyUpstream);
    const client = new V1Client(
      { name: 'legacy-requester', version: '1.0.0' },
      { capabilities: { elicitation: { url: {} } } },
    );
    const completed: string[] = [];
    client.setNotificationHandler(ElicitationCompleteNotificationSchema, (notification) => {
      completed.push(notification.params.elicitationId);
    });
    await client.connect(
      new V1ClientTransport(new URL(`${legacyGateway.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${alice.key}` } },
      }),
    );
    const notified = hook.notices.length;
    const first = await client
      .callTool({ name: 'echo', arguments: { text: 'legacy' } })
      .catch((e: unknown) => e);
    const notice = await nextNotice(hook.notices, notified);
    expect(first).toMatchObject({ code: -32042 });
    const elicitation = (
      first as { data: { elicitations: { mode: string; url: string; elicitationId: string }[] } }
    ).data.elicitations[0];
    expect(elicitation).toEqual({
      mode: 'url',
      elicitationId: notice.approval,
      url: `${notice.link}/status`,
      message: expect.stringContaining('"echo"'),
    });
    // Still pending: the same answer again, the same approval.
    const again = await client
      .callTool({ name: 'echo', arguments: { text: 'legacy' } })
      .catch((e: unknown) => e);
    expect(again).toMatchObject({ code: -32042 });
    expect(elicitationOf(again)).toBe(notice.approval);
    expect(echoes(legacyUpstream)).toBe(before);

    const page = await openAs(browser, notice.link, 'carol');
    expect(await decide(page, 'approve')).toContain('Approved.');
    await page.browserContext().close();
    // The session's GET stream tells the client its elicitation completed.
    const deadline = Date.now() + 5_000;
    while (completed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    expect(completed).toEqual([notice.approval]);
    const result = await client.callTool({ name: 'echo', arguments: { text: 'legacy' } });
    expect((result.content as { text: string }[])[0]?.text).toBe('legacy');
    expect(echoes(legacyUpstream)).toBe(before + 1);
    // Used: the same call again is a new call, asked anew.
    const fresh = await client
      .callTool({ name: 'echo', arguments: { text: 'legacy' } })
      .catch((e: unknown) => e);
    expect(fresh).toMatchObject({ code: -32042 });
    expect(elicitationOf(fresh)).not.toBe(notice.approval);
    expect(echoes(legacyUpstream)).toBe(before + 1);
    await client.close();
  }, 60_000);

  it('2025-11-25, SDK v2: -32042 with the status URL; after the approval the same call runs once', async () => {
    const before = echoes(legacyUpstream);
    const client = new V2Client(
      { name: 'legacy-v2', version: '1.0.0' },
      { capabilities: { elicitation: { url: {} } }, versionNegotiation: { mode: 'legacy' } },
    );
    await client.connect(
      new V2ClientTransport(new URL(`${legacyGateway.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${alice.key}` } },
      }),
    );
    const notified = hook.notices.length;
    const first = await client
      .callTool({ name: 'echo', arguments: { text: 'v2 legacy' } })
      .catch((e: unknown) => e);
    const notice = await nextNotice(hook.notices, notified);
    expect(first).toMatchObject({ code: -32042 });
    expect(JSON.stringify(first)).toContain(`${notice.link}/status`);
    const page = await openAs(browser, notice.link, 'carol');
    expect(await decide(page, 'approve')).toContain('Approved.');
    await page.browserContext().close();
    const result = await client.callTool({ name: 'echo', arguments: { text: 'v2 legacy' } });
    expect((result.content as { text: string }[])[0]?.text).toBe('v2 legacy');
    expect(echoes(legacyUpstream)).toBe(before + 1);
    await client.close();
  }, 60_000);

  it('2025-11-25: a client that did not declare URL elicitation cannot be asked, and nothing is forwarded', async () => {
    const before = echoes(legacyUpstream);
    const notified = hook.notices.length;
    const plain = new V1Client({ name: 'plain', version: '1.0.0' });
    await plain.connect(
      new V1ClientTransport(new URL(`${legacyGateway.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${alice.key}` } },
      }),
    );
    const refused = await plain.callTool({ name: 'echo', arguments: { text: 'x' } }).catch((e: unknown) => e);
    expect(String(refused)).toContain('no_url_elicitation');
    await plain.close();
    expect(echoes(legacyUpstream)).toBe(before);
    expect(hook.notices.length).toBe(notified);
  });
});

describe('confirm: approver across two gateway processes sharing Redis', () => {
  let redis: RedisServer;
  let upstream: Peer;
  let provider: LoginProvider;
  let one: TestGateway;
  /** The second gateway: the built CLI in a process of its own. */
  let two: GatewayProcess;
  let twoUrl = '';
  let dir = '';
  let browser: Browser;
  let hook: Awaited<ReturnType<typeof startHook>>;

  beforeAll(async () => {
    redis = await startRedis();
    upstream = await startV2Server({ response: 'json' });
    const [portOne, portTwo] = [await freePort(), await freePort()];
    provider = await startLoginProvider({
      redirectUris: [portOne, portTwo].map((p) => `http://127.0.0.1:${p}/portcullis/callback`),
      clientId: 'portcullis-approvals',
      clientSecret: 'approvals-secret',
      scopes: ['mcp:approve'],
      accounts: { carol: { name: 'Carol Approver' } },
    });
    hook = await startHook();
    const top = `redis: { url: "${redis.url}", commandTimeoutMs: 500 }\n`;
    one = await startTestGateway({
      port: portOne,
      policy: policyFor({
        publicUrl: `http://127.0.0.1:${portOne}`,
        issuer: provider.issuer,
        hook: hook.url,
        upstream: upstream.url,
        top,
      }),
    });
    ensureBuilt(['src/approvals/web.ts', 'src/approvals/store.ts', 'src/approvals/caller.ts']);
    dir = mkdtempSync(join(tmpdir(), 'portcullis-approver-'));
    const file = join(dir, 'portcullis.yaml');
    twoUrl = `http://127.0.0.1:${portTwo}`;
    writeFileSync(
      file,
      `listen: { host: 127.0.0.1, port: ${portTwo} }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: ${JSON.stringify(join(dir, 'audit.jsonl'))} }
${policyFor({ publicUrl: twoUrl, issuer: provider.issuer, hook: hook.url, upstream: upstream.url, top })}`,
    );
    two = await startGatewayProcess(file);
    browser = await launchBrowser();
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await one?.close();
    two?.kill();
    await provider?.close();
    hook?.server.close();
    await upstream?.close();
    await redis?.stop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('asked on one, approved on the other process’s page, the retry forwarded once', async () => {
    const echoes = () =>
      upstream.requests.filter(
        (r) => (r.body as { params?: { name?: unknown } } | undefined)?.params?.name === 'echo',
      ).length;
    const before = echoes();
    const release = latch();
    const client = await modernClient(`${one.url}/mcp`, release.promise, []);
    const notified = hook.notices.length;
    const calling = client.callTool({ name: 'echo', arguments: { text: 'replicated' } });
    const notice = await nextNotice(hook.notices, notified);
    const page = await openAs(browser, notice.link.replace(one.url, twoUrl), 'carol');
    expect(await page.content()).toContain('replicated');
    expect(await decide(page, 'approve')).toContain('Approved.');
    await page.browserContext().close();
    release.open();
    expect(((await calling).content as { text: string }[])[0]?.text).toBe('replicated');
    expect(echoes()).toBe(before + 1);
    await client.close();
  }, 60_000);
});

describe('confirm: approver in front of an upstream that itself asks for input', () => {
  let upstream: Peer;
  let rig: Rig;
  let gateway: TestGateway;
  let browser: Browser;
  let hook: Awaited<ReturnType<typeof startHook>>;
  const UPSTREAM_STATE = 'upstream-state-7';

  beforeAll(async () => {
    const handler = createMcpHandler(
      () => {
        const server = new McpServer({ name: 'asking', version: '1.0.0' }, { capabilities: { tools: {} } });
        server.registerTool(
          'echo',
          { description: 'Echoes, asking why first', inputSchema: z.object({ text: z.string() }) },
          async ({ text }, ctx) => {
            const reason = acceptedContent<{ why?: string }>(ctx.mcpReq.inputResponses, 'reason');
            if (reason?.why === undefined)
              return inputRequired({
                inputRequests: {
                  reason: inputRequired.elicit({
                    message: 'Why?',
                    requestedSchema: z.object({ why: z.string() }),
                  }),
                },
                requestState: UPSTREAM_STATE,
              });
            return { content: [{ type: 'text', text: `${text} because ${reason.why}` }] };
          },
        );
        return server;
      },
      { responseMode: 'json', legacy: 'reject', keepAliveMs: 0 },
    );
    const node = toNodeHandler(handler);
    upstream = await listenRecording(
      (req, res, body) => node(req as never, res, body),
      () => handler.close(),
    );
    rig = await startRig({
      upstreams: [upstream.url],
      scopes: ['mcp:approve'],
      accounts: { carol: { name: 'Carol Approver' } },
    });
    ({ hook, browser } = rig);
    gateway = rig.gateways[0] as TestGateway;
  }, 60_000);

  afterAll(async () => {
    await rig?.close();
    await upstream?.close();
  });

  it('approved once; the upstream’s own question and state travel through sealed, with no second approval', async () => {
    const release = latch();
    const client = new V2Client(
      { name: 'requester', version: '1.0.0' },
      {
        capabilities: { elicitation: { form: {}, url: {} } },
        versionNegotiation: { mode: { pin: '2026-07-28' } },
      },
    );
    const asked: string[] = [];
    client.setRequestHandler('elicitation/create', async (request) => {
      const params = request.params as { mode?: string; message?: string };
      asked.push(String(params.mode ?? 'form'));
      if (params.mode === 'url') {
        await release.promise;
        return { action: 'accept' };
      }
      return { action: 'accept', content: { why: 'audit' } };
    });
    await client.connect(
      new V2ClientTransport(new URL(`${gateway.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${alice.key}` } },
      }),
    );
    const calling = client.callTool({ name: 'echo', arguments: { text: 'ship it' } });
    const notice = await nextNotice(hook.notices, 0);
    const page = await openAs(browser, notice.link, 'carol');
    expect(await decide(page, 'approve')).toContain('Approved.');
    await page.browserContext().close();
    release.open();
    expect(((await calling).content as { text: string }[])[0]?.text).toBe('ship it because audit');
    await client.close();
    // One approval, then the upstream's own question; the upstream got its own state back.
    expect(asked).toEqual(['url', 'form']);
    expect(hook.notices).toHaveLength(1);
    const calls = upstream.requests
      .map((r) => r.body as { method?: string; params?: Record<string, unknown> })
      .filter((b) => b?.method === 'tools/call');
    expect(calls).toHaveLength(2);
    expect(calls[0]?.params?.requestState).toBeUndefined();
    expect(calls[1]?.params?.requestState).toBe(UPSTREAM_STATE);
    expect(JSON.stringify(upstream.requests)).not.toContain('io.portcullis/');
  }, 60_000);
});

describe('confirm: approver named by a claim (approverClaim, read from UserInfo)', () => {
  let upstream: Peer;
  let rig: Rig;
  let gateway: TestGateway;
  let browser: Browser;
  let hook: Awaited<ReturnType<typeof startHook>>;

  beforeAll(async () => {
    upstream = await startV2Server({ response: 'json' });
    rig = await startRig({
      upstreams: [upstream.url],
      accounts: {
        dan: { name: 'Dan', groups: ['staff', 'mcp-approvers'] },
        erin: { name: 'Erin', groups: ['staff'] },
      },
      edit: (policy) =>
        policy
          .replace('  approverScopes: [mcp:approve]\n', '  approverClaim: { groups: mcp-approvers }\n')
          .replace(
            'clientSecret: approvals-secret }',
            'clientSecret: approvals-secret, scopes: [profile, groups] }',
          ),
    });
    ({ hook, browser } = rig);
    gateway = rig.gateways[0] as TestGateway;
  }, 60_000);

  afterAll(async () => {
    await rig?.close();
    await upstream?.close();
  });

  it('a member of the group approves; someone outside it sees nothing of the call', async () => {
    const release = latch();
    const client = await modernClient(`${gateway.url}/mcp`, release.promise, []);
    const calling = client.callTool({ name: 'echo', arguments: { text: 'by claim' } });
    const notice = await nextNotice(hook.notices, 0);
    const erin = await openAs(browser, notice.link, 'erin');
    expect(await erin.content()).toContain('You are not an approver');
    expect(await erin.content()).not.toContain('by claim');
    await erin.browserContext().close();
    const dan = await openAs(browser, notice.link, 'dan');
    expect(await dan.content()).toContain('by claim');
    expect(await decide(dan, 'approve')).toContain('Approved.');
    await dan.browserContext().close();
    release.open();
    expect(((await calling).content as { text: string }[])[0]?.text).toBe('by claim');
    await client.close();
    // Counted: created, approved, used; and the time to decision.
    const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    expect(metrics).toContain('portcullis_approvals_total{route="/mcp",result="pending"} 1');
    expect(metrics).toContain('portcullis_approvals_total{route="/mcp",result="approved"} 1');
    expect(metrics).toContain('portcullis_approvals_total{route="/mcp",result="used"} 1');
    expect(metrics).toMatch(/portcullis_approval_decision_seconds_count\{route="\/mcp"\} 1/);
  }, 60_000);
});
