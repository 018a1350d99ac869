/**
 * stdio upstreams under fault (issue 15, DESIGN.md "Upstreams" → stdio): real child processes of
 * `test/fixtures/stdio-misbehaving.mjs`, killed with SIGKILL mid-call, silent at start, writing
 * garbage, flooding stdout, crashing in a loop, shared between identities, capped by
 * `maxProcesses`, and stopped at shutdown. Each failure path asserts what the client got (status,
 * JSON-RPC code, `data.reason`) and that the gateway goes on serving; the fixture records its pid
 * and every message it receives, so the tests also see what reached the process — and what did not.
 */
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import {
  events,
  LEGACY,
  type Message,
  messagesOf,
  openSession as openRawSession,
  legacyPost as rawLegacyPost,
  until,
} from '../support/raw-mcp.js';
import { sleep } from '../support/wait.js';
import { META, modernHeaders } from '../support/wire.js';

const FIXTURE = fileURLToPath(new URL('../fixtures/stdio-misbehaving.mjs', import.meta.url));
const KEYS = Array.from({ length: 100 }, () => newApiKey('pk_'));
const key = (user: number): string => (KEYS[user] as { key: string }).key;

/** A legacy POST as user `user` (its API key). */
const legacyPost = (
  url: string,
  user: number,
  session: string | undefined,
  body: unknown,
  signal?: AbortSignal,
) => rawLegacyPost(url, key(user), session, body, signal);
/** A legacy session opened as user `user`. */
const openSession = (url: string, user: number) => openRawSession(url, key(user));

// ---------------------------------------------------------------------------------------------
// Where the fixture reports: the pids it started with, the messages it received, flood progress
// ---------------------------------------------------------------------------------------------

interface Workspace {
  readonly dir: string;
  readonly pids: string;
  readonly log: string;
  readonly flood: string;
}

const workspaces: string[] = [];

function workspace(): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'stdio-faults-'));
  workspaces.push(dir);
  const ws = { dir, pids: join(dir, 'pids'), log: join(dir, 'received.jsonl'), flood: join(dir, 'flood') };
  mkdirSync(ws.pids);
  mkdirSync(ws.flood);
  return ws;
}

afterAll(() => {
  for (const dir of workspaces) rmSync(dir, { recursive: true, force: true });
});

/** A route's `upstream:` running the fixture in `mode` (argv), reporting into `ws`. */
function fixture(
  ws: Workspace,
  mode: readonly string[],
  extra = '',
  env: Record<string, string> = {},
): string {
  const vars = { FIXTURE_PIDS: ws.pids, FIXTURE_LOG: ws.log, FIXTURE_FLOOD: ws.flood, ...env };
  return `{ command: ${JSON.stringify([process.execPath, FIXTURE, ...mode])}, env: ${JSON.stringify(vars)}${extra} }`;
}

/** The fixture processes started so far, with their mode. */
function started(ws: Workspace): { pid: number; mode: string }[] {
  return readdirSync(ws.pids).map((name) => ({
    pid: Number(name),
    mode: readFileSync(join(ws.pids, name), 'utf8'),
  }));
}

/** Every message the fixture processes received, in order, with the receiving pid. */
function received(ws: Workspace): { pid: number; message: Message }[] {
  if (!existsSync(ws.log)) return [];
  return readFileSync(ws.log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { pid: number; message: Message });
}

function toolName(message: Message): unknown {
  return (message.params as { name?: unknown } | undefined)?.name;
}

/** Alive, and not a zombie waiting for a parent that will never reap it. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function gone(pids: readonly number[], timeoutMs = 3_000): Promise<true> {
  return until(`pids ${pids.join(', ')} to exit`, () => pids.every((pid) => !alive(pid)), timeoutMs);
}

// ---------------------------------------------------------------------------------------------
// Clients: raw 2026-07-28 requests, and raw legacy sessions
// ---------------------------------------------------------------------------------------------

interface CallOptions {
  readonly id?: number | string;
  readonly progressToken?: string;
  readonly signal?: AbortSignal;
}

/** A modern `tools/call` with an API key. */
function callTool(url: string, user: number, name: string, args: Message = {}, opts: CallOptions = {}) {
  const meta = opts.progressToken === undefined ? META : { ...META, progressToken: opts.progressToken };
  return fetch(url, {
    method: 'POST',
    headers: { ...modernHeaders('tools/call', name), authorization: `Bearer ${key(user)}` },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: opts.id ?? 1,
      method: 'tools/call',
      params: { name, arguments: args, _meta: meta },
    }),
    ...(opts.signal === undefined ? {} : { signal: opts.signal }),
  });
}

function legacyTool(
  url: string,
  user: number,
  session: string,
  id: number,
  name: string,
  args: Message = {},
) {
  return legacyPost(url, user, session, {
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: args },
  });
}

