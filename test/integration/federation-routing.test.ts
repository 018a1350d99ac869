/**
 * Federation (issue 16): lists paged across servers under composite cursors, names that look like
 * another server's, resources claimed twice, servers down or required, and two gateway processes
 * serving each other's federated sessions and cursors. The servers are real SDK v1 servers
 * (`startCatalogServer`: hundreds of tools, listed a page at a time) that record every request.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { connectV1Client, type Peer, startCatalogServer, v1TransportOf } from '../fixtures/peers.js';
import { freePort, startTestGateway, startWatchedGateway, type TestGateway } from '../support/gateway.js';
import { ensureBuilt, type GatewayProcess, startGatewayProcess } from '../support/gateway-process.js';
import { firstText, rpcMethod } from '../support/inspect.js';
import { modernCall } from '../support/modern-call.js';
import { counterValue, metricsText } from '../support/wire.js';

const alice = newApiKey();
const bob = newApiKey();
const SESSION_KEY = randomBytes(32).toString('base64');
const range = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, '0')}`);

let fs: Peer;
let gh: Peer;
let twin: Peer;
let down: number;
let gateway: TestGateway;
/** A second gateway: another OS process (`portcullis start`), sharing only the keys. */
let other: GatewayProcess;
let otherUrl: string;
let otherDir: string;
let log = '';

function policy(extra = ''): string {
  return `sessions: { keys: ["${SESSION_KEY}"] }
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [read] }
    - { id: bob, hash: "${bob.hash}", scopes: [read] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    servers:
      fs: { upstream: "${fs.url}" }
      gh: { upstream: "${gh.url}" }
      twin: { upstream: "${twin.url}" }
      down: { upstream: "http://127.0.0.1:${down}/mcp", upstreamTimeouts: { connectMs: 500, headersMs: 2000, idleMs: 2000 } }
    authentication: { methods: [apiKey] }
    default: allow
  - route: /other
    resource: http://127.0.0.1/other
    servers:
      fs: { upstream: "${fs.url}" }
      gh: { upstream: "${gh.url}" }
    authentication: { methods: [apiKey] }
    default: allow
  - route: /strict
    resource: http://127.0.0.1/strict
    servers:
      fs: { upstream: "${fs.url}" }
      down: { upstream: "http://127.0.0.1:${down}/mcp", required: true, upstreamTimeouts: { connectMs: 500, headersMs: 2000, idleMs: 2000 } }
    authentication: { methods: [apiKey] }
    default: allow
${extra}`;
}

beforeAll(async () => {
  // 160 + 170 tools, listed 50 at a time: 330 tools over several pages of each server.
  fs = await startCatalogServer({
    name: 'fs',
    tools: ['read', ...range('f', 159)],
    pageSize: 50,
    resources: ['mem://shared', 'mem://fs-only'],
  });
  // gh's own tool names look like fs's exposed ones: they must stay gh's.
  gh = await startCatalogServer({
    name: 'gh',
    tools: ['fs__read', ...range('g', 169)],
    pageSize: 50,
    resources: ['mem://shared'],
  });
  twin = await startCatalogServer({ name: 'twin', tools: ['only'], pageSize: 50 });
  down = await freePort();
  const sink = new Writable({
    write(chunk, _enc, done) {
      log += String(chunk);
      done();
    },
  });
  gateway = await startTestGateway({ policy: policy(), log: sink });
  ensureBuilt(['src/upstream/federation/upstream.ts', 'src/upstream/federation/member.ts']);
  const port = await freePort();
  otherUrl = `http://127.0.0.1:${port}`;
  otherDir = mkdtempSync(join(tmpdir(), 'portcullis-fed-other-'));
  const otherFile = join(otherDir, 'portcullis.yaml');
  writeFileSync(
    otherFile,
    `listen: { host: 127.0.0.1, port: ${port} }\nadmin: { host: 127.0.0.1, port: 0 }\naudit: { destination: none }\n${policy()}`,
  );
  other = await startGatewayProcess(otherFile);
});

afterAll(async () => {
  other?.kill();
  if (otherDir !== undefined) rmSync(otherDir, { recursive: true, force: true });
  await gateway?.close();
  await Promise.all([fs?.close(), gh?.close(), twin?.close()]);
});

