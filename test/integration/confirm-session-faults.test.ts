/**
 * `confirm: caller` on legacy sessions when something changes while the call waits for its
 * person: a reload (the policy decides the call again after the yes; the old route's connections
 * are closed), Redis going away when a replica first asks, a 2025-06-18 session. Found by an
 * attack review of the legacy confirmation; each was a defect before its fix.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { loadConfigFile } from '../../src/config/load.js';
import type { Gateway } from '../../src/server/gateway.js';
import { startGateway } from '../../src/server/gateway.js';
import { startV1Server, type V1Peer } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { callsOf, echoCall, rawSession, sseReader, yes } from '../support/legacy-session.js';
import { type RedisServer, startRedis } from '../support/redis.js';
import { sleep } from '../support/wait.js';

const alice = newApiKey('pk_alice_');
const sessionKey = Buffer.alloc(32, 7).toString('base64');

describe('a reload while a legacy call waits for its yes', () => {
  let dir: string;
  let file: string;
  let upstream: V1Peer;
  let gateway: Gateway;
  const policy = (aliceScopes: string, confirm = 'caller') => `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: ${JSON.stringify(join(dir, 'audit.jsonl'))} }
limits: { drainTimeoutMs: 1000 }
sessions: { keys: ["${sessionKey}"] }
approvals:
  publicUrl: http://127.0.0.1:9
  oidc: { issuer: "http://127.0.0.1:9/", clientId: approvals }
  approverScopes: [mcp:approve]
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [${aliceScopes}] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    tools:
      echo: { scopes: notes:write, confirm: ${confirm} }
      add: notes:read
`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-confirm-'));
    file = join(dir, 'portcullis.yaml');
    upstream = await startV1Server({ response: 'json' });
    writeFileSync(file, policy('notes:write, notes:read'));
    const loaded = loadConfigFile(file);
    gateway = await startGateway({
      config: loaded.config,
      configPath: file,
      configSource: loaded.source,
      logger: pino({ level: process.env.TEST_LOG ?? 'silent' }),
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const internalErrors = async () =>
    (await (await fetch(`${gateway.adminUrl}/metrics`)).text()).match(
      /portcullis_internal_errors_total\{where="request"\} \d+/,
    )?.[0];

  it('a yes after the reload took the scope away is refused by the policy in force now, never forwarded', async () => {
    const url = `${gateway.url}/mcp`;
    writeFileSync(file, policy('notes:write, notes:read'));
    expect(['applied', 'unchanged']).toContain(await gateway.reload());
    const mine = await rawSession(url, alice.key);
    const before = callsOf(upstream, 'echo');
    const call = await mine.post(echoCall(1));
    const events = sseReader(call.body);
    const [question] = (await events.messages(1)) as [{ id: string; params: Record<string, unknown> }];

    // The operator takes notes:write away from alice (her key still authenticates: not closed).
    writeFileSync(file, policy('notes:read'));
    expect(await gateway.reload()).toBe('applied');
    const fresh = await mine.post(echoCall(2));
    expect(fresh.status).toBe(403);
    await fresh.text();

    // Her yes to the question asked before: the call is decided again, and denied.
    const answered = await mine.post(yes(question.id));
    expect(answered.status).toBe(202);
    await answered.text();
    const rest = await events.rest();
    expect(rest).toContain('"id":1');
    expect(rest).toContain('insufficient_scope');
    expect(callsOf(upstream, 'echo')).toBe(before);
    expect(await internalErrors()).toBe('portcullis_internal_errors_total{where="request"} 0');
  });

  it('a yes after a reload that now asks for an approver is refused: the caller’s yes is no approver’s', async () => {
    const url = `${gateway.url}/mcp`;
    writeFileSync(file, policy('notes:write, notes:read'));
    await gateway.reload();
    const mine = await rawSession(url, alice.key);
    const before = callsOf(upstream, 'echo');
    const call = await mine.post(echoCall(5));
    const events = sseReader(call.body);
    const [question] = (await events.messages(1)) as [{ id: string; params: Record<string, unknown> }];
    writeFileSync(file, policy('notes:write, notes:read', 'approver'));
    expect(await gateway.reload()).toBe('applied');
    expect((await mine.post(yes(question.id))).status).toBe(202);
    const rest = await events.rest();
    expect(rest).toContain('confirmation_expired');
    expect(rest).toContain('policy_changed');
    expect(callsOf(upstream, 'echo')).toBe(before);
  });

  it('a yes after a reload that kept the scope goes through the new route (its old connections are closed)', async () => {
    const url = `${gateway.url}/mcp`;
    writeFileSync(file, policy('notes:write'));
    expect(await gateway.reload()).toBe('applied');
    const mine = await rawSession(url, alice.key);
    const before = callsOf(upstream, 'echo');
    const call = await mine.post(echoCall(3));
    const events = sseReader(call.body);
    const [question] = (await events.messages(1)) as [{ id: string; params: Record<string, unknown> }];
    writeFileSync(file, policy('notes:write, notes:read'));
    expect(await gateway.reload()).toBe('applied');
    expect((await mine.post(yes(question.id))).status).toBe(202);
    const rest = await events.rest();
    expect(rest).toContain('drop table');
    expect(callsOf(upstream, 'echo')).toBe(before + 1);
    expect(await internalErrors()).toBe('portcullis_internal_errors_total{where="request"} 0');
  });
});

describe('a reload while a legacy call to a stdio server waits (the process outlives the reload)', () => {
  const SERVER = new URL('../fixtures/v2-stdio-server.mjs', import.meta.url).pathname;
  let dir: string;
  let file: string;
  let gateway: Gateway;
  const policy = (aliceScopes: string) => `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: none }
limits: { drainTimeoutMs: 1000 }
sessions: { keys: ["${sessionKey}"] }
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [${aliceScopes}] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream:
      command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(SERVER)}]
      processes: perSession
    authentication: { methods: [apiKey] }
    tools:
      echo: { scopes: notes:write, confirm: caller }
      whoami: notes:read
`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-confirm-stdio-'));
    file = join(dir, 'portcullis.yaml');
    writeFileSync(file, policy('notes:write, notes:read'));
    const loaded = loadConfigFile(file);
    gateway = await startGateway({
      config: loaded.config,
      configPath: file,
      configSource: loaded.source,
      logger: pino({ level: process.env.TEST_LOG ?? 'silent' }),
    });
  });
  afterAll(async () => {
    await gateway?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the yes given after notes:write was revoked does not run the call', async () => {
    const url = `${gateway.url}/mcp`;
    const mine = await rawSession(url, alice.key);
    expect(mine.session).toBeTruthy();
    const call = await mine.post(echoCall(1));
    expect(call.headers.get('content-type')).toBe('text/event-stream');
    const events = sseReader(call.body);
    const [question] = (await events.messages(1)) as [{ id: string; params: Record<string, unknown> }];

    writeFileSync(file, policy('notes:read'));
    expect(['applied', 'unchanged']).toContain(await gateway.reload());
    const fresh = await mine.post(echoCall(2));
    expect(fresh.status).toBe(403); // revoked: a new echo call is denied
    await fresh.text();

    expect((await mine.post(yes(question.id))).status).toBe(202);
    const rest = await events.rest();
    // Decided again after the yes: denied, and the process never ran it.
    expect(rest).not.toContain('drop table');
    expect(rest).toContain('insufficient_scope');
  });
});

describe('Redis down when a replica asks its first legacy question', () => {
  let redis: RedisServer;
  let upstream: V1Peer;
  let one: TestGateway;
  let two: TestGateway;

  beforeAll(async () => {
    redis = await startRedis();
    upstream = await startV1Server({ response: 'json' });
    const policy = `redis: { url: "${redis.url}", commandTimeoutMs: 500 }
approvals: { confirmTimeoutSec: 5 }
sessions: { keys: ["${sessionKey}"] }
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [notes:write] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    tools:
      echo: { scopes: notes:write, confirm: caller }
`;
    one = await startTestGateway({ policy });
    two = await startTestGateway({ policy });
  });
  afterAll(async () => {
    await one?.close();
    await two?.close();
    await upstream?.close();
    await redis?.stop();
  });

  it('once Redis is back, an answer taken by the other replica reaches the asking one', async () => {
    const mine = await rawSession(`${one.url}/mcp`, alice.key);
    // Redis goes away for a moment, exactly when replica one is first asked to confirm: 503.
    await redis.stop();
    const refused = await mine.post(echoCall(1));
    expect(refused.status).toBe(503);
    await refused.text();
    await redis.start();
    // Replica one's own Redis connection comes back (its limiter answers again).
    let call: Response | undefined;
    for (let i = 0; i < 50 && call === undefined; i++) {
      const tried = await mine.post(echoCall(2));
      if (tried.status === 200) call = tried;
      else {
        await tried.text();
        await sleep(200);
      }
    }
    expect(call).toBeDefined();
    const events = sseReader((call as Response).body);
    const [question] = (await events.messages(1)) as [{ id: string; params: Record<string, unknown> }];
    // The answer reaches replica two (a load balancer's choice): taken there, published to one.
    const there = await fetch(`${two.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${alice.key}`,
        'mcp-protocol-version': '2025-11-25',
        'mcp-session-id': mine.session,
      },
      body: JSON.stringify(yes(question.id)),
    });
    expect(there.status).toBe(202);
    const rest = await events.rest();
    // Replica one listens again: the yes taken by two reaches it and the call goes through.
    expect(rest).toContain('drop table');
  }, 30_000);
});

describe('a 2025-06-18 legacy session', () => {
  let upstream: V1Peer;
  let gateway: TestGateway;
  beforeAll(async () => {
    upstream = await startV1Server({ response: 'json' });
    gateway = await startTestGateway({
      policy: `sessions: { keys: ["${sessionKey}"] }
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [notes:write] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    tools:
      echo: { scopes: notes:write, confirm: caller }
`,
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('asks, and forwards after the yes', async () => {
    const url = `${gateway.url}/mcp`;
    const mine = await rawSession(url, alice.key, {
      version: '2025-06-18',
      capabilities: { elicitation: {} },
    });
    const events = sseReader((await mine.post(echoCall(5))).body);
    const [question] = (await events.messages(1)) as [{ id: string; params: Record<string, unknown> }];
    expect(question.params.mode).toBeUndefined();
    const answered = await mine.post(yes(question.id));
    expect(answered.status).toBe(202);
    const rest = await events.rest();
    expect(rest).toContain('drop table');
  });
});