async function next(stream: AsyncGenerator<Message>): Promise<Message> {
  const { value, done } = await stream.next();
  if (done) throw new Error('the stream ended');
  return value;
}

/** The tool result text of the answer to `id` among `messages`. */
function resultText(messages: readonly Message[], id: number | string = 1): string {
  const answer = messages.find((m) => m.id === id && m.method === undefined);
  const content = (answer?.result as { content?: { text?: string }[] } | undefined)?.content;
  const text = content?.[0]?.text;
  if (text === undefined) throw new Error(`no result text for id ${id}: ${JSON.stringify(messages)}`);
  return text;
}

async function textOf(answer: Response, id: number | string = 1): Promise<string> {
  expect(answer.status).toBe(200);
  return resultText(await messagesOf(answer), id);
}

/** Asserts a refusal's status, JSON-RPC code and `data.reason`; returns the error body. */
async function expectRefusal(
  answer: Response,
  status: number,
  code: number,
  reason: string,
  id: unknown = 1,
) {
  const text = await answer.text();
  expect({ status: answer.status, text }).toMatchObject({ status });
  const body = JSON.parse(text) as Message;
  expect(body).toMatchObject({ jsonrpc: '2.0', id, error: { code, data: { reason } } });
  return body;
}

function apiKeys(count: number): string {
  return KEYS.slice(0, count)
    .map((k, i) => `    - { id: user${i}, hash: "${k.hash}", scopes: [fx] }`)
    .join('\n');
}

/** A gateway whose routes (`path → upstream`, plus extra route lines) take API keys. */
function gatewayWith(
  routes: Record<string, { upstream: string; extra?: string }>,
  opts: { keys?: number; limits?: string } = {},
): Promise<TestGateway> {
  const lines = Object.entries(routes).map(
    ([path, r]) => `  - route: ${path}
    resource: http://127.0.0.1${path}
    upstream: ${r.upstream}
    authentication: { methods: [apiKey] }
${r.extra ?? '    default: allow'}`,
  );
  return startTestGateway({
    policy: `limits: { drainTimeoutMs: 2000${opts.limits ?? ''} }
authFailures: { limit: 1000/second }
identities:
  apiKeys:
${apiKeys(opts.keys ?? 8)}
routes:
${lines.join('\n')}
`,
  });
}

// ---------------------------------------------------------------------------------------------

