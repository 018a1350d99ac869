/**
 * Attacks on stdio upstreams (issue 15, DESIGN.md "Upstreams" → stdio): one identity trying to
 * observe, answer or end another's traffic on a shared process, a legacy client reaching past the
 * gateway's seal on a 2026-07-28 process's requestState, and a child's own request ids taken for
 * the gateway's. A failing test here is a weakness, with the values that show it.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import {
  type Message,
  messagesOf,
  openSession as openRawSession,
  legacyPost as rawLegacyPost,
  until,
} from '../support/raw-mcp.js';
import { sleep } from '../support/wait.js';

const ATTACK = fileURLToPath(new URL('../fixtures/stdio-attack.mjs', import.meta.url));
const MISBEHAVING = fileURLToPath(new URL('../fixtures/stdio-misbehaving.mjs', import.meta.url));
const MRTR = fileURLToPath(new URL('../fixtures/mrtr-stdio-server.mjs', import.meta.url));
const KEYS = Array.from({ length: 4 }, () => newApiKey('pk_'));
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

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function gatewayWith(routes: Record<string, string>, limits = ''): Promise<TestGateway> {
  const lines = Object.entries(routes).map(
    ([path, upstream]) => `  - route: ${path}
    resource: http://127.0.0.1${path}
    upstream: ${upstream}
    authentication: { methods: [apiKey] }
    default: allow`,
  );
  return startTestGateway({
    policy: `limits: { drainTimeoutMs: 2000${limits} }
authFailures: { limit: 1000/second }
identities:
  apiKeys:
${KEYS.map((k, i) => `    - { id: user${i}, hash: "${k.hash}", scopes: [fx] }`).join('\n')}
routes:
${lines.join('\n')}
`,
  });
}

function upstream(script: string, extra = '', env: Record<string, string> = {}): string {
  return `{ command: ${JSON.stringify([process.execPath, script])}, env: ${JSON.stringify(env)}${extra} }`;
}

const toolCall = (id: number, name: string, args: Message = {}, extra: Message = {}) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args, ...extra },
});

function resultText(messages: readonly Message[], id: number): string | undefined {
  const answer = messages.find((m) => m.id === id && m.method === undefined);
  return (answer?.result as { content?: { text?: string }[] } | undefined)?.content?.[0]?.text;
}

function received(log: string): Message[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { message: Message }).message);
}

// ---------------------------------------------------------------------------------------------

describe('processes: shared — one identity against another', () => {
  let gateway: TestGateway;
  let url: string;
  let misbehavingUrl: string;
  let log: string;

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stdio-attack-'));
    dirs.push(dir);
    log = join(dir, 'received.jsonl');
    gateway = await gatewayWith(
      {
        '/mcp': upstream(ATTACK, ', processes: shared', { FIXTURE_LOG: log }),
        '/m/mcp': upstream(MISBEHAVING, ', processes: shared'),
      },
      ', maxResponseBytes: 65536',
    );
    url = `${gateway.url}/mcp`;
    misbehavingUrl = `${gateway.url}/m/mcp`;
  });
  afterAll(() => gateway?.close());

  it("never delivers identity B's late log line or server request to identity A's call", async () => {
    const a = await openSession(url, 0);
    const b = await openSession(url, 1);
    // B starts background work on the shared process; its call is answered at once.
    const started = await messagesOf(
      await legacyPost(url, 1, b, toolCall(1, 'late', { tag: 'bob', ms: 300 })),
    );
    expect(resultText(started, 1)).toBe('started:bob');
    // A's call is now the only one in flight when B's work speaks up.
    const pending = legacyPost(url, 0, a, toolCall(2, 'hang'));
    await until('A’s hang to reach the process', () =>
      received(log).some((m) => (m.params as Message | undefined)?.name === 'hang'),
    );
    // B's work speaks up while A's call is the only one in flight, then A's call is released.
    await sleep(800);
    await messagesOf(
      await legacyPost(url, 2, undefined, toolCall(9, 'release')).catch(() => new Response('')),
    );
    const seen = await messagesOf(await pending);
    await messagesOf(await legacyPost(url, 0, a, toolCall(3, 'release')));
    const leaked = seen.filter((m) => m.method !== undefined);
    const steered = resultText(await messagesOf(await legacyPost(url, 0, a, toolCall(4, 'answers'))), 4);
    // Expected: nothing of B's reaches A (DESIGN: attribution never to another identity), and the
    // child's question got the gateway's error, never an answer of A's.
    expect(leaked).toEqual([]);
    expect(steered).not.toContain('alice-steered');
    expect(steered).toContain('No client can answer this request through the gateway');
  });

  it("does not let identity B end identity A's legacy session by opening sessions", async () => {
    const a = await openSession(misbehavingUrl, 0);
    const before = await legacyPost(misbehavingUrl, 0, a, toolCall(1, 'echo', { text: 'alive' }));
    expect(resultText(await messagesOf(before), 1)).toBe('alive');
    // B opens 256 legacy sessions on the same shared process (each answered from the cache).
    for (let i = 0; i < 256; i++) await openSession(misbehavingUrl, 1);
    const after = await legacyPost(misbehavingUrl, 0, a, toolCall(2, 'echo', { text: 'still alive' }));
    const body = await after.text();
    // Expected: A's session still works. Actual: 404 session_not_found — B evicted it.
    expect({ status: after.status, body: body.slice(0, 200) }).toMatchObject({ status: 200 });
  });

  it("does not fail identity A's call when the child's own oversized request reuses A's gateway id", async () => {
    const a = await openSession(url, 0);
    const hangs = () => received(log).filter((m) => (m.params as Message | undefined)?.name === 'hang');
    const earlier = hangs().length;
    const pending = legacyPost(url, 0, a, toolCall(1, 'hang'));
    const hang = await until('A’s hang to reach the process', () => hangs()[earlier]);
    const gatewayId = hang.id as number;
    expect(typeof gatewayId).toBe('number');
    // B makes the child send an elicitation of its own, numbered like A's request, too long to read.
    const b = await legacyPost(
      url,
      1,
      undefined,
      toolCall(5, 'big-ask', { id: gatewayId, size: 200_000 }),
      undefined,
    );
    await b.text();
    await sleep(200);
    await messagesOf(await legacyPost(url, 2, undefined, toolCall(6, 'release')));
    const answer = await pending;
    const messages = await messagesOf(answer);
    // Expected: A's call is answered by the process ("released"). Actual: failed response_too_large.
    expect({ status: answer.status, messages }).toMatchObject({ status: 200 });
    expect(resultText(messages, 1)).toBe('released');
  });
});

describe('a legacy client of a 2026-07-28 process (requestState)', () => {
  let gateway: TestGateway;
  let url: string;
  beforeAll(async () => {
    gateway = await gatewayWith({ '/mcp': upstream(MRTR, ', processes: shared') });
    url = `${gateway.url}/mcp`;
  });
  afterAll(() => gateway?.close());

  it('never hands a legacy client the process’s raw requestState', async () => {
    const session = await openSession(url, 0);
    const messages = await messagesOf(await legacyPost(url, 0, session, toolCall(1, 'confirm')));
    // Expected (era table, legacy ↔ modern): elicitation/create on the call's SSE answer, the
    // state kept by the gateway. Actual: the raw input_required result, requestState in clear.
    expect(JSON.stringify(messages)).not.toContain('server-state-42');
  });

  it('never forwards a requestState from a legacy client that the gateway did not seal', async () => {
    const session = await openSession(url, 1);
    const forged = await messagesOf(
      await legacyPost(
        url,
        1,
        session,
        toolCall(
          1,
          'confirm',
          {},
          {
            requestState: 'server-state-42',
            inputResponses: { sure: { action: 'accept', content: { who: 'mallory' } } },
          },
        ),
      ),
    );
    const seen = await messagesOf(await legacyPost(url, 1, session, toolCall(2, 'last_state')));
    // Expected: refused like a modern client's raw state (-32602), the process never sees it.
    expect({ forged: JSON.stringify(forged), processSaw: resultText(seen, 2) }).toEqual({
      forged: expect.stringContaining('-32602'),
      processSaw: 'null',
    });
  });
});

describe('processes: shared — answers and cancellations from the wrong identity (defences)', () => {
  let gateway: TestGateway;
  let url: string;
  beforeAll(async () => {
    gateway = await gatewayWith({ '/mcp': upstream(MISBEHAVING, ', processes: shared') });
    url = `${gateway.url}/mcp`;
  });
  afterAll(() => gateway?.close());

  it("gives A no server request on a shared process, and ignores B's forged answer and B's cancellation of A's request id", async () => {
    const a = await openSession(url, 0);
    const b = await openSession(url, 1);
    const pending = legacyPost(url, 0, a, toolCall(1, 'hang'));
    await sleep(300);
    // B guesses a gateway key and A's client id: an answer and a cancellation.
    const forged = await legacyPost(url, 1, b, {
      jsonrpc: '2.0',
      id: 'portcullis-1',
      result: { action: 'accept', content: { who: 'bob' } },
    });
    const cancel = await legacyPost(url, 1, b, {
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId: 1 },
    });
    expect([forged.status, cancel.status]).toEqual([202, 202]);
    // B's cancellation did not reach A's request: it is still running, and finishes when released.
    await messagesOf(
      await legacyPost(url, 2, undefined, toolCall(9, 'release')).catch(() => new Response('')),
    );
    expect(resultText(await messagesOf(await pending), 1)).toBe('released');
  });
});