/** Every page of `tools/list` through a raw 2026-07-28 client, following the composite cursor. */
async function allTools(
  url: string,
  key: string,
): Promise<{ names: string[]; pages: number; cursors: string[] }> {
  const names: string[] = [];
  const cursors: string[] = [];
  let cursor: string | undefined;
  let pages = 0;
  do {
    const answer = await modernCall(url, {
      method: 'tools/list',
      key,
      params: cursor === undefined ? {} : { cursor },
    });
    expect(answer.status).toBe(200);
    const result = (
      answer.body as { result: { tools: { name: string }[]; nextCursor?: string; cacheScope?: string } }
    ).result;
    names.push(...result.tools.map((t) => t.name));
    cursor = result.nextCursor;
    if (cursor !== undefined) cursors.push(cursor);
    pages++;
  } while (cursor !== undefined && pages < 20);
  return { names, pages, cursors };
}

describe('lists across servers', () => {
  it('pages 330 tools with composite cursors, every tool once, under its exposed name', async () => {
    const { names, pages } = await allTools(`${gateway.url}/mcp`, alice.key);
    expect(pages).toBe(4); // gh has 170 tools: four pages of 50
    expect(names).toHaveLength(160 + 170 + 1);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('fs__read');
    expect(names).toContain('gh__fs__read');
    expect(names).toContain('twin__only');
    expect(names.every((n) => /^(fs|gh|twin)__/.test(n))).toBe(true);
  });

  it('refuses a cursor replayed by another identity, on another route or for another list (400, -32602), reaching no server', async () => {
    const { cursors } = await allTools(`${gateway.url}/mcp`, alice.key);
    const cursor = cursors[0] as string;
    const before = fs.requests.length + gh.requests.length;
    for (const attempt of [
      modernCall(`${gateway.url}/mcp`, { method: 'tools/list', key: bob.key, params: { cursor } }),
      modernCall(`${gateway.url}/other`, { method: 'tools/list', key: alice.key, params: { cursor } }),
      modernCall(`${gateway.url}/mcp`, { method: 'prompts/list', key: alice.key, params: { cursor } }),
      modernCall(`${gateway.url}/mcp`, {
        method: 'tools/list',
        key: alice.key,
        params: { cursor: `${cursor.slice(0, -2)}AA` },
      }),
    ]) {
      const answer = await attempt;
      expect(answer.status).toBe(400);
      expect(answer.body).toMatchObject({ error: { code: -32602 } });
    }
    expect(fs.requests.length + gh.requests.length).toBe(before);
  });

  it('leaves a server that is down out of the list (logged, counted) unless it is required', async () => {
    const { names } = await allTools(`${gateway.url}/mcp`, alice.key);
    expect(names.length).toBe(331);
    expect(log).toContain('server left out of a merged list');
    const metrics = await metricsText(gateway);
    expect(
      counterValue(metrics, 'portcullis_federation_requests_total', {
        route: '/mcp',
        server: 'down',
        outcome: 'unreachable',
      }),
    ).toBeGreaterThan(0);
    expect(
      counterValue(metrics, 'portcullis_federation_requests_total', {
        route: '/mcp',
        server: 'fs',
        outcome: 'ok',
      }),
    ).toBeGreaterThan(0);
    const strict = await modernCall(`${gateway.url}/strict`, { method: 'tools/list', key: alice.key });
    expect(strict.status).toBe(502);
    // A session cannot begin without a required server; readiness depends on no server.
    await expect(
      connectV1Client(`${gateway.url}/strict`, { headers: { authorization: `Bearer ${alice.key}` } }),
    ).rejects.toThrow();
    expect((await fetch(`${gateway.adminUrl}/readyz`)).status).toBe(200);
  });
});