describe('a child killed with SIGKILL mid-call', () => {
  const ws = workspace();
  let gateway: TestGateway;
  let url: string;
  let wrappedUrl: string;

  beforeAll(async () => {
    gateway = await gatewayWith({
      '/mcp': { upstream: fixture(ws, ['serve']) },
      '/wrapped/mcp': { upstream: fixture(ws, ['wrapper', 'serve']) },
    });
    url = `${gateway.url}/mcp`;
    wrappedUrl = `${gateway.url}/wrapped/mcp`;
  });
  afterAll(() => gateway?.close());

  const hangReached = (pid: number) =>
    until('the hanging call to reach the child', () =>
      received(ws).some((r) => r.pid === pid && toolName(r.message) === 'hang'),
    );

  it('answers the in-flight call 502 upstream_unreachable, and the next call starts a new process', async () => {
    const pid = Number(await textOf(await callTool(url, 0, 'pid')));
    const otherPid = Number(await textOf(await callTool(url, 1, 'pid')));
    expect(pid).not.toBe(otherPid);
    const pending = callTool(url, 0, 'hang', {}, { id: 41 });
    await hangReached(pid);
    process.kill(pid, 'SIGKILL');
    await expectRefusal(await pending, 502, -31095, 'upstream_unreachable', 41);

    const restarted = Number(await textOf(await callTool(url, 0, 'pid')));
    expect(restarted).not.toBe(pid);
    expect(alive(restarted)).toBe(true);
    await gone([pid]);
    // Another identity's process was not touched.
    expect(Number(await textOf(await callTool(url, 1, 'pid')))).toBe(otherPid);
  });

  it('ends an SSE answer that had started with a -31095 error event for the open request', async () => {
    const pid = Number(await textOf(await callTool(url, 2, 'pid')));
    const answer = await callTool(
      url,
      2,
      'progress-hang',
      { tag: 'before-kill', steps: 1 },
      { id: 42, progressToken: 'tok' },
    );
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const stream = events(answer);
    expect(await next(stream)).toMatchObject({
      method: 'notifications/progress',
      params: { progressToken: 'tok', progress: 1, message: 'before-kill' },
    });
    process.kill(pid, 'SIGKILL');
    expect(await next(stream)).toMatchObject({
      jsonrpc: '2.0',
      id: 42,
      error: { code: -31095, data: { reason: 'upstream_unreachable' } },
    });
    expect((await stream.next()).done).toBe(true);
    expect(await textOf(await callTool(url, 2, 'echo', { text: 'after' }))).toBe('after');
  });

  it('ends the legacy session bound to the killed process: 404 session_not_found, then a new session works', async () => {
    const session = await openSession(url, 3);
    const pid = Number(await textOf(await legacyTool(url, 3, session, 1, 'pid')));
    const pending = legacyTool(url, 3, session, 2, 'hang');
    await hangReached(pid);
    process.kill(pid, 'SIGKILL');
    await expectRefusal(await pending, 502, -31095, 'upstream_unreachable', 2);
    await expectRefusal(await legacyTool(url, 3, session, 3, 'pid'), 404, -32001, 'session_not_found', 3);

    const fresh = await openSession(url, 3);
    const restarted = Number(await textOf(await legacyTool(url, 3, fresh, 4, 'pid'), 4));
    expect(restarted).not.toBe(pid);
  });

  it("ends the session's GET stream when its process is killed", async () => {
    const session = await openSession(url, 5);
    const pid = Number(await textOf(await legacyTool(url, 5, session, 1, 'pid')));
    const stream = await fetch(url, {
      headers: {
        accept: 'text/event-stream',
        authorization: `Bearer ${key(5)}`,
        'mcp-session-id': session,
        'mcp-protocol-version': LEGACY,
      },
    });
    expect(stream.status).toBe(200);
    expect(stream.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    process.kill(pid, 'SIGKILL');
    await gone([pid]);
    // The session is over (its next POST is 404): the stream that serves it must end too, or the
    // client waits on a dead session until the idle timeout.
    const ended = await Promise.race([
      (async () => {
        for (;;) if ((await reader.read()).done) return true;
      })(),
      sleep(2_000).then(() => false),
    ]);
    await reader.cancel().catch(() => undefined);
    expect(ended, 'the GET stream was still open 2 s after its process died').toBe(true);
    await expectRefusal(await legacyTool(url, 5, session, 2, 'pid'), 404, -32001, 'session_not_found', 2);
  });

  it('leaves no grandchild when the program it started is killed', async () => {
    const inner = Number(await textOf(await callTool(wrappedUrl, 4, 'pid')));
    const wrapper = started(ws).find((p) => p.mode === 'wrapper');
    expect(wrapper).toBeDefined();
    expect(inner).not.toBe(wrapper?.pid);
    expect(alive(inner)).toBe(true);
    const pending = callTool(wrappedUrl, 4, 'hang', {}, { id: 43 });
    await hangReached(inner);
    process.kill(wrapper?.pid as number, 'SIGKILL');
    await expectRefusal(await pending, 502, -31095, 'upstream_unreachable', 43);
    await gone([wrapper?.pid as number, inner]);
    expect(await textOf(await callTool(wrappedUrl, 4, 'echo', { text: 'again' }))).toBe('again');
  });
});

describe('an idle process', () => {
  const ws = workspace();
  let gateway: TestGateway;
  let url: string;

  beforeAll(async () => {
    gateway = await gatewayWith({ '/mcp': { upstream: fixture(ws, ['serve'], ', idleTimeoutSec: 1') } });
    url = `${gateway.url}/mcp`;
  });
  afterAll(() => gateway?.close());

  it('stops after idleTimeoutSec with nothing in flight, never while a call is', async () => {
    const pid = Number(await textOf(await callTool(url, 0, 'pid')));
    const hanging = callTool(url, 0, 'hang', {}, { id: 60 });
    await sleep(1_600);
    expect(alive(pid), 'a process with a call in flight is not idle').toBe(true);
    expect(await textOf(await callTool(url, 0, 'release'))).toBe('ok');
    expect(await textOf(await hanging, 60)).toBe('released');
    await gone([pid], 3_000);
    const restarted = Number(await textOf(await callTool(url, 0, 'pid')));
    expect(restarted).not.toBe(pid);
  });
});

describe('a child that never answers its handshake', () => {
  const ws = workspace();
  const okWs = workspace();
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = await gatewayWith({
      '/silent/mcp': { upstream: fixture(ws, ['silent'], ', startTimeoutMs: 1000') },
      '/ok/mcp': { upstream: fixture(okWs, ['serve']) },
    });
  });
  afterAll(() => gateway?.close());

  it('answers 504 upstream_timeout after startTimeoutMs and kills the process', async () => {
    const t0 = performance.now();
    await expectRefusal(
      await callTool(`${gateway.url}/silent/mcp`, 0, 'pid'),
      504,
      -31096,
      'upstream_timeout',
    );
    const elapsed = performance.now() - t0;
    expect(elapsed).toBeGreaterThanOrEqual(900);
    expect(elapsed).toBeLessThan(3_000);
    const [child] = started(ws);
    expect(child?.mode).toBe('silent');
    // The start-up followed the spec: a server/discover probe, then the legacy initialize.
    expect(received(ws).map((r) => r.message.method)).toEqual(['server/discover', 'initialize']);
    await gone([child?.pid as number]);
    // The gateway goes on serving its other routes.
    expect(await textOf(await callTool(`${gateway.url}/ok/mcp`, 0, 'echo', { text: 'still here' }))).toBe(
      'still here',
    );
  });
});

