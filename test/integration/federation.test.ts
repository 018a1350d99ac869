/**
 * Federation (DESIGN.md "Upstreams" → Federation, issue 16): three different, unmodified servers
 * behind one route — an SDK v2 HTTP server (2026-07-28, and 2025-era requests served statelessly),
 * an SDK v1 HTTP server with legacy sessions, and `server-everything` over stdio — driven by SDK v1
 * and SDK v2 clients through the gateway. Each HTTP server records what it received, so routing
 * and every deny are proven on the servers' side.
 */
import {
  Client as V2Client,
  StreamableHTTPClientTransport as V2ClientTransport,
} from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1ClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { everythingStdio } from '../fixtures/everything.js';
import {
  connectV1Client,
  connectV2Client,
  FIXTURE_PROMPT_NAME,
  FIXTURE_RESOURCE_URI,
  type Peer,
  startV1Server,
  startV2Server,
  type V1Peer,
  v1TransportOf,
} from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { firstText, rpcMethod } from '../support/inspect.js';
import { modernCall, postModern } from '../support/modern-call.js';
import { events, legacyPost, messagesOf, openSession, until } from '../support/raw-mcp.js';
import { collectSse } from '../support/sse.js';
import { sleep } from '../support/wait.js';

const PROBE_SERVER = new URL('../fixtures/probe-stdio-server.mjs', import.meta.url).pathname;

let v2: Peer;
let strictV2: Peer;
let v1: V1Peer;
/** An SDK v1 server that keeps its events: `Last-Event-ID` replays what a dropped stream missed. */
let resumable: V1Peer;
/** An SDK v1 server answering in JSON: its progress goes out on the session's GET stream. */
let jsonV1: V1Peer;
let gateway: TestGateway;
const reader = newApiKey();
const writer = newApiKey();
/** Another caller with every scope the writer has. */
const rival = newApiKey();

/** The tools/call requests a peer received, by the name it was asked for. */
function callsTo(peer: Peer): string[] {
  return peer.requests.flatMap((r) => {
    const body = r.body as { method?: string; params?: { name?: string } } | undefined;
    return body?.method === 'tools/call' && typeof body.params?.name === 'string' ? [body.params.name] : [];
  });
}

beforeAll(async () => {
  v2 = await startV2Server({ response: 'auto', legacy: 'stateless' });
  v1 = await startV1Server({ response: 'sse', elicits: true });
  // The SDK v2 server refusing every 2025-era request: only the gateway's translation reaches it.
  strictV2 = await startV2Server({ response: 'json', legacy: 'reject' });
  resumable = await startV1Server({ response: 'sse', resumable: true });
  jsonV1 = await startV1Server({ response: 'json' });
  gateway = await startTestGateway({
    policy: `identities:
  apiKeys:
    - { id: reader, hash: "${reader.hash}", scopes: [read] }
    - { id: writer, hash: "${writer.hash}", scopes: [read, write] }
    - { id: rival, hash: "${rival.hash}", scopes: [read, write] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    serverInfo: { name: acme-tools, version: "7" }
    servers:
      modern: { upstream: "${v2.url}" }
      legacy: { upstream: "${v1.url}", resources: ["fixture://greeting"] }
      every: { upstream: ${everythingStdio()} }
    authentication: { methods: [apiKey] }
    tools:
      "modern__*": read
      "legacy__echo": read
      "legacy__add": write
      "every__echo": read
      "every__get-sum": read
      "every__trigger-elicitation-request": read
      "every__trigger-sampling-request": read
      "legacy__ask_name": write
      "legacy__slow_progress": write
      "every__simulate-research-query": write
    resources: { "**": read }
    prompts: { "*": read }
    methods: { "tasks/*": write }
  - route: /resume
    resource: http://127.0.0.1/resume
    servers:
      kept: { upstream: "${resumable.url}" }
      modern: { upstream: "${v2.url}" }
      every: { upstream: ${everythingStdio()} }
    authentication: { methods: [apiKey] }
    default: allow
  - route: /json
    resource: http://127.0.0.1/json
    servers:
      plain: { upstream: "${jsonV1.url}" }
      modern: { upstream: "${v2.url}" }
    authentication: { methods: [apiKey] }
    default: allow
  - route: /listen
    resource: http://127.0.0.1/listen
    servers:
      probe: { upstream: { command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(PROBE_SERVER)}], processes: shared }, resources: ["file:///**"] }
      modern: { upstream: "${v2.url}" }
    authentication: { methods: [apiKey] }
    default: allow
  - route: /mixed
    resource: http://127.0.0.1/mixed
    servers:
      modern: { upstream: "${strictV2.url}" }
      legacy: { upstream: "${v1.url}" }
    authentication: { methods: [apiKey] }
    default: allow
`,
  });
});

