/**
 * Admission before forwarding (DESIGN.md step 8): with an identity's stream cap full of idle GET
 * streams, further calls either run normally or are refused before the upstream sees them — the
 * upstream's execution count proves which; no call is executed and then refused. The stream cap
 * counts GET streams and `subscriptions/listen` answers, reserved before forwarding.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { connectV1Client, startV1Server, type V1Peer, v1TransportOf } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { modernCall, toolCall } from '../support/modern-call.js';
import { META, modernHeaders } from '../support/wire.js';

const agent = newApiKey('pk_');
const LEGACY = '2025-11-25';

const until = async (check: () => boolean, what: string) => {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe('16 idle GET streams on one key (maxStreamsPerIdentity 16), legacy SDK peers', () => {
  let upstream: V1Peer;
  let gateway: TestGateway;
  const clients: Awaited<ReturnType<typeof connectV1Client>>[] = [];

  beforeAll(async () => {
    upstream = await startV1Server({ response: 'sse' });
    gateway = await startTestGateway({
      policy: `limits: { maxStreamsPerIdentity: 16, maxConcurrentPerIdentity: 64, drainTimeoutMs: 500 }
identities:
  apiKeys: [{ id: agent, hash: "${agent.hash}", scopes: [t] }]
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    tools: { echo: t }
`,
    });
    // Each official SDK client opens its session's GET stream itself after `initialize`.
    for (let i = 0; i < 16; i++) {
      clients.push(
        await connectV1Client(`${gateway.url}/mcp`, { headers: { authorization: `Bearer ${agent.key}` } }),
      );
    }
    await until(() => upstream.requests.filter((r) => r.method === 'GET').length === 16, '16 GET streams');
  }, 30_000);
  afterAll(async () => {
    await Promise.allSettled(clients.map((c) => c.close()));
    await gateway?.close();
    await upstream?.close();
  });

  const executed = (text: string) =>
    upstream.requests.filter(
      (r) =>
        r.method === 'POST' &&
        (r.body as { params?: { arguments?: { text?: string } } } | undefined)?.params?.arguments?.text ===
          text,
    ).length;

  it('tools/call answered over SSE runs normally: every call the upstream executed was answered 200', async () => {
    const calls = Array.from({ length: 24 }, (_, i) => {
      const client = clients[i % clients.length]!;
      const session = v1TransportOf(client).sessionId as string;
      const text = `admission-${i}`;
      return fetch(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': LEGACY,
          'mcp-session-id': session,
          authorization: `Bearer ${agent.key}`,
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: i,
          method: 'tools/call',
          params: { name: 'echo', arguments: { text } },
        }),
      }).then(async (answer) => ({ status: answer.status, body: await answer.text(), text }));
    });
    const answers = await Promise.all(calls);
    for (const answer of answers) {
      const ran = executed(answer.text);
      // Either it ran and was answered, or it was refused and never reached the upstream.
      if (answer.status === 200) {
        expect(ran, answer.text).toBe(1);
        expect(answer.body).toContain(answer.text);
      } else {
        expect(ran, `${answer.text} was executed, then refused ${answer.status}`).toBe(0);
      }
    }
    // An SSE answer to a POST holds an in-flight slot, not a stream slot: all of them run.
    expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
    // The SDK client's own call works too, and the GET streams are still open.
    const result = await clients[0]!.callTool({ name: 'echo', arguments: { text: 'sdk' } });
    expect(result.content).toEqual([{ type: 'text', text: 'sdk' }]);
  });

  it('a 17th GET stream is refused 429 before the upstream sees it', async () => {
    const gets = upstream.requests.filter((r) => r.method === 'GET').length;
    const answer = await fetch(`${gateway.url}/mcp`, {
      headers: {
        accept: 'text/event-stream',
        'mcp-protocol-version': LEGACY,
        'mcp-session-id': v1TransportOf(clients[0]!).sessionId as string,
        authorization: `Bearer ${agent.key}`,
      },
    });
    expect(answer.status).toBe(429);
    expect(await answer.json()).toMatchObject({ error: { data: { reason: 'concurrency_limited' } } });
    expect(upstream.requests.filter((r) => r.method === 'GET').length, 'the upstream must see nothing').toBe(
      gets,
    );
  });
});

describe('the stream cap counts subscriptions/listen answers, reserved before forwarding', () => {
  let upstream: Server;
  let gateway: TestGateway;
  const seen: string[] = [];

  beforeAll(async () => {
    // A modern upstream whose listen answers never end (chunked JSON) and whose GET streams idle.
    upstream = createServer((req, res) => {
      if (req.method === 'GET') {
        seen.push('GET');
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        return;
      }
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      req.on('end', () => {
        const message = JSON.parse(body) as { id: number; method: string; params?: { name?: string } };
        seen.push(message.method);
        if (message.method === 'subscriptions/listen') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write('{"jsonrpc":"2.0","id":');
          return;
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end(
          `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { content: [] } })}\n\n`,
        );
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    gateway = await startTestGateway({
      policy: `limits: { maxStreamsPerIdentity: 2, drainTimeoutMs: 500 }
identities:
  apiKeys: [{ id: agent, hash: "${agent.hash}", scopes: [t] }]
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp
    authentication: { methods: [apiKey] }
    tools: { echo: t }
`,
    });
  });
  afterAll(async () => {
    await gateway?.close();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  });

  const listen = (signal: AbortSignal) =>
    fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      signal,
      headers: { ...modernHeaders('subscriptions/listen'), authorization: `Bearer ${agent.key}` },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'subscriptions/listen',
        params: { notifications: { toolsListChanged: true }, _meta: META },
      }),
    });

  it('a GET stream and a listen fill a cap of 2; the next listen is refused unforwarded; calls still run', async () => {
    const open = new AbortController();
    const get = await fetch(`${gateway.url}/mcp`, {
      signal: open.signal,
      headers: { accept: 'text/event-stream', authorization: `Bearer ${agent.key}` },
    });
    expect(get.status).toBe(200);
    const first = await listen(open.signal);
    expect(first.status).toBe(200);
    const listens = () => seen.filter((m) => m === 'subscriptions/listen').length;
    expect(listens()).toBe(1);

    const refused = await modernCall(`${gateway.url}/mcp`, {
      method: 'subscriptions/listen',
      params: { notifications: { toolsListChanged: true } },
      key: agent.key,
    });
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ id: 1, error: { data: { reason: 'concurrency_limited' } } });
    expect(listens(), 'the upstream must see nothing').toBe(1);

    // A call answered over SSE is not a stream for the cap: it runs, and ran exactly once.
    const calls = () => seen.filter((m) => m === 'tools/call').length;
    const answer = await toolCall(`${gateway.url}/mcp`, 'echo', { text: 'x' }, { key: agent.key });
    expect(answer.status).toBe(200);
    expect(calls()).toBe(1);

    // Closing the listen gives its slot back.
    open.abort();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const again = new AbortController();
    const second = await listen(again.signal);
    expect(second.status).toBe(200);
    expect(listens()).toBe(2);
    again.abort();
  });
});