describe('a child that writes non-JSON, forged and over-long lines between its messages', () => {
  const ws = workspace();
  let gateway: TestGateway;
  let url: string;
  const LIMIT = 65_536;

  beforeAll(async () => {
    gateway = await gatewayWith(
      {
        '/mcp': {
          upstream: fixture(ws, ['garbage'], '', { FIXTURE_LINE_LIMIT: String(LIMIT) }),
          extra: '    default: allow\n    upstreamTimeouts: { headersMs: 4000 }',
        },
      },
      { limits: `, maxResponseBytes: ${LIMIT}` },
    );
    url = `${gateway.url}/mcp`;
  });
  afterAll(() => gateway?.close());

  it('skips every bad line and relays only the real messages', async () => {
    const listed = await messagesOf(
      await fetch(url, {
        method: 'POST',
        headers: { ...modernHeaders('tools/list'), authorization: `Bearer ${key(0)}` },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: META } }),
      }),
    );
    const tools = (listed[0]?.result as { tools?: { name: string }[] } | undefined)?.tools ?? [];
    expect(tools.map((t) => t.name)).toEqual([
      'pid',
      'env',
      'echo',
      'hang',
      'release',
      'progress',
      'progress-hang',
      'log',
      'ask',
      'flood',
      'huge',
    ]);
    for (const text of ['héllo ✓ 雪', 'second', 'third ✓']) {
      // The duplicate-key answer the child writes first ("forged") is never taken for the real one.
      expect(await textOf(await callTool(url, 0, 'echo', { text }))).toBe(text);
    }
    const messages = await messagesOf(
      await callTool(url, 0, 'progress', { tag: 'through-garbage', steps: 3 }, { progressToken: 'g' }),
    );
    expect(messages.filter((m) => m.method === 'notifications/progress')).toHaveLength(3);
    expect(messages.some((m) => m.method === 'notifications/message')).toBe(false);
    expect(resultText(messages)).toBe('done:through-garbage');
    expect(started(ws)).toHaveLength(1);
  });

  it('answers an answer longer than limits.maxResponseBytes with 502 response_too_large, without waiting for the timeout', async () => {
    const t0 = performance.now();
    await expectRefusal(
      await callTool(url, 1, 'huge', { size: LIMIT * 2 }),
      502,
      -31097,
      'response_too_large',
    );
    expect(performance.now() - t0).toBeLessThan(3_000);
    expect(await textOf(await callTool(url, 1, 'echo', { text: 'after huge' }))).toBe('after huge');
  });
});

describe('a child that floods stdout', () => {
  const ws = workspace();
  let gateway: TestGateway;
  let url: string;

  beforeAll(async () => {
    gateway = await gatewayWith({ '/mcp': { upstream: fixture(ws, ['serve']) } });
    url = `${gateway.url}/mcp`;
  });
  afterAll(() => gateway?.close());

  const floodWritten = (pid: number): number => {
    try {
      return Number(readFileSync(join(ws.flood, String(pid)), 'utf8'));
    } catch {
      return 0;
    }
  };

  it('keeps answering calls on the same process and on others while it floods', async () => {
    const pid = Number(await textOf(await callTool(url, 0, 'pid')));
    await textOf(await callTool(url, 1, 'pid'));
    const flooding = callTool(url, 0, 'flood', { count: 50_000, size: 200 }, { id: 9 }).then(messagesOf);
    await until('the flood to start', () => floodWritten(pid) > 1_000_000);
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      expect(await textOf(await callTool(url, 1, 'echo', { text: `other ${i}` }))).toBe(`other ${i}`);
      expect(performance.now() - t0).toBeLessThan(1_000);
    }
    const t0 = performance.now();
    expect(await textOf(await callTool(url, 0, 'echo', { text: 'same process' }, { id: 10 }), 10)).toBe(
      'same process',
    );
    expect(performance.now() - t0).toBeLessThan(3_000);
    expect(resultText(await flooding, 9)).toBe('flooded:50000');
  });

  it('does not buffer a flood without bound for a client that reads nothing of its stream', async () => {
    const FLOOD = 10_000 * 4_000;
    const pid = Number(await textOf(await callTool(url, 2, 'pid')));
    const answer = await callTool(url, 2, 'flood', { count: 10_000, size: 4_000 }, { id: 11 });
    expect(answer.status).toBe(200);
    // The client reads nothing for 3 s: either the child is held back (back-pressure) …
    await sleep(3_000);
    const writtenMeanwhile = floodWritten(pid);
    // … or the gateway gives up on the client; it must not hold the flood for it.
    let relayed = 0;
    const reader = (answer.body as ReadableStream<Uint8Array>).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      relayed += value.length;
    }
    expect(
      { writtenMeanwhile, relayed },
      `the child wrote ${writtenMeanwhile} of ${FLOOD} bytes while its client read nothing, and all ${relayed} reached the client later`,
    ).toSatisfy(
      (seen: { writtenMeanwhile: number; relayed: number }) =>
        seen.writtenMeanwhile < 16_000_000 || seen.relayed < 16_000_000,
    );
  });
});