afterAll(async () => {
  await gateway?.close();
  await v1?.close();
  await v2?.close();
  await strictV2?.close();
  await resumable?.close();
  await jsonV1?.close();
});

const auth = (key: { key: string }) => ({ authorization: `Bearer ${key.key}` });

describe('a legacy client (SDK v1) on a federated route', () => {
  it('sees one server: the route’s serverInfo, merged and filtered tools, calls routed by prefix', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`, { headers: auth(reader) });
    try {
      expect(client.getServerVersion()).toMatchObject({ name: 'acme-tools', version: '7' });
      const { tools } = await client.listTools();
      const names = tools.map((t) => t.name);
      expect(names).toEqual(
        expect.arrayContaining([
          'modern__echo',
          'modern__add',
          'legacy__echo',
          'every__echo',
          'every__get-sum',
        ]),
      );
      // Filtered by policy: the reader may not call legacy__add, so it does not see it.
      expect(names).not.toContain('legacy__add');
      expect(names.every((n) => /^(modern|legacy|every)__/.test(n))).toBe(true);

      const before = callsTo(v1).length;
      expect(firstText(await client.callTool({ name: 'legacy__echo', arguments: { text: 'to v1' } }))).toBe(
        'to v1',
      );
      expect(firstText(await client.callTool({ name: 'modern__echo', arguments: { text: 'to v2' } }))).toBe(
        'to v2',
      );
      expect(firstText(await client.callTool({ name: 'every__echo', arguments: { message: 'hi' } }))).toBe(
        'Echo: hi',
      );
      expect(callsTo(v1).slice(before)).toEqual(['echo']);
      expect(callsTo(v2)).toContain('echo');
      // The audit record names the server that served each call, and the exposed name called.
      const records = await gateway.auditRecords();
      const call = records.find((r) => r.tool === 'legacy__echo' && r.decision === 'allow');
      expect(call?.servers).toEqual(['legacy']);
      const list = records.find((r) => r.method === 'tools/list' && r.decision === 'allow');
      expect(list?.servers).toEqual(['modern', 'legacy', 'every']);
    } finally {
      await client.close();
    }
  });

  it('refuses a denied call before any server hears of it', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`, { headers: auth(reader) });
    try {
      const v1Before = callsTo(v1).length;
      const v2Before = callsTo(v2).length;
      await expect(client.callTool({ name: 'legacy__add', arguments: { a: 1, b: 2 } })).rejects.toThrow();
      await expect(client.callTool({ name: 'nobody__echo', arguments: { text: 'x' } })).rejects.toThrow();
      expect(callsTo(v1).length).toBe(v1Before);
      expect(callsTo(v2).length).toBe(v2Before);
    } finally {
      await client.close();
    }
  });

  it('routes resource reads by declared pattern and prompts by exposed name', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`, { headers: auth(writer) });
    try {
      // Both HTTP servers advertise fixture://greeting; the v1 server declares it.
      const v1Before = v1.requests.length;
      const read = await client.readResource({ uri: FIXTURE_RESOURCE_URI });
      expect(read.contents[0]).toMatchObject({ uri: FIXTURE_RESOURCE_URI });
      expect(v1.requests.slice(v1Before).some((r) => rpcMethod(r) === 'resources/read')).toBe(true);
      const prompt = await client.getPrompt({
        name: `modern__${FIXTURE_PROMPT_NAME}`,
        arguments: { topic: 'x' },
      });
      expect(prompt.messages.length).toBeGreaterThan(0);
      expect(v1TransportOf(client).sessionId).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    } finally {
      await client.close();
    }
  });
});

describe('prompts, completions and resources by template', () => {
  it('completes a prompt’s argument and a template’s by their owners; reads a URI by the template that matches it', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`, { headers: auth(reader) });
    try {
      const prompt = await client.complete({
        ref: { type: 'ref/prompt', name: 'every__completable-prompt' },
        argument: { name: 'department', value: 'En' },
      });
      expect(prompt.completion.values).toEqual(['Engineering']);
      // No list was asked for in this session: the gateway learns who owns the template itself.
      const template = await client.complete({
        ref: { type: 'ref/resource', uri: 'demo://resource/dynamic/text/{resourceId}' },
        argument: { name: 'resourceId', value: '3' },
      });
      expect(template.completion.values).toEqual(['3']);
      const read = await client.readResource({ uri: 'demo://resource/dynamic/text/3' });
      expect(read.contents[0]?.uri).toBe('demo://resource/dynamic/text/3');
      await expect(client.readResource({ uri: 'demo://nobody/owns/this' })).rejects.toThrow(
        /-32002|not found/i,
      );
    } finally {
      await client.close();
    }
  });
});

