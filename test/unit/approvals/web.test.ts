/** The approval pages' decisions without a provider: a stub login stands for the person (unit). */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApprovalsConfig, Login, Person } from '../../../src/approvals/login.js';
import {
  type Approval,
  type ApprovalStore,
  createLocalApprovalStore,
  newApprovalId,
} from '../../../src/approvals/store.js';
import { createApprovalPages, sameIssuer } from '../../../src/approvals/web.js';

const people: Record<string, Person> = {
  carol: {
    issuer: 'https://idp',
    subject: 'carol',
    approver: true,
    session: 's-carol',
    expiresAt: Date.now() + 60_000,
  },
  dave: {
    issuer: 'https://idp',
    subject: 'dave',
    approver: false,
    session: 's-dave',
    expiresAt: Date.now() + 60_000,
  },
  alice: {
    issuer: 'https://idp',
    subject: 'alice',
    approver: true,
    session: 's-alice',
    expiresAt: Date.now() + 60_000,
  },
};

/** A login whose session cookie is the person's name. */
const login: Login = {
  start: async (next) => ({ location: `https://idp/auth?next=${encodeURIComponent(next)}`, cookie: 'l=1' }),
  finish: async () => ({ failed: 'no' }),
  person: (cookie) => (cookie === undefined ? undefined : people[cookie]),
  clearLogin: 'l=; Max-Age=0',
};

/**
 * The pages on a real HTTP server of their own (`publicUrl` is its address), with `store`, `login`
 * and `approvals` over these defaults.
 */
async function servePages(opts: {
  readonly store: ApprovalStore;
  readonly login: Login;
  readonly approvals?: Partial<ApprovalsConfig>;
  readonly onRefused?: (why: string) => void;
}): Promise<{ readonly origin: string; readonly server: Server }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const pages = createApprovalPages({
    approvals: {
      confirmTimeoutSec: 120,
      ttlSec: 900,
      allowSelfApproval: false,
      owners: { 'apiKey:alice': 'alice' },
      createLimit: '10/minute',
      publicUrl: origin,
      oidc: { issuer: 'https://idp', clientId: 'c', scopes: [] },
      approverScopes: ['mcp:approve'],
      ...opts.approvals,
    },
    store: opts.store,
    login: opts.login,
    logger: pino({ level: 'silent' }),
    onDecision: () => undefined,
    onRefused: (_id, _approval, _by, why) => opts.onRefused?.(why),
  });
  server.on('request', (req, res) => {
    void pages(req, res);
  });
  return { origin, server };
}