describe('a child in a crash loop', () => {
  const ws = workspace();
  const okWs = workspace();
  let gateway: TestGateway;
  let url: string;

  beforeAll(async () => {
    gateway = await gatewayWith({
      '/mcp': { upstream: fixture(ws, ['crash'], ', restart: { backoffMs: 1000, maxBackoffMs: 8000 }') },
      '/ok/mcp': { upstream: fixture(okWs, ['serve']) },
    });
    url = `${gateway.url}/mcp`;
  });
  afterAll(() => gateway?.close());

  it('fails the first start 502 upstream_unreachable and restarts at once on the next call', async () => {
    await expectRefusal(await callTool(url, 0, 'pid'), 502, -31095, 'upstream_unreachable');
    expect(started(ws)).toHaveLength(1);
    // DESIGN.md "Timeouts and restarts": the first restart is immediate.
    await expectRefusal(await callTool(url, 0, 'pid'), 502, -31095, 'upstream_unreachable');
    expect(started(ws)).toHaveLength(2);
  });

  it('answers 503 upstream_unavailable with Retry-After during the backoff, which doubles', async () => {
    const before = started(ws).length;
    let answer = await callTool(url, 1, 'pid');
    const statuses: number[] = [];
    while (answer.status === 502 && statuses.length < 3) {
      statuses.push(answer.status);
      await answer.text();
      answer = await callTool(url, 1, 'pid');
    }
    const first = await expectRefusal(answer, 503, -31094, 'upstream_unavailable');
    expect(first).toBeDefined();
    const retryAfter = Number(answer.headers.get('retry-after'));
    expect(retryAfter).toBe(1);
    const starts = started(ws).length;
    expect(starts - before).toBe(statuses.length);
    // No start happens during the backoff.
    const again = await callTool(url, 1, 'pid');
    await expectRefusal(again, 503, -31094, 'upstream_unavailable');
    expect(started(ws).length).toBe(starts);

    await sleep(retryAfter * 1000 + 100);
    await expectRefusal(await callTool(url, 1, 'pid'), 502, -31095, 'upstream_unreachable');
    expect(started(ws).length).toBe(starts + 1);
    const later = await callTool(url, 1, 'pid');
    await expectRefusal(later, 503, -31094, 'upstream_unavailable');
    expect(Number(later.headers.get('retry-after'))).toBe(retryAfter * 2);

    // Other identities and routes are served meanwhile.
    expect(await textOf(await callTool(`${gateway.url}/ok/mcp`, 1, 'echo', { text: 'fine' }))).toBe('fine');
  });
});