describe('server-to-client requests across servers', () => {
  /** An SDK v1 client that declares elicitation and sampling and answers both. */
  async function answeringClient(key: { key: string }, seen: string[]): Promise<V1Client> {
    const client = new V1Client(
      { name: 'answers', version: '1' },
      { capabilities: { elicitation: {}, sampling: {} } },
    );
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      seen.push(`elicitation: ${request.params.message}`);
      return { action: 'accept', content: { name: 'Ada' } };
    });
    client.setRequestHandler(CreateMessageRequestSchema, async () => {
      seen.push('sampling');
      return { role: 'assistant', content: { type: 'text', text: 'sampled' }, model: 'fixture' };
    });
    await client.connect(
      new V1ClientTransport(new URL(`${gateway.url}/mcp`), { requestInit: { headers: auth(key) } }),
    );
    return client;
  }

  it('an elicitation from the HTTP server comes back to it, under its own id', async () => {
    const seen: string[] = [];
    const client = await answeringClient(writer, seen);
    try {
      const before = v1.requests.length;
      const result = await client.callTool({ name: 'legacy__ask_name', arguments: {} });
      expect(firstText(result)).toBe('hello Ada');
      expect(seen).toEqual(['elicitation: Your name?']);
      // The server received the answer under the id it had used (a number of its own), never the
      // gateway's sealed one.
      const answers = v1.requests
        .slice(before)
        .map((r) => r.body as { id?: unknown; result?: unknown; method?: unknown })
        .filter((body) => body?.result !== undefined && body.method === undefined);
      expect(answers).toHaveLength(1);
      expect(typeof answers[0]?.id).toBe('number');
    } finally {
      await client.close();
    }
  });

  it('elicitation and sampling from the stdio server come back to it', async () => {
    const seen: string[] = [];
    const client = await answeringClient(writer, seen);
    try {
      const elicited = await client.callTool({ name: 'every__trigger-elicitation-request', arguments: {} });
      expect(JSON.stringify(elicited)).toContain('Ada');
      const sampled = await client.callTool({
        name: 'every__trigger-sampling-request',
        arguments: { prompt: 'hi', maxTokens: 5 },
      });
      expect(JSON.stringify(sampled)).toContain('sampled');
      expect(seen).toEqual([expect.stringMatching(/^elicitation: /), 'sampling']);
    } finally {
      await client.close();
    }
  });

  it('an answer from another identity, or another session of the same one, reaches no server', async () => {
    const url = `${gateway.url}/mcp`;
    const session = await openSession(url, writer.key);
    const call = await legacyPost(url, writer.key, session, {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'legacy__ask_name', arguments: {} },
    });
    const stream = events(call);
    const asked = (await stream.next()).value as Record<string, unknown>;
    expect(asked.method).toBe('elicitation/create');
    expect(typeof asked.id).toBe('string'); // the gateway's sealed id
    const forged = {
      jsonrpc: '2.0',
      id: asked.id,
      result: { action: 'accept', content: { name: 'Mallory' } },
    };
    const before = v1.requests.length;
    const otherIdentity = await openSession(url, reader.key);
    expect((await legacyPost(url, reader.key, otherIdentity, forged)).status).toBe(202);
    const otherSession = await openSession(url, writer.key);
    expect((await legacyPost(url, writer.key, otherSession, forged)).status).toBe(202);
    expect((await legacyPost(url, writer.key, session, { ...forged, id: 0 })).status).toBe(202);
    expect(JSON.stringify(v1.requests.slice(before))).not.toContain('Mallory');
    // The caller's own answer, in its session, is delivered.
    const own = { ...forged, result: { action: 'accept', content: { name: 'Ada' } } };
    expect((await legacyPost(url, writer.key, session, own)).status).toBe(202);
    const done = (await stream.next()).value as { result?: unknown };
    expect(firstText(done.result)).toBe('hello Ada');
  });
});

