/**
 * stdio upstreams (DESIGN.md "Upstreams" → stdio) with a real, unmodified stdio server:
 * `@modelcontextprotocol/server-everything` in its stdio mode (SDK v1, a legacy process), reached
 * through the gateway by SDK v1 (legacy) and SDK v2 (2026-07-28) clients.
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
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { everythingStdio } from '../fixtures/everything.js';
import { connectV1Client, connectV2Client, v1TransportOf } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { firstText, timeProgress } from '../support/inspect.js';
import { modernCall, postModern } from '../support/modern-call.js';
import { collectSse } from '../support/sse.js';
import { counterValue, metricsText } from '../support/wire.js';

const MODERN_SERVER = new URL('../fixtures/v2-stdio-server.mjs', import.meta.url).pathname;
const PROBE_SERVER = new URL('../fixtures/probe-stdio-server.mjs', import.meta.url).pathname;

let gateway: TestGateway;
const SECRET = 'gateway-secret-never-in-child';

beforeAll(async () => {
  process.env.PORTCULLIS_TEST_SECRET = SECRET;
  gateway = await startTestGateway({
    routes: [
      { upstream: everythingStdio(', env: { MARKER: visible-to-child }') },
      {
        route: '/modern/mcp',
        upstream: `{ command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(MODERN_SERVER)}], processes: shared }`,
      },
      {
        route: '/session/mcp',
        upstream: `{ command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(MODERN_SERVER)}], processes: perSession }`,
      },
      {
        route: '/probe/mcp',
        upstream: `{ command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(PROBE_SERVER)}], processes: shared }`,
      },
    ],
  });
});

afterAll(async () => {
  delete process.env.PORTCULLIS_TEST_SECRET;
  await gateway.close();
});

describe('a legacy client (SDK v1) through the gateway to a legacy stdio server', () => {
  it('initializes with a sealed session, lists and calls tools', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`);
    try {
      expect(client.getServerVersion()?.name).toBe('mcp-servers/everything');
      const sessionId = v1TransportOf(client).sessionId;
      expect(sessionId).toMatch(/^[A-Za-z0-9_-]{40,}$/);
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain('echo');
      expect(firstText(await client.callTool({ name: 'echo', arguments: { message: 'hi' } }))).toBe(
        'Echo: hi',
      );
      expect(firstText(await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 3 } }))).toContain('5');
    } finally {
      await client.close();
    }
  });

  it('relays progress on the call’s SSE answer, under the client’s own token', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`);
    try {
      const { progressAt, text } = await timeProgress((onprogress) =>
        client.callTool(
          { name: 'trigger-long-running-operation', arguments: { duration: 0.4, steps: 4 } },
          undefined,
          { onprogress },
        ),
      );
      expect(text).toContain('completed');
      expect(progressAt).toHaveLength(4);
    } finally {
      await client.close();
    }
  });

  it('gives the child exactly its configured environment, never the gateway’s', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`);
    try {
      const env = JSON.parse(firstText(await client.callTool({ name: 'get-env', arguments: {} }))) as Record<
        string,
        string
      >;
      expect(env.MARKER).toBe('visible-to-child');
      expect(Object.values(env)).not.toContain(SECRET);
      expect(env.PORTCULLIS_TEST_SECRET).toBeUndefined();
      expect(env.HOME).toMatch(/portcullis-stdio-/);
      expect(env.TMPDIR).toMatch(/portcullis-stdio-/);
      expect(Object.keys(env).sort()).toEqual(
        ['HOME', 'LANG', 'MARKER', 'PATH', 'TMPDIR'].filter(
          (k) => k !== 'LANG' || process.env.LANG !== undefined,
        ),
      );
    } finally {
      await client.close();
    }
  });
});

describe('server requests to a legacy client', () => {
  it('hands the child’s sampling and elicitation requests to the client whose call caused them, and its answers back', async () => {
    const client = new V1Client(
      { name: 'sampling-client', version: '1.0.0' },
      { capabilities: { sampling: {}, elicitation: { form: {} } } },
    );
    const sampled: string[] = [];
    client.setRequestHandler(CreateMessageRequestSchema, async (request) => {
      const content = request.params.messages[0]?.content;
      sampled.push(content !== undefined && 'text' in content ? String(content.text) : '');
      return {
        role: 'assistant',
        content: { type: 'text', text: 'sampled by the client' },
        model: 'test-model',
      };
    });
    client.setRequestHandler(ElicitRequestSchema, async () => ({
      action: 'accept',
      content: {
        name: 'Ada',
        check: true,
        firstLine: 'x',
        email: 'ada@example.com',
        homepage: 'https://example.com',
        birthdate: '1815-12-10',
        integer: 1,
        number: 1.5,
        untitledSingleSelectEnum: 'option1',
        titledSingleSelectEnum: 'value1',
        legacyTitledEnum: 'opt1',
        untitledMultipleSelectEnum: ['option1'],
        titledMultipleSelectEnum: ['value1'],
      },
    }));
    await client.connect(new V1ClientTransport(new URL(`${gateway.url}/mcp`)));
    try {
      const result = await client.callTool({
        name: 'trigger-sampling-request',
        arguments: { prompt: 'gates' },
      });
      expect(sampled).toEqual([expect.stringContaining('gates')]);
      expect(JSON.stringify(result)).toContain('sampled by the client');
      const elicited = await client.callTool({ name: 'trigger-elicitation-request', arguments: {} });
      expect(JSON.stringify(elicited)).toContain('Ada');
    } finally {
      await client.close();
    }
  });
});

describe('server requests to a modern client, as input_required results', () => {
  it('carries the child’s sampling request to an SDK v2 client and its answer back on the retry', async () => {
    const client = new V2Client(
      { name: 'modern-sampling-client', version: '1.0.0' },
      { capabilities: { sampling: {} }, versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    const sampled: string[] = [];
    client.setRequestHandler('sampling/createMessage', async (request) => {
      const content = request.params.messages[0]?.content;
      sampled.push(content !== undefined && 'text' in content ? String(content.text) : '');
      return {
        role: 'assistant',
        content: { type: 'text', text: 'sampled by the modern client' },
        model: 'm',
      };
    });
    await client.connect(new V2ClientTransport(new URL(`${gateway.url}/mcp`)));
    try {
      const result = await client.callTool({
        name: 'trigger-sampling-request',
        arguments: { prompt: 'portcullis' },
      });
      expect(sampled).toEqual([expect.stringContaining('portcullis')]);
      expect(JSON.stringify(result)).toContain('sampled by the modern client');
    } finally {
      await client.close();
    }
  });

  it('refuses a retry with a requestState it never issued', async () => {
    const client = await connectV2Client(`${gateway.url}/mcp`);
    try {
      await expect(
        client.callTool({
          name: 'echo',
          arguments: { message: 'x' },
          requestState: 'forged',
          inputResponses: { k: {} },
        } as never),
      ).rejects.toThrow(/requestState/);
    } finally {
      await client.close();
    }
  });
});

describe('a modern client (SDK v2, 2026-07-28) through the gateway to a legacy stdio server', () => {
  it('discovers from the cached initialize result and calls tools statelessly', async () => {
    const client = await connectV2Client(`${gateway.url}/mcp`);
    try {
      expect(client.getNegotiatedProtocolVersion()).toBe('2026-07-28');
      expect(client.getServerVersion()?.name).toBe('mcp-servers/everything');
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toContain('echo');
      expect(firstText(await client.callTool({ name: 'echo', arguments: { message: 'modern' } }))).toBe(
        'Echo: modern',
      );
    } finally {
      await client.close();
    }
  });
});

describe('a modern stdio server (SDK v2 serveStdio) behind the gateway', () => {
  it('serves a 2026-07-28 client: discover from the probe, calls with progress', async () => {
    const client = await connectV2Client(`${gateway.url}/modern/mcp`);
    try {
      expect(client.getServerVersion()?.name).toBe('fixture-v2-stdio');
      expect(firstText(await client.callTool({ name: 'echo', arguments: { text: 'both modern' } }))).toBe(
        'both modern',
      );
      const { progressAt, text } = await timeProgress((onprogress) =>
        client.callTool({ name: 'slow_progress', arguments: {} }, { onprogress }),
      );
      expect(text).toBe('done');
      expect(progressAt).toHaveLength(3);
    } finally {
      await client.close();
    }
  });

  it('serves a legacy client: the gateway’s own initialize, the protocol fields added per request', async () => {
    const client = await connectV1Client(`${gateway.url}/modern/mcp`);
    try {
      expect(client.getServerVersion()?.name).toBe('fixture-v2-stdio');
      expect(v1TransportOf(client).sessionId).toBeDefined();
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(['add_tool', 'echo', 'slow_progress', 'whoami']);
      expect(
        firstText(await client.callTool({ name: 'echo', arguments: { text: 'legacy to modern' } })),
      ).toBe('legacy to modern');
    } finally {
      await client.close();
    }
  });

  it('tells a legacy session’s GET stream of the process’s list_changed, through a subscription of the gateway’s own', async () => {
    const url = `${gateway.url}/modern/mcp`;
    const legacy = await connectV1Client(url);
    let heard = 0;
    legacy.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      heard++;
    });
    try {
      await vi.waitFor(async () =>
        expect(
          counterValue(await metricsText(gateway), 'portcullis_active_sse_streams', { route: '/modern/mcp' }),
        ).toBeGreaterThanOrEqual(1),
      );
      // The gateway's subscription opens with the stream and is live once the process took it:
      // change the tool list until a change is heard (no fixed sleep to race against).
      await vi.waitFor(
        async () => {
          expect(firstText(await legacy.callTool({ name: 'add_tool', arguments: {} }))).toBe('added');
          expect(heard).toBeGreaterThanOrEqual(1);
        },
        { timeout: 10_000, interval: 250 },
      );
    } finally {
      await legacy.close();
    }
  });

  it('shares one process between callers on a shared route', async () => {
    const a = await connectV2Client(`${gateway.url}/modern/mcp`);
    const b = await connectV1Client(`${gateway.url}/modern/mcp`);
    try {
      const pidA = firstText(await a.callTool({ name: 'whoami', arguments: {} }));
      const pidB = firstText(await b.callTool({ name: 'whoami', arguments: {} }));
      expect(pidA).toMatch(/^\d+$/);
      expect(pidB).toBe(pidA);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('GET streams of legacy sessions', () => {
  it('carry a list_changed of the process to every session on it', async () => {
    const a = await connectV1Client(`${gateway.url}/probe/mcp`);
    const b = await connectV1Client(`${gateway.url}/probe/mcp`);
    const heard = { a: 0, b: 0 };
    a.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      heard.a++;
    });
    b.setNotificationHandler(ToolListChangedNotificationSchema, async () => {
      heard.b++;
    });
    try {
      // Each SDK client opens its GET stream after initializing; wait until both are open.
      await vi.waitFor(async () =>
        expect(
          counterValue(await metricsText(gateway), 'portcullis_active_sse_streams', { route: '/probe/mcp' }),
        ).toBe(2),
      );
      expect(firstText(await a.callTool({ name: 'announce', arguments: {} }))).toBe('announced');
      await vi.waitFor(() => expect(heard).toEqual({ a: 1, b: 1 }));
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('resource subscriptions of legacy sessions on a shared process', () => {
  it('reach the process once per URI, updates only the sessions that subscribed, and end with the last session', async () => {
    const url = `${gateway.url}/probe/mcp`;
    const a = await connectV1Client(url);
    const b = await connectV1Client(url);
    const updates = { a: [] as string[], b: [] as string[] };
    a.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
      updates.a.push(n.params.uri);
    });
    b.setNotificationHandler(ResourceUpdatedNotificationSchema, async (n) => {
      updates.b.push(n.params.uri);
    });
    const log = async () =>
      JSON.parse(firstText(await a.callTool({ name: 'subscriptions', arguments: {} }))) as string[];
    try {
      await vi.waitFor(async () =>
        expect(
          counterValue(await metricsText(gateway), 'portcullis_active_sse_streams', { route: '/probe/mcp' }),
        ).toBe(2),
      );
      const before = (await log()).length;
      await a.subscribeResource({ uri: 'file:///shared' });
      await b.subscribeResource({ uri: 'file:///shared' });
      await b.subscribeResource({ uri: 'file:///only-b' });
      expect((await log()).slice(before)).toEqual([
        'resources/subscribe file:///shared',
        'resources/subscribe file:///only-b',
      ]);

      await a.callTool({ name: 'touch', arguments: { uri: 'file:///only-b' } });
      await a.callTool({ name: 'touch', arguments: { uri: 'file:///shared' } });
      await vi.waitFor(() =>
        expect(updates).toEqual({ a: ['file:///shared'], b: ['file:///only-b', 'file:///shared'] }),
      );

      // A lets go: the process keeps the subscription B still holds.
      await a.unsubscribeResource({ uri: 'file:///shared' });
      expect((await log()).slice(before)).toHaveLength(2);
      // B's session ends: the process is told of both URIs only B held.
      await v1TransportOf(b).terminateSession();
      await vi.waitFor(async () =>
        expect((await log()).slice(before + 2).sort()).toEqual([
          'resources/unsubscribe file:///only-b',
          'resources/unsubscribe file:///shared',
        ]),
      );
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('subscriptions/listen of a 2026-07-28 client on a legacy process', () => {
  it('is acknowledged first, then carries list_changed and the subscribed updates under its id, and unsubscribes when it ends', async () => {
    const url = `${gateway.url}/probe/mcp`;
    const answer = await postModern(url, {
      id: 'listen-1',
      method: 'subscriptions/listen',
      params: {
        notifications: {
          toolsListChanged: true,
          promptsListChanged: true,
          resourceSubscriptions: ['file:///watched'],
        },
      },
    });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toContain('text/event-stream');
    const { events, stop } = collectSse(answer.body as ReadableStream<Uint8Array>);
    const other = await connectV1Client(url);
    try {
      await vi.waitFor(() => expect(events).toHaveLength(1));
      // The process offers tools.listChanged and resources.subscribe, not prompts: the ack says so.
      expect(events[0]).toEqual({
        jsonrpc: '2.0',
        method: 'notifications/subscriptions/acknowledged',
        params: {
          _meta: { 'io.modelcontextprotocol/subscriptionId': 'listen-1' },
          notifications: { toolsListChanged: true, resourceSubscriptions: ['file:///watched'] },
        },
      });
      await other.callTool({ name: 'touch', arguments: { uri: 'file:///not-watched' } });
      await other.callTool({ name: 'announce', arguments: {} });
      await other.callTool({ name: 'touch', arguments: { uri: 'file:///watched' } });
      await vi.waitFor(() => expect(events).toHaveLength(3));
      expect(
        events
          .slice(1)
          .map((e) => [
            e.method,
            (e.params as Record<string, unknown>).uri,
            ((e.params as Record<string, unknown>)._meta as Record<string, unknown>)[
              'io.modelcontextprotocol/subscriptionId'
            ],
          ]),
      ).toEqual([
        ['notifications/tools/list_changed', undefined, 'listen-1'],
        ['notifications/resources/updated', 'file:///watched', 'listen-1'],
      ]);
      const log = async () =>
        JSON.parse(firstText(await other.callTool({ name: 'subscriptions', arguments: {} }))) as string[];
      expect(await log()).toContain('resources/subscribe file:///watched');
      // The client leaves: its stream closes, and the process is told the URI is no longer wanted.
      await stop();
      await vi.waitFor(async () => expect(await log()).toContain('resources/unsubscribe file:///watched'));
    } finally {
      await other.close();
      await stop();
    }
  });
});

describe('subscriptions/listen of a 2026-07-28 client on a 2026-07-28 process', () => {
  it('reaches the process under a gateway id, and its messages come back under the client’s', async () => {
    const url = `${gateway.url}/modern/mcp`;
    const answer = await postModern(url, {
      id: 'mine',
      method: 'subscriptions/listen',
      params: { notifications: { toolsListChanged: true } },
    });
    expect(answer.status).toBe(200);
    const { events, stop } = collectSse(answer.body as ReadableStream<Uint8Array>);
    const other = await connectV2Client(url);
    try {
      await vi.waitFor(() => expect(events.length).toBeGreaterThanOrEqual(1));
      const idOf = (e: Record<string, unknown>) =>
        ((e.params as Record<string, unknown>)._meta as Record<string, unknown>)[
          'io.modelcontextprotocol/subscriptionId'
        ];
      expect(events[0]?.method).toBe('notifications/subscriptions/acknowledged');
      expect(idOf(events[0] as Record<string, unknown>)).toBe('mine');
      expect(firstText(await other.callTool({ name: 'add_tool', arguments: {} }))).toBe('added');
      await vi.waitFor(() =>
        expect(events.map((e) => e.method)).toContain('notifications/tools/list_changed'),
      );
      for (const event of events) expect(idOf(event)).toBe('mine');
    } finally {
      await stop();
      await other.close();
    }
  });
});

describe('a 2026-07-28 process’s requestState', () => {
  const MRTR = new URL('../fixtures/mrtr-stdio-server.mjs', import.meta.url).pathname;
  const alice = newApiKey('pk_test_');
  const bob = newApiKey('pk_test_');
  let own: TestGateway;
  let url: string;
  beforeAll(async () => {
    own = await startTestGateway({
      policy: `identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [use] }
    - { id: bob, hash: "${bob.hash}", scopes: [use] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: { command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(MRTR)}], processes: shared }
    authentication: { methods: [apiKey] }
    tools: { confirm: use, last_state: use }
`,
    });
    url = `${own.url}/mcp`;
  });
  afterAll(() => own?.close());

  const confirm = (key: string, extra: Record<string, unknown> = {}) =>
    modernCall(url, { key, method: 'tools/call', params: { name: 'confirm', arguments: {}, ...extra } });
  const resultOf = (answer: { body: unknown }) => (answer.body as { result: Record<string, unknown> }).result;
  const errorOf = (answer: { body: unknown }) => (answer.body as { error: { code: number } }).error;

  it('reaches the client sealed, comes back to the process as it was, and only from the identity it was given to', async () => {
    const first = resultOf(await confirm(alice.key));
    expect(first.resultType).toBe('input_required');
    const sealed = first.requestState as string;
    expect(sealed).not.toContain('server-state-42');
    expect(sealed.length).toBeGreaterThan(40);

    // Bob brings Alice's state back: refused, and the process never sees it.
    const stolen = await confirm(bob.key, {
      requestState: sealed,
      inputResponses: { sure: { action: 'accept', content: { who: 'bob' } } },
    });
    expect(errorOf(stolen).code).toBe(-32602);
    // The process's own state, unsealed, is not accepted either.
    const raw = await confirm(alice.key, {
      requestState: 'server-state-42',
      inputResponses: { sure: { action: 'accept', content: {} } },
    });
    expect(errorOf(raw).code).toBe(-32602);
    const seen = await modernCall(url, {
      key: alice.key,
      method: 'tools/call',
      params: { name: 'last_state', arguments: {} },
    });
    expect(JSON.stringify(resultOf(seen).content)).toContain('null');

    const done = resultOf(
      await confirm(alice.key, {
        requestState: sealed,
        inputResponses: { sure: { action: 'accept', content: { who: 'alice' } } },
      }),
    );
    expect(done.resultType).toBe('complete');
    expect(JSON.stringify(done.content)).toContain('confirmed: {\\"who\\":\\"alice\\"}');
  });
});

describe('a 2025-03-26 batch that opens a session', () => {
  it('is refused as a whole: initialize must stand alone, and nothing beside it goes unanswered', async () => {
    const answer = await fetch(`${gateway.url}/probe/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify([
        {
          jsonrpc: '2.0',
          id: 1,
          method: 'initialize',
          params: {
            protocolVersion: '2025-03-26',
            capabilities: {},
            clientInfo: { name: 'b', version: '1' },
          },
        },
        { jsonrpc: '2.0', id: 2, method: 'tools/list' },
      ]),
    });
    expect(answer.status).toBe(400);
    const body = (await answer.json()) as { id: number; error: { data: { reason: string } } }[];
    expect(body.map((m) => [m.id, m.error.data.reason])).toEqual([
      [1, 'invalid_request'],
      [2, 'invalid_request'],
    ]);
    expect(answer.headers.get('mcp-session-id')).toBeNull();
  });
});

describe('processes: perSession', () => {
  it('gives each legacy session a process of its own, stopped when the session ends; a modern client is refused', async () => {
    const url = `${gateway.url}/session/mcp`;
    const a = await connectV1Client(url);
    const b = await connectV1Client(url);
    try {
      const pidA = Number(firstText(await a.callTool({ name: 'whoami', arguments: {} })));
      const pidB = Number(firstText(await b.callTool({ name: 'whoami', arguments: {} })));
      expect(pidA).not.toBe(pidB);
      expect(Number(firstText(await a.callTool({ name: 'whoami', arguments: {} })))).toBe(pidA);
      await v1TransportOf(a).terminateSession();
      await vi.waitFor(() => expect(() => process.kill(pidA, 0)).toThrow(), { timeout: 7000 });
      expect(() => process.kill(pidB, 0)).not.toThrow();
    } finally {
      await a.close();
      await b.close();
    }
    const modern = await modernCall(url, { method: 'tools/call', params: { name: 'whoami', arguments: {} } });
    expect(modern.status).toBe(400);
    expect((modern.body as { error: { data: { reason: string } } }).error.data.reason).toBe(
      'invalid_request',
    );
  });
});

describe('stdio metrics', () => {
  it('counts the processes started and running, and the calls in flight settle to zero', async () => {
    const client = await connectV2Client(`${gateway.url}/modern/mcp`);
    try {
      await client.callTool({ name: 'echo', arguments: { text: 'counted' } });
    } finally {
      await client.close();
    }
    const text = await metricsText(gateway);
    expect(
      counterValue(text, 'portcullis_stdio_starts_total', {
        route: '/modern/mcp',
        result: 'started',
        restart: 'false',
      }),
    ).toBe(1);
    expect(counterValue(text, 'portcullis_stdio_processes', { route: '/modern/mcp' })).toBe(1);
    expect(counterValue(text, 'portcullis_stdio_in_flight', { route: '/modern/mcp' })).toBe(0);
    expect(
      counterValue(text, 'portcullis_stdio_dropped_total', { route: '/mcp', kind: 'broadcast' }),
    ).toBeGreaterThan(0);
  });
});