describe('perIdentity isolation', () => {
  const ws = workspace();
  let gateway: TestGateway;
  let url: string;

  beforeAll(async () => {
    gateway = await gatewayWith({ '/mcp': { upstream: fixture(ws, ['serve']) } });
    url = `${gateway.url}/mcp`;
  });
  afterAll(() => gateway?.close());

  it('gives each identity its own process, with its own HOME and TMPDIR', async () => {
    const alice = Number(await textOf(await callTool(url, 0, 'pid')));
    const bob = Number(await textOf(await callTool(url, 1, 'pid')));
    expect(alice).not.toBe(bob);
    expect(Number(await textOf(await callTool(url, 0, 'pid')))).toBe(alice);
    const aliceEnv = JSON.parse(await textOf(await callTool(url, 0, 'env'))) as Record<string, string>;
    const bobEnv = JSON.parse(await textOf(await callTool(url, 1, 'env'))) as Record<string, string>;
    expect(aliceEnv.HOME).toMatch(/portcullis-stdio-/);
    expect(aliceEnv.HOME).not.toBe(bobEnv.HOME);
    expect(aliceEnv.TMPDIR).not.toBe(bobEnv.TMPDIR);
  });

  it("refuses another identity's session id with 404 session_not_found, forwarding nothing", async () => {
    const aliceSession = await openSession(url, 0);
    await expectRefusal(
      await legacyTool(url, 1, aliceSession, 5, 'echo', { text: 'bob-on-alice-session' }),
      404,
      -32001,
      'session_not_found',
      // The session stage refuses before the body is parsed (DESIGN.md step 9): no id to echo.
      null,
    );
    expect(JSON.stringify(received(ws))).not.toContain('bob-on-alice-session');
  });

  it('delivers a server request only to its identity, and takes the answer only from it', async () => {
    const aliceSession = await openSession(url, 0);
    const bobSession = await openSession(url, 1);
    const asking = await legacyTool(url, 0, aliceSession, 6, 'ask', { tag: 'alice' });
    expect(asking.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const stream = events(asking);
    const question = await next(stream);
    expect(question).toMatchObject({ method: 'elicitation/create', params: { message: 'question:alice' } });
    const heldId = question.id;
    expect(typeof heldId).toBe('string');

    // Bob answers Alice's request: through his own session (202, dropped) and hers (404).
    const forged = { jsonrpc: '2.0', id: heldId, result: { action: 'accept', content: { who: 'bob' } } };
    const viaOwn = await legacyPost(url, 1, bobSession, forged);
    expect(viaOwn.status).toBe(202);
    await viaOwn.text();
    await expectRefusal(
      await legacyPost(url, 1, aliceSession, forged),
      404,
      -32001,
      'session_not_found',
      null,
    );
    expect(JSON.stringify(received(ws))).not.toContain('"who":"bob"');

    const genuine = { jsonrpc: '2.0', id: heldId, result: { action: 'accept', content: { who: 'alice' } } };
    const accepted = await legacyPost(url, 0, aliceSession, genuine);
    expect(accepted.status).toBe(202);
    await accepted.text();
    const final = await next(stream);
    expect(resultText([final], 6)).toBe(JSON.stringify({ action: 'accept', content: { who: 'alice' } }));
  });
});

describe('a shared process', () => {
  const ws = workspace();
  let gateway: TestGateway;
  let url: string;

  beforeAll(async () => {
    gateway = await gatewayWith({ '/mcp': { upstream: fixture(ws, ['serve'], ', processes: shared') } });
    url = `${gateway.url}/mcp`;
  });
  afterAll(() => gateway?.close());

  const hangReached = (count: number) =>
    until('the hanging call(s) to reach the child', () =>
      received(ws).filter((r) => toolName(r.message) === 'hang').length >= count ? true : undefined,
    );

  it('serves two identities from one process', async () => {
    const alice = Number(await textOf(await callTool(url, 0, 'pid')));
    expect(Number(await textOf(await callTool(url, 1, 'pid')))).toBe(alice);
    expect(started(ws)).toHaveLength(1);
  });

  it('returns progress and answers to their own client, though both used the same id and token', async () => {
    const [alice, bob] = await Promise.all(
      ['alice', 'bob'].map(async (tag, user) =>
        messagesOf(
          await callTool(url, user, 'progress', { tag, steps: 3 }, { id: 7, progressToken: 'same' }),
        ),
      ),
    );
    for (const [tag, messages] of [
      ['alice', alice],
      ['bob', bob],
    ] as const) {
      const progress = (messages ?? []).filter((m) => m.method === 'notifications/progress');
      expect(progress.map((m) => m.params)).toEqual(
        [1, 2, 3].map((step) =>
          expect.objectContaining({ progressToken: 'same', progress: step, message: tag }),
        ),
      );
      expect(resultText(messages ?? [], 7)).toBe(`done:${tag}`);
    }
  });

  it('drops a notification it cannot attribute (two calls in flight) instead of giving it to either client', async () => {
    // Even with one call in flight the notification is nobody's: on a shared process it may be
    // about another identity's earlier work.
    const alone = await messagesOf(await callTool(url, 1, 'log', { tag: 'alone' }));
    expect(alone.some((m) => m.method === 'notifications/message')).toBe(false);

    const before = received(ws).filter((r) => toolName(r.message) === 'hang').length;
    const hanging = callTool(url, 0, 'hang', {}, { id: 20 });
    await hangReached(before + 1);
    const bob = await messagesOf(await callTool(url, 1, 'log', { tag: 'two-in-flight' }));
    expect(resultText(bob)).toBe('logged:two-in-flight');
    expect(bob.some((m) => m.method === 'notifications/message')).toBe(false);
    expect(await textOf(await callTool(url, 1, 'release'))).toBe('ok');
    const alice = await messagesOf(await hanging);
    expect(alice.some((m) => m.method === 'notifications/message')).toBe(false);
    expect(resultText(alice, 20)).toBe('released');
  });

  it('hands no client a server request on a shared process, and ignores an answer forged for it', async () => {
    const aliceSession = await openSession(url, 0);
    const bobSession = await openSession(url, 1);
    const asked = await messagesOf(
      await legacyTool(url, 0, aliceSession, 24, 'ask', { tag: 'shared-alice' }),
    );
    expect(asked.some((m) => m.method === 'elicitation/create')).toBe(false);
    // The fixture returns the error the gateway answered its request with, in Alice's result.
    expect(JSON.parse(resultText(asked, 24))).toMatchObject({ code: expect.any(Number) });
    const forged = {
      jsonrpc: '2.0',
      id: 'portcullis-1',
      result: { action: 'accept', content: { who: 'bob' } },
    };
    const byBob = await legacyPost(url, 1, bobSession, forged);
    expect(byBob.status).toBe(202);
    await byBob.text();
    await sleep(100);
    expect(JSON.stringify(received(ws))).not.toContain('"who":"bob"');
  });

  it('refuses a server request it cannot attribute to the child, delivering it to neither client', async () => {
    const aliceSession = await openSession(url, 0);
    const bobSession = await openSession(url, 1);
    const before = received(ws).filter((r) => toolName(r.message) === 'hang').length;
    const hanging = legacyTool(url, 0, aliceSession, 21, 'hang');
    await hangReached(before + 1);
    const bob = await messagesOf(await legacyTool(url, 1, bobSession, 22, 'ask', { tag: 'unowned' }));
    expect(bob.some((m) => m.method === 'elicitation/create')).toBe(false);
    // The fixture returns the error the gateway answered its request with.
    expect(JSON.parse(resultText(bob, 22))).toMatchObject({ code: expect.any(Number) });
    expect(await textOf(await legacyTool(url, 1, bobSession, 23, 'release'), 23)).toBe('ok');
    const alice = await messagesOf(await hanging);
    expect(alice.some((m) => m.method === 'elicitation/create')).toBe(false);
    expect(resultText(alice, 21)).toBe('released');
  });

  it("ignores a cancellation of another identity's request, and forwards the owner's under the gateway id", async () => {
    const aliceSession = await openSession(url, 0);
    const bobSession = await openSession(url, 1);
    const before = received(ws).filter((r) => toolName(r.message) === 'hang').length;
    const aborter = new AbortController();
    const hanging = legacyPost(
      url,
      0,
      aliceSession,
      { jsonrpc: '2.0', id: 30, method: 'tools/call', params: { name: 'hang', arguments: {} } },
      aborter.signal,
    ).catch(() => undefined);
    await hangReached(before + 1);
    const forwardedId = [...received(ws)].reverse().find((r) => toolName(r.message) === 'hang')?.message.id;
    expect(forwardedId).not.toBe(30);
    const cancel = { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 30 } };
    const cancels = () => received(ws).filter((r) => r.message.method === 'notifications/cancelled');

    const byBob = await legacyPost(url, 1, bobSession, cancel);
    expect(byBob.status).toBe(202);
    await byBob.text();
    await sleep(200);
    expect(cancels()).toHaveLength(0);

    const byAlice = await legacyPost(url, 0, aliceSession, cancel);
    expect(byAlice.status).toBe(202);
    await byAlice.text();
    const [forwarded] = await until('the cancellation to reach the child', () =>
      cancels().length > 0 ? cancels() : undefined,
    );
    expect(forwarded?.message.params).toMatchObject({ requestId: forwardedId });
    aborter.abort();
    await hanging;
    await textOf(await callTool(url, 1, 'release'));
  });
});