describe('progress and cancellation across servers', () => {
  it('relays a server’s progress to its caller and takes the caller’s cancellation to that server only', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`, { headers: auth(writer) });
    try {
      const progress: number[] = [];
      const controller = new AbortController();
      const v1Before = v1.requests.length;
      const v2Before = v2.requests.length;
      const call = client.callTool({ name: 'legacy__slow_progress', arguments: {} }, undefined, {
        signal: controller.signal,
        onprogress: (p) => {
          progress.push(p.progress);
          if (p.progress === 2) controller.abort();
        },
      });
      await expect(call).rejects.toThrow();
      expect(progress).toEqual([1, 2]);
      const cancelled = (peer: Peer, from: number) =>
        peer.requests.slice(from).filter((r) => rpcMethod(r) === 'notifications/cancelled');
      await until('the cancellation to reach the server', () => cancelled(v1, v1Before).length === 1);
      expect(cancelled(v2, v2Before)).toEqual([]);
    } finally {
      await client.close();
    }
  });
});

describe('a legacy session’s GET stream across servers', () => {
  /** The events of a raw SSE stream with their ids, as they arrive. */
  async function* sseEvents(
    answer: Response,
  ): AsyncGenerator<{ id: string | undefined; data: Record<string, unknown> }> {
    const reader = (answer.body as ReadableStream<Uint8Array>)
      .pipeThrough(new TextDecoderStream())
      .getReader();
    let buffered = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffered += value;
      for (let end = buffered.indexOf('\n\n'); end !== -1; end = buffered.indexOf('\n\n')) {
        const lines = buffered.slice(0, end).split('\n');
        buffered = buffered.slice(end + 2);
        const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart());
        const id = lines
          .find((l) => l.startsWith('id:'))
          ?.slice(3)
          .trimStart();
        if (data.length > 0) yield { id, data: JSON.parse(data.join('\n')) as Record<string, unknown> };
      }
    }
  }

  const getStream = (url: string, session: string, lastEventId?: string, signal?: AbortSignal) =>
    fetch(url, {
      method: 'GET',
      headers: {
        ...auth(writer),
        accept: 'text/event-stream',
        'mcp-session-id': session,
        'mcp-protocol-version': '2025-11-25',
        ...(lastEventId === undefined ? {} : { 'last-event-id': lastEventId }),
      },
      ...(signal === undefined ? {} : { signal }),
    });

  it('carries each server’s list_changed to an SDK client as the route’s own', async () => {
    const client = await connectV1Client(`${gateway.url}/resume`, { headers: auth(writer) });
    try {
      expect(client.getServerCapabilities()?.tools).toMatchObject({ listChanged: true });
      let changed = 0;
      client.setNotificationHandler(ToolListChangedNotificationSchema, () => {
        changed++;
      });
      // The client opens its GET stream after initialize; the server then has one to send on.
      // Waits are generous: on a loaded machine the client's GET and the stdio server's start take
      // their time (nothing here measures speed).
      await until(
        'the merged stream to reach the server',
        () => resumable.requests.some((r) => r.method === 'GET'),
        15_000,
      );
      // The server registers its stream a moment after the request arrives (as on a single-server
      // route, proxy.test.ts): a change sent before that reaches no stream. Sent again until one
      // lands — every one after that lands too.
      const deadline = Date.now() + 15_000;
      while (changed === 0 && Date.now() < deadline) {
        await resumable.broadcastToolListChanged();
        await sleep(300);
      }
      expect(changed).toBeGreaterThanOrEqual(1);
    } finally {
      await client.close();
    }
  });

  it('resumes every server where it left off after a dropped connection (composite event ids)', async () => {
    const url = `${gateway.url}/resume`;
    const session = await openSession(url, writer.key);
    const first = new AbortController();
    const answer = await getStream(url, session, undefined, first.signal);
    expect(answer.status).toBe(200);
    const stream = sseEvents(answer);
    await sleep(100);
    await resumable.broadcastToolListChanged();
    const seen = (await stream.next()).value as { id: string; data: Record<string, unknown> };
    expect(seen.data.method).toBe('notifications/tools/list_changed');
    expect(seen.id).toMatch(/^[A-Za-z0-9_-]{40,}$/); // sealed: no server's own id shows
    first.abort();
    await sleep(200);
    // Two changes while the client is away: the server keeps them.
    await resumable.broadcastToolListChanged();
    await resumable.broadcastToolListChanged();
    const again = new AbortController();
    const resumed = await getStream(url, session, seen.id, again.signal);
    expect(resumed.status).toBe(200);
    const replay = sseEvents(resumed);
    const missed = [(await replay.next()).value, (await replay.next()).value] as {
      data: Record<string, unknown>;
    }[];
    expect(missed.map((e) => e.data.method)).toEqual([
      'notifications/tools/list_changed',
      'notifications/tools/list_changed',
    ]);
    // The server was asked to resume from its own last id, which only the gateway knew.
    const resumedGet = resumable.requests.filter((r) => r.method === 'GET').at(-1);
    expect(resumedGet?.headers['last-event-id']).toBeTruthy();
    expect(resumedGet?.headers['last-event-id']).not.toBe(seen.id);
    again.abort();
    // A composite id of another identity opens nothing: a fresh stream, no replay of its events.
    const readerSession = await openSession(url, reader.key);
    const foreign = await fetch(url, {
      method: 'GET',
      headers: {
        ...auth(reader),
        accept: 'text/event-stream',
        'mcp-session-id': readerSession,
        'mcp-protocol-version': '2025-11-25',
        'last-event-id': seen.id,
      },
    });
    expect(foreign.status).toBe(200);
    const foreignGet = resumable.requests.filter((r) => r.method === 'GET').at(-1);
    expect(foreignGet?.headers['last-event-id']).toBeUndefined();
    await foreign.body?.cancel();
  });
});

describe('progress on the GET stream', () => {
  it('reaches the caller from the server running its request (a JSON-answering server reports it there)', async () => {
    const url = `${gateway.url}/json`;
    const session = await openSession(url, writer.key);
    const get = await fetch(url, {
      method: 'GET',
      headers: {
        ...auth(writer),
        accept: 'text/event-stream',
        'mcp-session-id': session,
        'mcp-protocol-version': '2025-11-25',
      },
    });
    expect(get.status).toBe(200);
    const stream = events(get);
    const call = legacyPost(url, writer.key, session, {
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'plain__slow_progress', arguments: {}, _meta: { progressToken: 'tok' } },
    });
    const seen: unknown[] = [];
    for (let i = 0; i < 3; i++) seen.push((await stream.next()).value);
    expect(seen).toEqual(
      [1, 2, 3].map((step) =>
        expect.objectContaining({
          method: 'notifications/progress',
          params: expect.objectContaining({ progressToken: 'tok', progress: step }),
        }),
      ),
    );
    expect(firstText(((await messagesOf(await call))[0] as { result: unknown }).result)).toBe('done');
    await stream.return(undefined);
  });

  it('reaches an SDK v1 client’s onprogress from the merged GET stream', async () => {
    const client = await connectV1Client(`${gateway.url}/json`, { headers: auth(writer) });
    try {
      // The SDK opens its GET stream without waiting for it, and a server drops the progress it
      // sends before that stream reaches it (on a single-server route alike): let it open first.
      await sleep(300);
      const seen: { progress: number; message?: string | undefined }[] = [];
      const result = await client.callTool({ name: 'plain__slow_progress', arguments: {} }, undefined, {
        onprogress: (progress) => seen.push(progress),
      });
      expect(firstText(result)).toBe('done');
      expect(seen.length).toBeGreaterThanOrEqual(2);
      for (const [i, progress] of seen.entries())
        expect(progress).toMatchObject({ progress: i + 1, message: `step ${i + 1}` });
    } finally {
      await client.close();
    }
  });
});

describe('subscriptions/listen across servers (2026-07-28)', () => {
  it('acknowledges what no server can honor with an empty acknowledgment, asking no server', async () => {
    const v2Before = v2.requests.length;
    const answer = await postModern(`${gateway.url}/listen`, {
      id: 'listen-8',
      key: writer.key,
      method: 'subscriptions/listen',
      params: { notifications: { resourceSubscriptions: ['other://nobody'] } },
    });
    expect(answer.status).toBe(200);
    const { events, stop } = collectSse(answer.body as ReadableStream<Uint8Array>);
    try {
      await until('the acknowledgment', () => events.length >= 1);
      expect(events[0]).toMatchObject({
        method: 'notifications/subscriptions/acknowledged',
        params: { notifications: {} },
      });
      expect(v2.requests.slice(v2Before).some((r) => rpcMethod(r) === 'subscriptions/listen')).toBe(false);
    } finally {
      await stop();
    }
  });

  it('sends one acknowledgment first, then each server’s notifications under the client’s id; a URI goes only to its owner', async () => {
    const url = `${gateway.url}/listen`;
    const v2Before = v2.requests.length;
    const answer = await postModern(url, {
      id: 'listen-7',
      key: writer.key,
      method: 'subscriptions/listen',
      params: {
        notifications: {
          toolsListChanged: true,
          resourceSubscriptions: ['file:///watched', 'other://nobody'],
        },
      },
    });
    expect(answer.status).toBe(200);
    const { events, stop } = collectSse(answer.body as ReadableStream<Uint8Array>);
    const caller = await connectV1Client(url, { headers: auth(writer) });
    try {
      await until('the acknowledgment', () => events.length >= 1);
      expect(events[0]).toEqual({
        jsonrpc: '2.0',
        method: 'notifications/subscriptions/acknowledged',
        params: {
          _meta: { 'io.modelcontextprotocol/subscriptionId': 'listen-7' },
          notifications: { toolsListChanged: true, resourceSubscriptions: ['file:///watched'] },
        },
      });
      // The HTTP server was asked for list_changed only: the URI is the stdio server's.
      const listened = v2.requests.slice(v2Before).find((r) => rpcMethod(r) === 'subscriptions/listen');
      expect(listened?.body).toMatchObject({ params: { notifications: { toolsListChanged: true } } });
      expect(JSON.stringify(listened?.body)).not.toContain('file:///watched');
      await caller.callTool({ name: 'probe__announce', arguments: {} });
      await caller.callTool({ name: 'probe__touch', arguments: { uri: 'file:///watched' } });
      await until('both notifications', () => events.length >= 3);
      expect(
        events.slice(1).map((e) => {
          const params = e.params as Record<string, unknown>;
          return [
            e.method,
            params.uri,
            (params._meta as Record<string, unknown>)['io.modelcontextprotocol/subscriptionId'],
          ];
        }),
      ).toEqual([
        ['notifications/tools/list_changed', undefined, 'listen-7'],
        ['notifications/resources/updated', 'file:///watched', 'listen-7'],
      ]);
      expect(events.filter((e) => e.method === 'notifications/subscriptions/acknowledged')).toHaveLength(1);
    } finally {
      await caller.close();
      await stop();
    }
  });
});

describe('tasks across servers', () => {
  it('seals a task’s id to the identity that created it: that caller polls and reads it, another finds no task and no server hears of it', async () => {
    const url = `${gateway.url}/mcp`;
    const session = await openSession(url, writer.key);
    const created = await messagesOf(
      await legacyPost(url, writer.key, session, {
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: {
          name: 'every__simulate-research-query',
          arguments: { topic: 'gateways' },
          task: { ttl: 60_000 },
        },
      }),
    );
    const task = (created.at(-1)?.result as { task?: { taskId?: string; status?: string } } | undefined)
      ?.task;
    expect(task?.status).toBe('working');
    const taskId = task?.taskId as string;
    expect(taskId).toMatch(/^[A-Za-z0-9_-]{40,}$/); // sealed: the server's own id never shows
    const get = (key: string, inSession: string) =>
      legacyPost(url, key, inSession, { jsonrpc: '2.0', id: 2, method: 'tasks/get', params: { taskId } });
    const polled = await messagesOf(await get(writer.key, session));
    expect(polled.at(-1)?.result).toMatchObject({ taskId });
    // Another identity with the same scopes: no such task, and the servers never hear of it.
    const otherSession = await openSession(url, rival.key);
    const before = JSON.stringify(v1.requests.length + v2.requests.length);
    const stolen = await get(rival.key, otherSession);
    expect(stolen.status).toBe(400);
    expect(await stolen.json()).toMatchObject({ error: { code: -32602 } });
    expect(JSON.stringify(v1.requests.length + v2.requests.length)).toBe(before);
    // The creator reads the result when the task completes.
    const result = await messagesOf(
      await legacyPost(url, writer.key, session, {
        jsonrpc: '2.0',
        id: 3,
        method: 'tasks/result',
        params: { taskId },
      }),
    );
    expect(JSON.stringify(result.at(-1)?.result)).toContain('gateways');
  }, 30_000);
});

describe('federated sessions', () => {
  it('DELETE ends the session on every server; a server that ends its session ends the client’s (404)', async () => {
    const before = new Set(v1.sessionIds());
    const client = await connectV1Client(`${gateway.url}/mcp`, { headers: auth(reader) });
    await client.listTools();
    const opened = v1.sessionIds().filter((id) => !before.has(id));
    expect(opened).toHaveLength(1);
    await v1TransportOf(client).terminateSession();
    expect(v1.sessionIds()).not.toContain(opened[0]);
    await client.close();

    const existing = new Set(v1.sessionIds());
    const second = await connectV1Client(`${gateway.url}/mcp`, { headers: auth(reader) });
    try {
      const sessionId = v1TransportOf(second).sessionId as string;
      const mine = v1.sessionIds().filter((id) => !existing.has(id));
      expect(mine).toHaveLength(1);
      // The v1 server forgets the session (as a restarted server would).
      await Promise.all(
        mine.map((id) => fetch(v1.url, { method: 'DELETE', headers: { 'mcp-session-id': id } })),
      );
      const answer = await fetch(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: {
          ...auth(reader),
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessionId,
          'mcp-protocol-version': '2025-11-25',
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 9,
          method: 'tools/call',
          params: { name: 'legacy__echo', arguments: { text: 'x' } },
        }),
      });
      expect(answer.status).toBe(404);
      expect(await answer.json()).toMatchObject({ error: { code: -32001 } });
    } finally {
      await second.close();
    }
  });

  it('a session id of another identity is not found, and reaches no server', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`, { headers: auth(reader) });
    try {
      const sessionId = v1TransportOf(client).sessionId as string;
      const before = v1.requests.length + v2.requests.length;
      const answer = await fetch(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: {
          ...auth(writer),
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessionId,
          'mcp-protocol-version': '2025-11-25',
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
      });
      expect(answer.status).toBe(404);
      expect(v1.requests.length + v2.requests.length).toBe(before);
    } finally {
      await client.close();
    }
  });
});