describe('approval pages (unit, stub login)', () => {
  const store = createLocalApprovalStore();
  const refused: string[] = [];
  let server: Server;
  let origin = '';
  let id = '';
  let selfAllowed = '';

  const approval = (requester: Approval['requester']): Approval => ({
    id: newApprovalId(),
    requester,
    bindings: {
      identity: requester.key,
      route: '/mcp',
      tool: '<script>x</script>',
      argumentsHash: 'h',
      pinHash: null,
      store: 'approvals',
    },
    arguments: '{ "q": "</pre><img src=x onerror=alert(1)>" }',
    rule: 'tools."<b>"',
    createdAt: Date.now(),
    expiresAt: Date.now() + 60_000,
    state: 'pending',
  });

  beforeAll(async () => {
    ({ origin, server } = await servePages({ store, login, onRefused: (why) => refused.push(why) }));
    const mine = approval({ key: 'apiKey:alice' });
    id = mine.id;
    await store.create(mine);
    const other = approval({ key: 'jwt:https://idp|alice', issuer: 'https://idp', subject: 'alice' });
    selfAllowed = other.id;
    await store.create(other);
  });
  afterAll(() => {
    server.close();
  });

  const get = (path: string, who?: string) =>
    fetch(`${origin}${path}`, {
      redirect: 'manual',
      headers: who === undefined ? {} : { cookie: `__Host-portcullis-approvals=${who}` },
    });

  it('escapes everything it shows: no tag from a tool name, an argument or a rule reaches the page', async () => {
    const page = await (await get(`/portcullis/approvals/${id}`, 'carol')).text();
    expect(page).not.toContain('<script>x');
    expect(page).not.toContain('<img');
    expect(page).not.toContain('<b>');
    expect(page).toContain('&#60;script&#62;');
  });

  it('asks for a login first, and never redirects off the gateway', async () => {
    const answer = await get(`/portcullis/approvals/${id}`);
    expect(answer.status).toBe(302);
    expect(answer.headers.get('location')).toBe(
      `${origin}/portcullis/login?next=${encodeURIComponent(`/portcullis/approvals/${id}`)}`,
    );
    expect((await get('/portcullis/login?next=/elsewhere')).status).toBe(400);
    expect((await get(`/portcullis/login?next=/portcullis/approvals/${id}`)).status).toBe(302);
  });

  it('a person who is neither approver nor requester sees nothing of the call; self-approval by subject (JWT) and by owner refused', async () => {
    const dave = await get(`/portcullis/approvals/${id}`, 'dave');
    expect(dave.status).toBe(403);
    const page = await dave.text();
    expect(page).toContain('not an approver');
    expect(page).not.toContain('onerror');
    expect(page).not.toContain('&#60;script');
    expect((await get(`/portcullis/approvals/${id}`, 'alice')).status).toBe(403);
    expect((await get(`/portcullis/approvals/${selfAllowed}`, 'alice')).status).toBe(403);
    const carol = await get(`/portcullis/approvals/${id}`, 'carol');
    expect(carol.status).toBe(200);
    expect(carol.headers.get('x-frame-options')).toBe('DENY');
  });

  it('a non-approver’s decision is refused even with a good token; methods, bodies and ids are checked', async () => {
    const post = (path: string, who: string, body: string, type = 'application/x-www-form-urlencoded') =>
      fetch(`${origin}${path}`, {
        method: 'POST',
        headers: { cookie: `__Host-portcullis-approvals=${who}`, origin, 'content-type': type },
        body,
      });
    // dave's own token for his session and this approval: still not an approver.
    const { createHash } = await import('node:crypto');
    const token = createHash('sha256').update(`portcullis approvals csrf\ns-dave\n${id}`).digest('base64url');
    expect((await post(`/portcullis/approvals/${id}`, 'dave', `decision=approve&csrf=${token}`)).status).toBe(
      403,
    );
    expect(refused.at(-1)).toBe('not_approver');
    expect(
      (await post(`/portcullis/approvals/${id}`, 'carol', '{"decision":"approve"}', 'application/json'))
        .status,
    ).toBe(403);
    expect((await post(`/portcullis/approvals/${id}`, 'carol', `csrf=${'x'.repeat(5000)}`)).status).toBe(403);
    expect((await post(`/portcullis/approvals/${id}/status`, 'carol', '')).status).toBe(405);
    expect((await fetch(`${origin}/portcullis/approvals/${id}`, { method: 'DELETE' })).status).toBe(405);
    expect((await get('/portcullis/approvals/short', 'carol')).status).toBe(404);
    expect((await get('/portcullis/nothing', 'carol')).status).toBe(404);
    expect((await store.get(id))?.state).toBe('pending');
  });
});

