/**
 * Key smuggling against a real Go upstream (issue 13, class 4). Go's `encoding/json` matches
 * struct fields case-insensitively by Unicode simple folding, last match wins: `"NAME"`,
 * `"Method"`, `"paramſ"` (U+017F) reach it as `name`, `method`, `params`. Each attack is first
 * sent straight to the Go server — proving it really runs `admin_reset` (or takes the other
 * arguments) — then through the gateway, which must refuse it (400 `invalid_request`) without the
 * Go server seeing anything, while a normal call still works.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { foldCodePoint } from '../../src/jsonrpc/case-fold.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

const SOURCE = join(import.meta.dirname, '../fixtures/go-upstream');
const VERSION = '2025-06-18';

let dir: string;
let binary: string;
let child: ChildProcess;
let goUrl: string;
let gateway: TestGateway;
let url: string;

/** Builds the Go fixture; without Go this test fails — it is never skipped. */
function buildGoUpstream(): string {
  const version = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (version.error !== undefined || version.status !== 0) {
    throw new Error('`go` is not on PATH: install golang-go (.ci/run does)');
  }
  const out = join(dir, 'go-upstream');
  const build = spawnSync('go', ['build', '-o', out, '.'], {
    cwd: SOURCE,
    encoding: 'utf8',
    env: { ...process.env, GOCACHE: process.env.GOCACHE ?? join(tmpdir(), 'portcullis-gocache') },
  });
  if (build.status !== 0) throw new Error(`go build failed: ${build.stderr}`);
  return out;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-go-'));
  binary = buildGoUpstream();
  child = spawn(binary, [], { stdio: ['ignore', 'pipe', 'inherit'] });
  // The fixture prints its address on its first line.
  const address = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the Go upstream exited with ${code}`)));
  });
  goUrl = `http://${address}`;
  gateway = await startTestGateway({
    policy: `identities:
  anonymous: { scopes: [demo:echo] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${goUrl}/mcp
    authentication: { methods: [anonymous] }
    default: deny
    tools: { echo: demo:echo, admin_reset: demo:admin }
`,
  });
  url = `${gateway.url}/mcp`;
}, 180_000);

afterAll(async () => {
  await gateway?.close();
  child?.kill();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** Every body the Go server received so far. */
async function goSeen(): Promise<string[]> {
  return (await (await fetch(`${goUrl}/seen`)).json()) as string[];
}

async function post(
  target: string,
  body: string,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const answer = await fetch(target, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': VERSION,
    },
    body,
  });
  return { status: answer.status, body: (await answer.json()) as Record<string, unknown> };
}

const normalCall =
  '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}';

/** Attacks, each with what the Go server does when it gets the body directly. */
const ATTACKS: readonly { name: string; body: string; goRuns: string; goArguments?: unknown }[] = [
  {
    name: '"NAME" beside "name"',
    body: '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","NAME":"admin_reset"}}',
    goRuns: 'admin_reset',
  },
  {
    name: '"Method" beside "method" (policy reads tools/list)',
    body: '{"jsonrpc":"2.0","id":3,"method":"tools/list","Method":"tools/call","params":{"name":"admin_reset"}}',
    goRuns: 'admin_reset',
  },
  {
    name: '"paramſ" (U+017F) beside "params"',
    body: '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo"},"param\\u017f":{"name":"admin_reset"}}',
    goRuns: 'admin_reset',
  },
  {
    name: 'a "response" carrying only "Method" (the gateway would read an answer)',
    body: '{"jsonrpc":"2.0","id":5,"Method":"tools/call","params":{"name":"admin_reset"},"result":{}}',
    goRuns: 'admin_reset',
  },
  {
    name: '"Arguments" beside "arguments"',
    body: '{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"},"Arguments":{"text":"evil"}}}',
    goRuns: 'echo',
    goArguments: { text: 'evil' },
  },
  {
    name: '"argumentſ" alone (policy would see no arguments)',
    body: '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","argument\\u017f":{"text":"evil"}}}',
    goRuns: 'echo',
    goArguments: { text: 'evil' },
  },
];

describe('a Go upstream with encoding/json behind the gateway', () => {
  it('runs a normal call the caller may make', async () => {
    const before = (await goSeen()).length;
    const answer = await post(url, normalCall);
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ id: 1, result: { ran: 'echo', arguments: { text: 'hi' } } });
    expect(await goSeen()).toHaveLength(before + 1);
  });

  it('refuses the tool the caller may not call, by policy (the control)', async () => {
    const before = (await goSeen()).length;
    const answer = await post(
      url,
      '{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"admin_reset","arguments":{}}}',
    );
    expect(answer.status).toBe(403);
    expect(await goSeen()).toHaveLength(before);
  });

  it.each(ATTACKS)('refuses $name, which the Go server would obey, before it reaches it', async (attack) => {
    // The attack is real: straight to the Go server, it runs what policy would not have allowed.
    const direct = await post(`${goUrl}/mcp`, attack.body);
    expect(direct.body).toMatchObject({ result: { ran: attack.goRuns } });
    if (attack.goArguments !== undefined)
      expect(direct.body).toMatchObject({ result: { arguments: attack.goArguments } });

    const before = (await goSeen()).length;
    const answer = await post(url, attack.body);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ error: { code: -32600, data: { reason: 'invalid_request' } } });
    expect(await goSeen(), 'the Go server must see nothing').toHaveLength(before);

    // The gateway keeps serving.
    const next = await post(url, normalCall);
    expect(next.status).toBe(200);
    expect(await goSeen()).toHaveLength(before + 1);
  });

  it('audits every smuggling refusal', async () => {
    const records = await gateway.auditRecords();
    const refused = records.filter((r) => r.reason === 'invalid_request' && r.status === 400);
    expect(refused.length).toBeGreaterThanOrEqual(ATTACKS.length);
  });
});

describe('the gateway case fold against Go unicode.SimpleFold', () => {
  it('folds every member of every orbit Go knows to one code point', () => {
    const result = spawnSync(binary, ['orbits'], { encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 });
    expect(result.status).toBe(0);
    const orbits = result.stdout
      .trim()
      .split('\n')
      .map((line) => line.split(' ').map((h) => Number.parseInt(h, 16)));
    expect(orbits.length).toBeGreaterThan(1000);
    const split = orbits.filter((orbit) => new Set(orbit.map(foldCodePoint)).size !== 1);
    expect(split.map((orbit) => orbit.map((cp) => cp.toString(16)).join(' '))).toEqual([]);
  });
});