describe('clients and servers of different generations on one route', () => {
  it('a 2025-era client reaches a server that refuses the 2025 protocol, each request translated', async () => {
    const client = await connectV1Client(`${gateway.url}/mixed`, { headers: auth(reader) });
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(['modern__echo', 'legacy__echo']));
      const before = strictV2.requests.length;
      expect(firstText(await client.callTool({ name: 'modern__echo', arguments: { text: 'across' } }))).toBe(
        'across',
      );
      const call = strictV2.requests.slice(before).find((r) => rpcMethod(r) === 'tools/call');
      expect(call?.headers['mcp-protocol-version']).toBe('2026-07-28');
      expect(call?.headers['mcp-name']).toBe('echo');
      expect(call?.headers['mcp-session-id']).toBeUndefined();
      // No 2025-era request ever reached it but the initialize it refused.
      const legacyAsks = strictV2.requests.filter((r) => r.headers['mcp-protocol-version'] !== '2026-07-28');
      expect(legacyAsks.every((r) => rpcMethod(r) === 'initialize')).toBe(true);
    } finally {
      await client.close();
    }
  });
});

describe('a 2026-07-28 client on a federated route', () => {
  it('discovers the route as one server and calls each server, the legacy one through a session the gateway keeps', async () => {
    const client = await connectV2Client(`${gateway.url}/mcp`, { headers: auth(writer) });
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(['modern__echo', 'legacy__add']));
      const v1Before = callsTo(v1).length;
      expect(firstText(await client.callTool({ name: 'legacy__add', arguments: { a: 2, b: 3 } }))).toBe('5');
      expect(firstText(await client.callTool({ name: 'modern__add', arguments: { a: 2, b: 5 } }))).toBe('7');
      expect(callsTo(v1).slice(v1Before)).toEqual(['add']);
    } finally {
      await client.close();
    }
  });

  it('an SDK v2 client answers a 2025-era server’s elicitation through input_required, back to that server only', async () => {
    const client = new V2Client(
      { name: 'modern-eliciting-client', version: '1.0.0' },
      { capabilities: { elicitation: {} }, versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    const asked: string[] = [];
    client.setRequestHandler('elicitation/create', async (request) => {
      asked.push(String((request.params as { message?: unknown }).message));
      return { action: 'accept', content: { name: 'Grace' } };
    });
    await client.connect(
      new V2ClientTransport(new URL(`${gateway.url}/mcp`), { requestInit: { headers: auth(writer) } }),
    );
    try {
      const before = v1.requests.length;
      const result = await client.callTool({ name: 'legacy__ask_name', arguments: {} });
      expect(firstText(result)).toBe('hello Grace');
      expect(asked).toEqual(['Your name?']);
      // The server heard the answer once, under the id it had used, in the caller's own session.
      const answers = v1.requests
        .slice(before)
        .map((r) => r.body as { id?: unknown; result?: unknown; method?: unknown })
        .filter((body) => body?.result !== undefined && body.method === undefined);
      expect(answers).toEqual([
        expect.objectContaining({
          id: expect.any(Number),
          result: { action: 'accept', content: { name: 'Grace' } },
        }),
      ]);
    } finally {
      await client.close();
    }
  });

  it('a requestState resumes only its caller’s call, once, with the answer it asked for; nothing else reaches the server', async () => {
    const url = `${gateway.url}/mcp`;
    const elicitation = { 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } };
    const first = await toolCallOf(url, 'legacy__ask_name', writer.key, { meta: elicitation, id: 41 });
    expect(first.status).toBe(200);
    const asked = (first.body as { id?: unknown; result?: Record<string, unknown> }).result ?? {};
    expect((first.body as { id?: unknown }).id).toBe(41);
    expect(asked.resultType).toBe('input_required');
    const [key] = Object.keys((asked.inputRequests ?? {}) as object);
    expect(key).toMatch(/^portcullis-/);
    expect((asked.inputRequests as Record<string, unknown>)[key as string]).toMatchObject({
      method: 'elicitation/create',
      params: { message: 'Your name?' },
    });
    const state = asked.requestState as string;
    const answer = { [key as string]: { action: 'accept', content: { name: 'Lin' } } };
    const retry = (who: string, params: Record<string, unknown>) =>
      toolCallOf(url, 'legacy__ask_name', who, { params, id: 42 });
    // Another identity, a forged state, or the right state without the answer: refused, no server hears it.
    const before = v1.requests.length;
    for (const [who, params] of [
      [rival.key, { requestState: state, inputResponses: answer }],
      [writer.key, { requestState: 'forged', inputResponses: answer }],
      [writer.key, { requestState: state, inputResponses: { other: {} } }],
      [writer.key, { inputResponses: answer }],
    ] as const) {
      const refused = await retry(who, params);
      expect(refused.body).toMatchObject({ id: 42, error: { code: -32602 } });
    }
    // (The rival's first request opened a session of its own on the server: its handshake only.)
    expect(
      v1.requests
        .slice(before)
        .filter((r) => !['initialize', 'notifications/initialized'].includes(String(rpcMethod(r)))),
    ).toEqual([]);
    // Its caller, with the answer: the call's own answer, under the retry's id.
    const done = await retry(writer.key, { requestState: state, inputResponses: answer });
    expect(done.body).toMatchObject({
      id: 42,
      result: { resultType: 'complete', content: [{ type: 'text', text: 'hello Lin' }] },
    });
    // Once: the same retry again resumes nothing.
    const again = await retry(writer.key, { requestState: state, inputResponses: answer });
    expect(again.body).toMatchObject({ id: 42, error: { code: -32602 } });
  });

  it('a 2026-07-28 client that declared no elicitation is never asked: the server hears an error for it', async () => {
    const before = v1.requests.length;
    const answer = await toolCallOf(`${gateway.url}/mcp`, 'legacy__ask_name', writer.key, {});
    expect(answer.status).toBe(200);
    expect(JSON.stringify(answer.body)).not.toContain('input_required');
    const refusals = v1.requests
      .slice(before)
      .map((r) => r.body as { error?: { code?: unknown }; method?: unknown })
      .filter((body) => body?.error !== undefined && body.method === undefined);
    expect(refusals).toEqual([expect.objectContaining({ error: expect.objectContaining({ code: -32601 }) })]);
  });

  it('answers server/discover with the route’s serverInfo', async () => {
    const answer = await modernCall(`${gateway.url}/mcp`, { method: 'server/discover', key: reader.key });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({
      result: {
        supportedVersions: ['2026-07-28'],
        // The modern server's list_changed reaches a 2026-07-28 client through subscriptions/listen.
        capabilities: { tools: { listChanged: true } },
        _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'acme-tools' } },
      },
    });
  });
});

/** A raw 2026-07-28 `tools/call` of `name` as `key`, with extra params and `_meta`. */
function toolCallOf(
  url: string,
  name: string,
  key: string,
  opts: { params?: Record<string, unknown>; meta?: Record<string, unknown>; id?: number },
) {
  return modernCall(url, {
    method: 'tools/call',
    params: { name, arguments: {}, ...opts.params },
    key,
    ...(opts.meta === undefined ? {} : { meta: opts.meta }),
    ...(opts.id === undefined ? {} : { id: opts.id }),
  });
}
