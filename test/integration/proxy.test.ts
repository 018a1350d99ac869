/**
 * Real SDK peers through a real gateway: the v2 client against a v2 server (modern, stateless)
 * and the v1 client against a v1 server (legacy, sessions), with JSON and with SSE answers.
 */
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  connectV1Client,
  connectV2Client,
  FIXTURE_PROMPT_NAME,
  FIXTURE_RESOURCE_TEXT,
  FIXTURE_RESOURCE_URI,
  type Peer,
  SLOW_PROGRESS_STEPS,
  startV1Server,
  startV2Server,
  type V1Peer,
  v1TransportOf,
} from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { firstText, header, rpcMethod, timeProgress } from '../support/inspect.js';
import { MODERN } from '../support/wire.js';

describe.each(['json', 'sse', 'auto'] as const)(
  'modern protocol: SDK v2 client → gateway → SDK v2 server (%s)',
  (response) => {
    let upstream: Peer;
    let gateway: TestGateway;
    let url: string;
    beforeAll(async () => {
      upstream = await startV2Server({ response });
      gateway = await startTestGateway({ routes: [{ upstream: upstream.url }] });
      url = `${gateway.url}/mcp`;
    });
    afterAll(async () => {
      await gateway.close();
      await upstream.close();
    });

    it('negotiates 2026-07-28, lists and calls tools, reads resources and gets prompts', async () => {
      const client = await connectV2Client(url);
      try {
        expect(client.getNegotiatedProtocolVersion()).toBe(MODERN);
        const { tools } = await client.listTools();
        expect(tools.map((t) => t.name).sort()).toEqual(['add', 'echo', 'fail', 'slow_progress']);
        expect(firstText(await client.callTool({ name: 'echo', arguments: { text: 'héllo' } }))).toBe(
          'héllo',
        );
        expect(firstText(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }))).toBe('5');
        const read = await client.readResource({ uri: FIXTURE_RESOURCE_URI });
        expect(read.contents[0]).toMatchObject({ uri: FIXTURE_RESOURCE_URI, text: FIXTURE_RESOURCE_TEXT });
        const prompt = await client.getPrompt({ name: FIXTURE_PROMPT_NAME, arguments: { topic: 'gates' } });
        expect(prompt.messages).toHaveLength(1);
      } finally {
        await client.close();
      }
      // The upstream received the mirrored headers and the gateway's forwarding headers.
      const call = upstream.requests.find(
        (r) => rpcMethod(r) === 'tools/call' && header(r, 'mcp-name') === 'echo',
      );
      expect(call).toBeDefined();
      expect(header(call!, 'mcp-protocol-version')).toBe(MODERN);
      expect(header(call!, 'mcp-method')).toBe('tools/call');
      expect(header(call!, 'x-forwarded-for')).toBe('127.0.0.1');
      const records = await gateway.auditRecords();
      expect(records).toContainEqual(
        expect.objectContaining({
          method: 'tools/call',
          tool: 'echo',
          decision: 'allow',
          identity: expect.objectContaining({ key: 'anonymous' }),
          upstreamStatus: 200,
        }),
      );
    });

    it(
      response === 'json'
        ? 'relays the JSON answer of a progress-reporting tool'
        : 'streams progress before the tool finishes',
      async () => {
        const client = await connectV2Client(url);
        try {
          const { progressAt, resolvedAt, text } = await timeProgress((onprogress) =>
            client.callTool({ name: 'slow_progress', arguments: {} }, { onprogress }),
          );
          expect(text).toBe('done');
          if (response === 'json') {
            // The SDK's json mode drops notifications sent before the result; nothing to stream.
            expect(progressAt).toHaveLength(0);
          } else {
            expect(progressAt).toHaveLength(SLOW_PROGRESS_STEPS);
            // The tool takes ~500 ms; the first report must reach the client long before the result.
            expect(resolvedAt - progressAt[0]!).toBeGreaterThan(250);
          }
        } finally {
          await client.close();
        }
      },
    );

    // `notifications/cancelled` is the one 2026-07-28 client notification (the others are refused).
    it('passes a notification through with 202', async () => {
      const before = upstream.requests.length;
      const answer = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': MODERN,
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          method: 'notifications/cancelled',
          params: { requestId: 'gone', reason: 'test' },
        }),
      });
      expect(answer.status).toBe(202);
      expect(upstream.requests.length).toBe(before + 1);
    });
  },
);

