/**
 * The test peers work on their own, with no gateway in between: every server/client combination
 * the gateway tests rely on, the demo notes server, and `@modelcontextprotocol/server-everything`.
 */
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startNotesServer } from '../../src/demo/notes-server.js';
import { type EverythingServer, startEverythingServer } from '../fixtures/everything.js';
import {
  connectV1Client,
  connectV2Client,
  FIXTURE_PROMPT_NAME,
  FIXTURE_RESOURCE_TEXT,
  FIXTURE_RESOURCE_URI,
  type Peer,
  type RecordedRequest,
  SLOW_PROGRESS_STEPS,
  startV1Server,
  startV2Server,
  type V1Peer,
  v1TransportOf,
  v2TransportOf,
} from '../fixtures/peers.js';
import { firstText, header, timeProgress } from '../support/inspect.js';

const MODERN = '2026-07-28';
const LEGACY = '2025-11-25';
const PROTOCOL_VERSION_KEY = 'io.modelcontextprotocol/protocolVersion';

function bodyOf(request: RecordedRequest): Record<string, unknown> {
  const body = request.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new Error('not a JSON object body');
  return body as Record<string, unknown>;
}

function posts(peer: Peer, method: string): RecordedRequest[] {
  return peer.requests.filter((r) => r.method === 'POST' && bodyOf(r).method === method);
}

/** A hand-made modern POST, as an SDK v2 client would send it. */
function modernPost(url: string, method: string, params: Record<string, unknown> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: {
          [PROTOCOL_VERSION_KEY]: MODERN,
          'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
          'io.modelcontextprotocol/clientCapabilities': {},
        },
      },
    }),
  });
}

describe.each(['json', 'sse'] as const)('SDK v2 server, modern protocol, %s answers', (response) => {
  let peer: Peer;
  beforeAll(async () => {
    peer = await startV2Server({ response });
  });
  afterAll(async () => {
    await peer.close();
  });

  it('negotiates 2026-07-28 with server/discover, never initialize', async () => {
    const client = await connectV2Client(peer.url);
    try {
      expect(client.getNegotiatedProtocolVersion()).toBe(MODERN);
      expect(v2TransportOf(client).sessionId).toBeUndefined();
      expect(posts(peer, 'initialize')).toHaveLength(0);
      const [discover] = posts(peer, 'server/discover');
      expect(discover).toBeDefined();
      expect(header(discover!, 'mcp-method')).toBe('server/discover');
      expect(header(discover!, 'mcp-protocol-version')).toBe(MODERN);
    } finally {
      await client.close();
    }
  });

  it('lists and calls tools, reads the resource and gets the prompt, mirroring the body in headers', async () => {
    const client = await connectV2Client(peer.url, { headers: { Authorization: 'Bearer test-token' } });
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual(['add', 'echo', 'fail', 'slow_progress']);
      expect(firstText(await client.callTool({ name: 'echo', arguments: { text: 'hello' } }))).toBe('hello');
      expect(firstText(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }))).toBe('5');
      const read = await client.readResource({ uri: FIXTURE_RESOURCE_URI });
      expect(read.contents[0]).toMatchObject({ uri: FIXTURE_RESOURCE_URI, text: FIXTURE_RESOURCE_TEXT });
      const prompt = await client.getPrompt({ name: FIXTURE_PROMPT_NAME, arguments: { topic: 'gates' } });
      expect(prompt.messages[0]?.content).toMatchObject({
        type: 'text',
        text: 'Explain gates in one paragraph.',
      });

      const echo = posts(peer, 'tools/call').find((r) => header(r, 'mcp-name') === 'echo');
      expect(echo).toBeDefined();
      expect(header(echo!, 'authorization')).toBe('Bearer test-token');
      expect(header(echo!, 'mcp-method')).toBe('tools/call');
      expect(header(echo!, 'content-type')).toBe('application/json');
      expect(header(echo!, 'accept')).toBe('application/json, text/event-stream');
      expect(header(echo!, 'mcp-session-id')).toBeUndefined();
      expect(header(posts(peer, 'resources/read').at(-1)!, 'mcp-name')).toBe(FIXTURE_RESOURCE_URI);
      expect(header(posts(peer, 'prompts/get').at(-1)!, 'mcp-name')).toBe(FIXTURE_PROMPT_NAME);
      expect(header(posts(peer, 'tools/list').at(-1)!, 'mcp-name')).toBeUndefined();
      // Every modern request mirrors its body: MCP-Protocol-Version = _meta protocolVersion, Mcp-Method = method.
      for (const request of peer.requests) {
        const body = bodyOf(request);
        const meta = (body.params as { _meta?: Record<string, unknown> } | undefined)?._meta;
        expect(meta?.[PROTOCOL_VERSION_KEY]).toBe(MODERN);
        expect(header(request, 'mcp-protocol-version')).toBe(MODERN);
        expect(header(request, 'mcp-method')).toBe(body.method);
      }
    } finally {
      await client.close();
    }
  });

  if (response === 'sse') {
    it('streams slow_progress progress before the result', async () => {
      const client = await connectV2Client(peer.url);
      try {
        const { progressAt, resolvedAt, text } = await timeProgress((onprogress) =>
          client.callTool({ name: 'slow_progress', arguments: {} }, { onprogress }),
        );
        expect(text).toBe('done');
        expect(progressAt).toHaveLength(SLOW_PROGRESS_STEPS);
        // The first report arrives ~400 ms before the result: streamed, not buffered.
        expect(resolvedAt - progressAt[0]!).toBeGreaterThan(200);
        const call = posts(peer, 'tools/call').at(-1)!;
        expect(header(call, 'mcp-name')).toBe('slow_progress');
        expect(
          (bodyOf(call).params as { _meta: { progressToken?: unknown } })._meta.progressToken,
        ).toBeDefined();
      } finally {
        await client.close();
      }
    });
  } else {
    it('answers slow_progress with JSON only: responseMode json drops progress (SDK behaviour)', async () => {
      const client = await connectV2Client(peer.url);
      try {
        const { progressAt, text } = await timeProgress((onprogress) =>
          client.callTool({ name: 'slow_progress', arguments: {} }, { onprogress }),
        );
        expect(text).toBe('done');
        expect(progressAt).toHaveLength(0);
      } finally {
        await client.close();
      }
    });
  }

  it(`answers a POST with ${response === 'json' ? 'application/json' : 'text/event-stream'}`, async () => {
    const answer = await modernPost(peer.url, 'tools/list');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toContain(
      response === 'json' ? 'application/json' : 'text/event-stream',
    );
    expect(await answer.text()).toContain('slow_progress');
  });

  it('answers GET and DELETE with 405 and refuses a legacy initialize', async () => {
    expect((await fetch(peer.url, { method: 'GET', headers: { accept: 'text/event-stream' } })).status).toBe(
      405,
    );
    expect((await fetch(peer.url, { method: 'DELETE' })).status).toBe(405);
    const init = await fetch(peer.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: LEGACY, capabilities: {}, clientInfo: { name: 'raw', version: '1' } },
      }),
    });
    expect(init.status).toBe(400);
    expect(await init.json()).toMatchObject({ error: { code: -32022 } });
  });
});