describe('calls across servers', () => {
  it('routes by prefix: a server whose own names look like another’s exposed names never captures its calls', async () => {
    const fsBefore = fs.requests.length;
    const ghBefore = gh.requests.length;
    const toFs = await modernCall(`${gateway.url}/mcp`, {
      method: 'tools/call',
      key: alice.key,
      params: { name: 'fs__read', arguments: {} },
    });
    expect(firstText((toFs.body as { result: unknown }).result)).toBe('fs:read');
    const toGh = await modernCall(`${gateway.url}/mcp`, {
      method: 'tools/call',
      key: alice.key,
      params: { name: 'gh__fs__read', arguments: {} },
    });
    expect(firstText((toGh.body as { result: unknown }).result)).toBe('gh:fs__read');
    expect(fs.requests.slice(fsBefore).filter((r) => rpcMethod(r) === 'tools/call')).toHaveLength(1);
    expect(gh.requests.slice(ghBefore).filter((r) => rpcMethod(r) === 'tools/call')).toHaveLength(1);
  });

  it('refuses a name no server owns (403) before any server hears of it', async () => {
    const before = fs.requests.length + gh.requests.length + twin.requests.length;
    for (const name of ['read', 'nobody__read', 'fs__', 'FS__read']) {
      const answer = await modernCall(`${gateway.url}/mcp`, {
        method: 'tools/call',
        key: alice.key,
        params: { name, arguments: {} },
      });
      expect(answer.status).toBe(403);
    }
    expect(fs.requests.length + gh.requests.length + twin.requests.length).toBe(before);
  });

  it('refuses a URI two servers advertise as not found (and logs the conflict); reads one only one server has', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`, {
      headers: { authorization: `Bearer ${alice.key}` },
    });
    try {
      await client.listResources();
      const fsBefore = fs.requests.length;
      const ghBefore = gh.requests.length;
      await expect(client.readResource({ uri: 'mem://shared' })).rejects.toThrow(/-32002|not found/i);
      expect(fs.requests.slice(fsBefore).some((r) => rpcMethod(r) === 'resources/read')).toBe(false);
      expect(gh.requests.slice(ghBefore).some((r) => rpcMethod(r) === 'resources/read')).toBe(false);
      expect(log).toContain('resource URI claimed by two servers');
      const own = await client.readResource({ uri: 'mem://fs-only' });
      expect(own.contents[0]).toMatchObject({ text: 'fs:mem://fs-only' });
      const modern = await modernCall(`${gateway.url}/mcp`, {
        method: 'resources/read',
        key: alice.key,
        params: { uri: 'mem://shared' },
      });
      expect(modern.body).toMatchObject({ error: { code: -32602 } });
    } finally {
      await client.close();
    }
  });
});

describe('two gateway processes with the same keys', () => {
  it('serve each other’s federated sessions and cursors', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`, {
      headers: { authorization: `Bearer ${alice.key}` },
    });
    try {
      const sessionId = v1TransportOf(client).sessionId as string;
      const answer = await fetch(`${otherUrl}/mcp`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${alice.key}`,
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessionId,
          'mcp-protocol-version': '2025-11-25',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 7,
          method: 'tools/call',
          params: { name: 'twin__only', arguments: {} },
        }),
      });
      expect(answer.status).toBe(200);
      expect(await answer.text()).toContain('twin:only');
    } finally {
      await client.close();
    }
    const first = await modernCall(`${gateway.url}/mcp`, { method: 'tools/list', key: alice.key });
    const cursor = (first.body as { result: { nextCursor: string } }).result.nextCursor;
    const second = await modernCall(`${otherUrl}/mcp`, {
      method: 'tools/list',
      key: alice.key,
      params: { cursor },
    });
    expect(second.status).toBe(200);
    expect((second.body as { result: { tools: unknown[] } }).result.tools.length).toBeGreaterThan(0);
  });
});

describe('a federated route reloaded', () => {
  it('takes a renamed prefix at once: the new names call, the old ones are unowned', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-fed-reload-'));
    const file = join(dir, 'portcullis.yaml');
    const write = (prefix: string) =>
      writeFileSync(
        file,
        `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: none }
limits: { drainTimeoutMs: 1000 }
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [read] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    servers:
      fs: { upstream: "${fs.url}" }
      twin: { upstream: "${twin.url}", prefix: ${prefix} }
    authentication: { methods: [apiKey] }
    default: allow
`,
      );
    write('twin__');
    const watched = await startWatchedGateway(file);
    try {
      const call = (name: string) =>
        modernCall(`${watched.url}/mcp`, {
          method: 'tools/call',
          key: alice.key,
          params: { name, arguments: {} },
        });
      expect((await call('twin__only')).status).toBe(200);
      write('t_');
      expect(await watched.reload()).toBe('applied');
      const renamed = await call('t_only');
      expect(firstText((renamed.body as { result: unknown }).result)).toBe('twin:only');
      expect((await call('twin__only')).status).toBe(403);
    } finally {
      await watched.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