describe.each(['json', 'sse'] as const)(
  'legacy protocol: SDK v1 client → gateway → SDK v1 server (%s)',
  (response) => {
    let upstream: V1Peer;
    let gateway: TestGateway;
    let url: string;
    beforeAll(async () => {
      upstream = await startV1Server({ response });
      gateway = await startTestGateway({ routes: [{ upstream: upstream.url }] });
      url = `${gateway.url}/mcp`;
    });
    afterAll(async () => {
      await gateway.close();
      await upstream.close();
    });

    it('initializes a session, lists and calls tools, sends notifications, and ends with DELETE', async () => {
      const client = await connectV1Client(url);
      const transport = v1TransportOf(client);
      try {
        expect(transport.sessionId).toMatch(/.+/);
        const { tools } = await client.listTools();
        expect(tools.map((t) => t.name).sort()).toEqual(['add', 'echo', 'slow_progress']);
        expect(firstText(await client.callTool({ name: 'echo', arguments: { text: 'legacy' } }))).toBe(
          'legacy',
        );
        const initialized = upstream.requests.filter((r) => rpcMethod(r) === 'notifications/initialized');
        expect(initialized).toHaveLength(1);
        const call = upstream.requests.find((r) => rpcMethod(r) === 'tools/call');
        // The client holds a sealed id; the upstream sees only its own.
        const upstreamId = header(call!, 'mcp-session-id');
        expect(upstream.sessionIds()).toContain(upstreamId);
        expect(transport.sessionId).not.toBe(upstreamId);
        expect(header(call!, 'mcp-protocol-version')).toBe('2025-11-25');

        const sessionId = transport.sessionId;
        await transport.terminateSession();
        const deletes = upstream.requests.filter((r) => r.method === 'DELETE');
        expect(deletes).toHaveLength(1);
        expect(header(deletes[0]!, 'mcp-session-id')).toBe(upstreamId);
        expect(upstream.sessionIds()).not.toContain(upstreamId);
        expect(sessionId).toBeDefined();
      } finally {
        await client.close();
      }
    });

    it('streams progress before the tool finishes', async () => {
      const client = await connectV1Client(url);
      try {
        const { progressAt, resolvedAt, text } = await timeProgress((onprogress) =>
          client.callTool({ name: 'slow_progress', arguments: {} }, undefined, { onprogress }),
        );
        expect(text).toBe('done');
        // In json mode the fixture sends progress on the session's GET stream (see peers.ts), so the
        // last report may trail the result; the first must still arrive well before it.
        expect(progressAt.length).toBeGreaterThanOrEqual(
          response === 'json' ? SLOW_PROGRESS_STEPS - 1 : SLOW_PROGRESS_STEPS,
        );
        expect(resolvedAt - progressAt[0]!).toBeGreaterThan(250);
      } finally {
        await client.close();
      }
    });

    it('carries server-to-client messages on the GET stream', async () => {
      const client = await connectV1Client(url);
      const changed = vi.fn();
      client.setNotificationHandler(ToolListChangedNotificationSchema, changed);
      try {
        await vi.waitFor(() => expect(upstream.requests.some((r) => r.method === 'GET')).toBe(true));
        const get = upstream.requests.find((r) => r.method === 'GET');
        expect(header(get!, 'accept')).toContain('text/event-stream');
        // The GET stream is open once the upstream registered it; retry the broadcast until it lands.
        await vi.waitFor(
          () => {
            upstream.broadcastToolListChanged();
            expect(changed).toHaveBeenCalled();
          },
          { timeout: 3_000, interval: 100 },
        );
      } finally {
        await client.close();
      }
    });
  },
);

/**
 * The SDK v2 client's `auto` mode through the gateway: it probes with `server/discover` (a
 * 2026-07-28 request) and falls back to `initialize` (a legacy one) when the upstream is legacy.
 * The gateway's era gating — each method only in its own generation — must serve both paths.
 */
describe('SDK v2 client in auto mode → gateway', () => {
  let legacy: V1Peer;
  let modern: Peer;
  let gateway: TestGateway;
  beforeAll(async () => {
    legacy = await startV1Server({ response: 'json' });
    modern = await startV2Server({ response: 'json' });
    gateway = await startTestGateway({
      routes: [
        { route: '/legacy/mcp', upstream: legacy.url },
        { route: '/modern/mcp', upstream: modern.url },
      ],
    });
  });
  afterAll(async () => {
    await gateway.close();
    await legacy.close();
    await modern.close();
  });

  it.each([
    ['a legacy upstream: falls back to initialize', '/legacy/mcp', '2025-11-25'],
    ['a modern upstream: stays on 2026-07-28', '/modern/mcp', MODERN],
  ])('connects to %s, and calls a tool', async (_, path, version) => {
    const client = await connectV2Client(`${gateway.url}${path}`, { protocol: 'auto' });
    try {
      expect(client.getNegotiatedProtocolVersion()).toBe(version);
      expect(firstText(await client.callTool({ name: 'echo', arguments: { text: 'auto' } }))).toBe('auto');
    } finally {
      await client.close();
    }
  });
});