describe('SDK v2 server, modern protocol, auto answers', () => {
  it('answers JSON for a plain call and upgrades to SSE when progress is reported', async () => {
    const peer = await startV2Server({ response: 'auto' });
    const client = await connectV2Client(peer.url);
    try {
      const plain = await modernPost(peer.url, 'tools/list');
      expect(plain.headers.get('content-type')).toContain('application/json');
      await plain.text();
      const { progressAt, resolvedAt } = await timeProgress((onprogress) =>
        client.callTool({ name: 'slow_progress', arguments: {} }, { onprogress }),
      );
      expect(progressAt).toHaveLength(SLOW_PROGRESS_STEPS);
      expect(resolvedAt - progressAt[0]!).toBeGreaterThan(200);
    } finally {
      await client.close();
      await peer.close();
    }
  });
});

describe.each(['json', 'sse'] as const)(
  'SDK v1 server, legacy sessionful protocol, %s answers',
  (response) => {
    let peer: V1Peer;
    beforeAll(async () => {
      peer = await startV1Server({ response });
    });
    afterAll(async () => {
      await peer.close();
    });

    it('initializes a session, then lists and calls tools, reads the resource and gets the prompt', async () => {
      const client = await connectV1Client(peer.url, { headers: { Authorization: 'Bearer test-token' } });
      try {
        const sessionId = v1TransportOf(client).sessionId;
        expect(sessionId).toBeDefined();
        expect(peer.sessionIds()).toContain(sessionId);

        const [init] = posts(peer, 'initialize');
        expect(init).toBeDefined();
        expect(header(init!, 'mcp-session-id')).toBeUndefined();
        expect(header(init!, 'mcp-protocol-version')).toBeUndefined();
        expect((bodyOf(init!).params as { protocolVersion: string }).protocolVersion).toBe(LEGACY);

        const { tools } = await client.listTools();
        expect(tools.map((t) => t.name).sort()).toEqual(['add', 'echo', 'slow_progress']);
        expect(firstText(await client.callTool({ name: 'echo', arguments: { text: 'hello' } }))).toBe(
          'hello',
        );
        expect(firstText(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }))).toBe('5');
        const read = await client.readResource({ uri: FIXTURE_RESOURCE_URI });
        expect(read.contents[0]).toMatchObject({ uri: FIXTURE_RESOURCE_URI, text: FIXTURE_RESOURCE_TEXT });
        const prompt = await client.getPrompt({ name: FIXTURE_PROMPT_NAME, arguments: { topic: 'gates' } });
        expect(prompt.messages[0]?.content).toMatchObject({
          type: 'text',
          text: 'Explain gates in one paragraph.',
        });

        const echo = posts(peer, 'tools/call').at(-1)!;
        expect(header(echo, 'authorization')).toBe('Bearer test-token');
        expect(header(echo, 'mcp-session-id')).toBe(sessionId);
        expect(header(echo, 'mcp-protocol-version')).toBe(LEGACY);
        expect(header(echo, 'mcp-method')).toBeUndefined();
        expect(header(echo, 'mcp-name')).toBeUndefined();
        expect(header(echo, 'accept')).toBe('application/json, text/event-stream');
      } finally {
        await client.close();
      }
    });

    it('reports slow_progress progress before the result', async () => {
      const client = await connectV1Client(peer.url);
      try {
        const sessionId = v1TransportOf(client).sessionId;
        // In JSON mode progress rides the standalone GET stream, which the client opens after initialize.
        await vi.waitFor(() =>
          expect(
            peer.requests.some((r) => r.method === 'GET' && header(r, 'mcp-session-id') === sessionId),
          ).toBe(true),
        );
        await client.ping();
        const { progressAt, resolvedAt, text } = await timeProgress((onprogress) =>
          client.callTool({ name: 'slow_progress', arguments: {} }, undefined, { onprogress }),
        );
        expect(text).toBe('done');
        if (response === 'sse') expect(progressAt).toHaveLength(SLOW_PROGRESS_STEPS);
        // On the GET stream the last report can lose the race with the JSON answer.
        else expect(progressAt.length).toBeGreaterThanOrEqual(SLOW_PROGRESS_STEPS - 1);
        expect(resolvedAt - progressAt[0]!).toBeGreaterThan(200);
      } finally {
        await client.close();
      }
    });

    it('opens the GET stream, delivers server notifications on it, and ends the session with DELETE', async () => {
      const client = await connectV1Client(peer.url);
      const transport = v1TransportOf(client);
      const sessionId = transport.sessionId!;
      const listChanged = vi.fn();
      client.setNotificationHandler(ToolListChangedNotificationSchema, listChanged);

      await vi.waitFor(() =>
        expect(
          peer.requests.some((r) => r.method === 'GET' && header(r, 'mcp-session-id') === sessionId),
        ).toBe(true),
      );
      const get = peer.requests.find((r) => r.method === 'GET' && header(r, 'mcp-session-id') === sessionId)!;
      expect(header(get, 'accept')).toBe('text/event-stream');
      expect(header(get, 'mcp-protocol-version')).toBe(LEGACY);
      expect(get.body).toBeUndefined();

      await client.ping();
      await vi.waitFor(async () => {
        await peer.broadcastToolListChanged();
        expect(listChanged).toHaveBeenCalled();
      });

      await transport.terminateSession();
      const del = peer.requests.find((r) => r.method === 'DELETE');
      expect(del).toBeDefined();
      expect(header(del!, 'mcp-session-id')).toBe(sessionId);
      expect(peer.sessionIds()).not.toContain(sessionId);

      const stale = await fetch(peer.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-session-id': sessionId,
          'mcp-protocol-version': LEGACY,
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
      });
      expect(stale.status).toBe(404);
      await client.close();
    });

    it(`answers a POST with ${response === 'json' ? 'application/json' : 'text/event-stream'}`, async () => {
      const client = await connectV1Client(peer.url);
      try {
        const answer = await fetch(peer.url, {
          method: 'POST',
          headers: {
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream',
            'mcp-session-id': v1TransportOf(client).sessionId!,
            'mcp-protocol-version': LEGACY,
          },
          body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
        });
        expect(answer.status).toBe(200);
        expect(answer.headers.get('content-type')).toContain(
          response === 'json' ? 'application/json' : 'text/event-stream',
        );
        expect(await answer.text()).toContain('slow_progress');
      } finally {
        await client.close();
      }
    });

    it('refuses a non-initialize request without a session', async () => {
      const answer = await fetch(peer.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
      });
      expect(answer.status).toBe(400);
    });
  },
);