describe('maxProcesses: 8 with many identities', () => {
  const ws = workspace();
  let gateway: TestGateway;
  let url: string;
  const users = KEYS.length;

  beforeAll(async () => {
    gateway = await gatewayWith(
      { '/mcp': { upstream: fixture(ws, ['serve'], ', maxProcesses: 8') } },
      { keys: users },
    );
    url = `${gateway.url}/mcp`;
  });
  afterAll(() => gateway?.close());

  const livePids = () =>
    started(ws)
      .filter((p) => alive(p.pid))
      .map((p) => p.pid);

  const aborters = Array.from({ length: 8 }, () => new AbortController());
  let hanging: Promise<Response | undefined>[] = [];
  const hangPids = new Set<number>();

  it('answers 429 concurrency_limited to a 9th identity while all 8 processes are busy', async () => {
    hanging = aborters.map((aborter, user) =>
      callTool(url, user, 'hang', {}, { id: 100 + user, signal: aborter.signal }).catch(() => undefined),
    );
    await until(
      '8 hanging calls',
      () => {
        for (const r of received(ws)) if (toolName(r.message) === 'hang') hangPids.add(r.pid);
        return hangPids.size === 8 ? true : undefined;
      },
      10_000,
    );
    const full = await callTool(url, 8, 'pid');
    await expectRefusal(full, 429, -31093, 'concurrency_limited');
    expect(full.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(started(ws)).toHaveLength(8);
  });

  it('stops the least recently used idle process to serve a new identity', async () => {
    const pid0 = Number(await textOf(await callTool(url, 0, 'pid', {}, { id: 2 }), 2));
    await sleep(10); // user 1's last use is strictly later than user 0's
    const pid1 = Number(await textOf(await callTool(url, 1, 'pid', {}, { id: 2 }), 2));
    // User 0 started first, but user 1 gives up first: a process is in use until its call ends, so
    // user 1's is the least recently used idle one (a start-time order would pick user 0's).
    aborters[1]?.abort();
    await sleep(100);
    aborters[0]?.abort();
    await until('both cancellations to reach the children', () =>
      received(ws).filter((r) => r.message.method === 'notifications/cancelled').length >= 2
        ? true
        : undefined,
    );
    expect(await textOf(await callTool(url, 8, 'echo', { text: 'ninth' }))).toBe('ninth');
    await gone([pid1], 7_000);
    expect(alive(pid0)).toBe(true);
    expect(started(ws)).toHaveLength(9);
  });

  it('answers 91 identities at once with 200 or 429 concurrency_limited, never a 5xx, and runs at most 8', async () => {
    const burst = await Promise.all(
      Array.from({ length: users - 9 }, async (_, i) => {
        const answer = await callTool(url, 9 + i, 'pid');
        const text = await answer.text();
        return { status: answer.status, text };
      }),
    );
    // "<status> <reason>" → how many answers: e.g. { "200": 3, "429 concurrency_limited": 28 }.
    const tally: Record<string, number> = {};
    for (const { status, text } of burst) {
      const reason =
        status === 200
          ? ''
          : ` ${(JSON.parse(text) as { error: { data: { reason: string } } }).error.data.reason}`;
      const label = `${status}${reason}`;
      tally[label] = (tally[label] ?? 0) + 1;
    }
    await until('at most 8 processes', () => livePids().length <= 8, 7_000);
    expect(
      Object.keys(tally).filter((label) => label !== '200' && label !== '429 concurrency_limited'),
      `answers to ${burst.length} identities at once: ${JSON.stringify(tally)}`,
    ).toEqual([]);
    expect(tally['200'] ?? 0).toBeGreaterThanOrEqual(2);
  });

  it('never disturbed the six calls still in flight', async () => {
    for (let user = 2; user < 8; user++)
      expect(await textOf(await callTool(url, user, 'release'))).toBe('ok');
    const answers = await Promise.all(hanging.slice(2));
    for (const [i, answer] of answers.entries())
      expect(answer && resultText(await messagesOf(answer as Response), 102 + i)).toBe('released');
  });
});

describe('a denied call', () => {
  const ws = workspace();
  let gateway: TestGateway;
  let url: string;

  beforeAll(async () => {
    gateway = await gatewayWith({
      '/mcp': { upstream: fixture(ws, ['serve']), extra: '    default: deny\n    tools: { pid: fx }' },
    });
    url = `${gateway.url}/mcp`;
  });
  afterAll(() => gateway?.close());

  it('never reaches the process, nor starts one', async () => {
    await expectRefusal(
      await callTool(url, 0, 'echo', { text: 'denied-marker-1' }),
      403,
      -31092,
      'method_denied',
    );
    expect(started(ws)).toHaveLength(0);
    const pid = Number(await textOf(await callTool(url, 0, 'pid')));
    expect(started(ws).map((p) => p.pid)).toEqual([pid]);
    await expectRefusal(
      await callTool(url, 0, 'echo', { text: 'denied-marker-2' }),
      403,
      -31092,
      'method_denied',
    );
    await sleep(100);
    const seen = JSON.stringify(received(ws));
    expect(seen).not.toContain('denied-marker');
    expect(
      received(ws)
        .filter((r) => r.message.method === 'tools/call')
        .map((r) => toolName(r.message)),
    ).toEqual(['pid']);
  });
});

describe('shutdown', () => {
  it('stops every child and grandchild — one ignoring SIGTERM too — and removes their directories', async () => {
    const ws = workspace();
    const gateway = await gatewayWith({
      '/wrapped/mcp': { upstream: fixture(ws, ['wrapper-stubborn', 'serve']) },
      '/plain/mcp': { upstream: fixture(ws, ['serve']) },
    });
    const inner = Number(await textOf(await callTool(`${gateway.url}/wrapped/mcp`, 0, 'pid')));
    const plain = Number(await textOf(await callTool(`${gateway.url}/plain/mcp`, 1, 'pid')));
    const home = (
      JSON.parse(await textOf(await callTool(`${gateway.url}/plain/mcp`, 1, 'env'))) as { HOME: string }
    ).HOME;
    expect(existsSync(home)).toBe(true);
    const hanging = callTool(`${gateway.url}/plain/mcp`, 1, 'hang', {}, { id: 50 }).catch(() => undefined);
    await until('the hanging call to reach the child', () =>
      received(ws).some((r) => toolName(r.message) === 'hang'),
    );
    const all = started(ws).map((p) => p.pid);
    expect(all).toHaveLength(3);
    expect(all).toContain(inner);
    expect(all).toContain(plain);

    const t0 = performance.now();
    await gateway.close();
    const took = performance.now() - t0;
    expect(all.filter(alive)).toEqual([]);
    // The drain (2 s), then SIGTERM, and SIGKILL 5 s later for the one that ignores it.
    expect(took).toBeLessThan(9_500);
    expect(existsSync(home)).toBe(false);
    await hanging;
  }, 20_000);
});