describe('who asked (self-approval and the status page)', () => {
  const store = createLocalApprovalStore();
  let server: Server;
  let origin = '';
  const ids: Record<string, string> = {};
  const personAt = (issuer: string, subject: string): Person => ({
    issuer,
    subject,
    approver: true,
    session: `s-${subject}-${issuer}`,
    expiresAt: Date.now() + 60_000,
  });
  const logins: Record<string, Person> = {
    // The provider's `iss` without the slash the policy's `oidc.issuer` has.
    alice: personAt('https://idp.example.com', 'alice'),
    bob: personAt('https://idp.example.com', 'bob'),
    carol: personAt('https://idp.example.com', 'carol'),
  };

  beforeAll(async () => {
    ({ origin, server } = await servePages({
      store,
      login: { ...login, person: (cookie) => (cookie === undefined ? undefined : logins[cookie]) },
      approvals: {
        // bob calls as a JWT of another issuer (the MCP authorization server), owned by bob at the IdP.
        owners: { 'apiKey:alice': 'alice', 'jwt:https://mcp-as.example.com|u-77': 'bob' },
        oidc: { issuer: 'https://idp.example.com/', clientId: 'c', scopes: [] },
      },
    }));
    const base = {
      bindings: {
        identity: '',
        route: '/mcp',
        tool: 'drop',
        argumentsHash: 'h',
        pinHash: null,
        store: 'approvals',
      },
      arguments: '{}',
      rule: 'tools.drop',
      createdAt: Date.now(),
      expiresAt: Date.now() + 60_000,
    };
    for (const [name, requester] of [
      ['owned', { key: 'apiKey:alice' }],
      [
        'otherIssuer',
        { key: 'jwt:https://mcp-as.example.com|u-77', issuer: 'https://mcp-as.example.com', subject: 'u-77' },
      ],
      [
        'sameIssuer',
        { key: 'jwt:https://idp.example.com/|alice', issuer: 'https://idp.example.com/', subject: 'alice' },
      ],
    ] as const) {
      ids[name] = newApprovalId();
      await store.create({ ...base, id: ids[name] as string, requester });
    }
  });
  afterAll(() => {
    server.close();
  });

  const get = (path: string, who: string) =>
    fetch(`${origin}${path}`, {
      redirect: 'manual',
      headers: { cookie: `__Host-portcullis-approvals=${who}` },
    });

  it('an owner is recognized though the provider spells its issuer without the policy’s trailing slash', async () => {
    expect((await get(`/portcullis/approvals/${ids.owned}`, 'alice')).status).toBe(403);
    expect((await get(`/portcullis/approvals/${ids.owned}/status`, 'alice')).status).toBe(200);
    expect((await get(`/portcullis/approvals/${ids.owned}`, 'carol')).status).toBe(200);
  });

  it('a JWT caller of another issuer is recognized through owners', async () => {
    expect((await get(`/portcullis/approvals/${ids.otherIssuer}`, 'bob')).status).toBe(403);
    expect((await get(`/portcullis/approvals/${ids.otherIssuer}/status`, 'bob')).status).toBe(200);
    expect((await get(`/portcullis/approvals/${ids.otherIssuer}/status`, 'carol')).status).toBe(403);
  });

  it('a JWT caller of the login’s issuer is recognized by subject, a trailing slash aside', async () => {
    expect((await get(`/portcullis/approvals/${ids.sameIssuer}`, 'alice')).status).toBe(403);
    expect((await get(`/portcullis/approvals/${ids.sameIssuer}/status`, 'alice')).status).toBe(200);
  });

  it('sameIssuer: equal as URLs, a trailing slash aside; nothing else', () => {
    expect(sameIssuer('https://idp.example.com/', 'https://idp.example.com')).toBe(true);
    expect(sameIssuer('https://IDP.example.com/', 'https://idp.example.com')).toBe(true);
    expect(sameIssuer('https://idp.example.com/a', 'https://idp.example.com/a/')).toBe(true);
    expect(sameIssuer('https://idp.example.com/a', 'https://idp.example.com/b')).toBe(false);
    expect(sameIssuer('https://idp.example.com', 'http://idp.example.com')).toBe(false);
  });
});

describe('an expired approval', () => {
  it('is gone from its pages: 404 to the approver and the requester, and no decision can be taken', async () => {
    let clock = Date.now();
    const store = createLocalApprovalStore(() => clock);
    const { origin, server } = await servePages({ store, login });
    try {
      const id = newApprovalId();
      await store.create({
        id,
        requester: { key: 'apiKey:alice' },
        bindings: {
          identity: 'apiKey:alice',
          route: '/mcp',
          tool: 'drop',
          argumentsHash: 'h',
          pinHash: null,
          store: 'approvals',
        },
        arguments: '{}',
        rule: 'tools.drop',
        createdAt: clock,
        expiresAt: clock + 900_000,
      });
      const as = (who: string) => ({ headers: { cookie: `__Host-portcullis-approvals=${who}` } });
      expect((await fetch(`${origin}/portcullis/approvals/${id}`, as('carol'))).status).toBe(200);
      clock += 900_001;
      expect((await fetch(`${origin}/portcullis/approvals/${id}`, as('carol'))).status).toBe(404);
      expect((await fetch(`${origin}/portcullis/approvals/${id}/status`, as('alice'))).status).toBe(404);
      expect(
        await store.decide(id, 'approved', { issuer: 'https://idp', subject: 'carol' }, clock),
      ).toBeUndefined();
    } finally {
      server.close();
    }
  });
});