describe('demo notes server', () => {
  let notes: Awaited<ReturnType<typeof startNotesServer>>;
  beforeAll(async () => {
    notes = await startNotesServer({});
  });
  afterAll(async () => {
    await notes.close();
  });

  it('listens on 127.0.0.1 at /mcp', () => {
    expect(notes.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
  });

  it('serves the note tools to a modern v2 client, with progress from summarize_notes', async () => {
    const client = await connectV2Client(notes.url);
    try {
      expect(client.getNegotiatedProtocolVersion()).toBe(MODERN);
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name).sort()).toEqual([
        'delete_note',
        'list_notes',
        'read_note',
        'summarize_notes',
        'write_note',
      ]);
      expect(firstText(await client.callTool({ name: 'list_notes', arguments: {} }))).toContain(
        'welcome: Welcome',
      );
      expect(firstText(await client.callTool({ name: 'read_note', arguments: { id: 'welcome' } }))).toContain(
        '# Welcome',
      );
      await client.callTool({
        name: 'write_note',
        arguments: { id: 'todo', title: 'To do', body: 'Ship it' },
      });
      expect(firstText(await client.callTool({ name: 'read_note', arguments: { id: 'todo' } }))).toContain(
        'Ship it',
      );
      const read = await client.readResource({ uri: 'note://todo' });
      expect(read.contents[0]).toMatchObject({ uri: 'note://todo', mimeType: 'text/markdown' });
      await client.callTool({ name: 'delete_note', arguments: { id: 'todo' } });
      const missing = await client.callTool({ name: 'read_note', arguments: { id: 'todo' } });
      expect(missing.isError).toBe(true);

      const { progressAt, resolvedAt, text } = await timeProgress((onprogress) =>
        client.callTool({ name: 'summarize_notes', arguments: {} }, { onprogress }),
      );
      expect(text).toMatch(/^2 note\(s\)/);
      expect(progressAt.length).toBeGreaterThanOrEqual(3);
      expect(resolvedAt - progressAt[0]!).toBeGreaterThan(600);
    } finally {
      await client.close();
    }
  });

  it('serves legacy clients with sessions on the same endpoint', async () => {
    const client = await connectV1Client(notes.url);
    const transport = v1TransportOf(client);
    expect(transport.sessionId).toBeDefined();
    expect(firstText(await client.callTool({ name: 'read_note', arguments: { id: 'groceries' } }))).toContain(
      'Bread',
    );
    const { progressAt } = await timeProgress((onprogress) =>
      client.callTool({ name: 'summarize_notes', arguments: {} }, undefined, { onprogress }),
    );
    expect(progressAt.length).toBeGreaterThanOrEqual(3);
    await transport.terminateSession();
    await client.close();

    const v2legacy = await connectV2Client(notes.url, { protocol: 'legacy' });
    expect(v2legacy.getNegotiatedProtocolVersion()).toBe(LEGACY);
    expect(v2TransportOf(v2legacy).sessionId).toBeDefined();
    await v2legacy.close();
  });

  it('refuses a stale session with 404 and a wrong media type with 415', async () => {
    const stale = await fetch(notes.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-session-id': 'nope',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(stale.status).toBe(404);
    const media = await fetch(notes.url, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: '{}',
    });
    expect(media.status).toBe(415);
  });
});

describe('@modelcontextprotocol/server-everything (Streamable HTTP mode)', () => {
  let everything: EverythingServer;
  let url: string;

  beforeAll(async () => {
    everything = await startEverythingServer();
    url = everything.url;
  });

  afterAll(async () => {
    await everything?.close();
  });

  it('lists tools, calls echo, reads a resource and gets a prompt with the v1 client', async () => {
    const client = await connectV1Client(url);
    try {
      expect(v1TransportOf(client).sessionId).toBeDefined();
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(['echo', 'get-sum']));
      expect(firstText(await client.callTool({ name: 'echo', arguments: { message: 'hi' } }))).toBe(
        'Echo: hi',
      );

      const { resources } = await client.listResources();
      const first = resources[0];
      expect(first).toBeDefined();
      const read = await client.readResource({ uri: first!.uri });
      expect(read.contents[0]?.uri).toBe(first!.uri);

      const prompt = await client.getPrompt({ name: 'simple-prompt' });
      expect(prompt.messages[0]?.content).toMatchObject({ type: 'text' });
    } finally {
      await client.close();
    }
  });
});
