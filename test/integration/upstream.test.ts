/**
 * What the client sees when the upstream misbehaves (down, slow, refusing the gateway), that a
 * client going away cancels its upstream request, and `server-everything` behind the gateway.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { type EverythingServer, startEverythingServer } from '../fixtures/everything.js';
import { connectV1Client, v1TransportOf } from '../fixtures/peers.js';
import { freePort, startTestGateway, type TestGateway } from '../support/gateway.js';

const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
};
const PING = JSON.stringify({ jsonrpc: '2.0', id: 'p1', method: 'ping' });

/** A raw upstream whose behaviour each test sets, recording what it received. */
function rawUpstream(): Promise<{
  server: Server;
  url: string;
  onRequest: (h: (req: IncomingMessage, res: ServerResponse) => void) => void;
  received: IncomingMessage[];
}> {
  const received: IncomingMessage[] = [];
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end();
  const server = createServer((req, res) => {
    received.push(req);
    handler(req, res);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({ server, url: `http://127.0.0.1:${port}/mcp`, onRequest: (h) => (handler = h), received });
    }),
  );
}

async function expectUpstreamError(
  answer: Response,
  status: number,
  reason: string,
  code: number,
): Promise<void> {
  expect(answer.status).toBe(status);
  expect(await answer.json()).toMatchObject({ jsonrpc: '2.0', id: 'p1', error: { code, data: { reason } } });
}

describe('upstream failures', () => {
  let upstream: Awaited<ReturnType<typeof rawUpstream>>;
  let gateway: TestGateway;
  let downGateway: TestGateway;

  beforeAll(async () => {
    upstream = await rawUpstream();
    gateway = await startTestGateway({
      routes: [{ upstream: upstream.url, extra: '    upstreamTimeouts: { headersMs: 300 }\n' }],
    });
    downGateway = await startTestGateway({
      routes: [{ upstream: `http://127.0.0.1:${await freePort()}/mcp` }],
    });
  });
  afterAll(async () => {
    await gateway.close();
    await downGateway.close();
    upstream.server.closeAllConnections();
    await new Promise((resolve) => upstream.server.close(resolve));
  });
  afterEach(() => {
    upstream.received.length = 0;
  });

  it('answers 502 upstream_unreachable when nothing listens upstream', async () => {
    const answer = await fetch(`${downGateway.url}/mcp`, { method: 'POST', headers: HEADERS, body: PING });
    await expectUpstreamError(answer, 502, 'upstream_unreachable', -31095);
  });

  it('answers 504 upstream_timeout when the upstream is slower than headersMs', async () => {
    upstream.onRequest((_req, res) => {
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), 2_000).unref();
    });
    const started = performance.now();
    const answer = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: HEADERS, body: PING });
    await expectUpstreamError(answer, 504, 'upstream_timeout', -31096);
    expect(performance.now() - started).toBeLessThan(1_500);
  });

  it('answers 502 upstream_rejected for an upstream 401, without its challenge', async () => {
    upstream.onRequest((_req, res) => {
      res
        .writeHead(401, { 'www-authenticate': 'Bearer resource_metadata="https://elsewhere.example/prm"' })
        .end();
    });
    const answer = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: HEADERS, body: PING });
    expect(answer.headers.get('www-authenticate')).toBeNull();
    await expectUpstreamError(answer, 502, 'upstream_rejected', -31095);
  });

  it('passes upstream 4xx/5xx answers other than 401/403 through unchanged', async () => {
    upstream.onRequest((_req, res) => {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end('{"jsonrpc":"2.0","id":"p1","error":{"code":-32001,"message":"Session not found"}}');
    });
    const answer = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: HEADERS, body: PING });
    expect(answer.status).toBe(404);
    expect(await answer.json()).toMatchObject({ error: { code: -32001 } });
  });

  it('aborts the upstream request when the client goes away', async () => {
    let upstreamClosed = false;
    upstream.onRequest((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
      req.socket.once('close', () => {
        upstreamClosed = true;
      });
    });
    const controller = new AbortController();
    const answer = await fetch(`${gateway.url}/mcp`, {
      method: 'GET',
      headers: { accept: 'text/event-stream' },
      signal: controller.signal,
    });
    expect(answer.status).toBe(200);
    expect(upstream.received[0]?.method).toBe('GET');
    controller.abort();
    await vi.waitFor(() => expect(upstreamClosed).toBe(true), { timeout: 3_000 });
  });

  it('ends the client stream when the upstream dies mid-stream, without hanging', async () => {
    upstream.onRequest((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('event: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{}}\n\n');
      setTimeout(() => req.socket.destroy(), 100);
    });
    const answer = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: HEADERS, body: PING });
    expect(answer.status).toBe(200);
    const reader = answer.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('notifications/progress');
    // The stream must end (cleanly or with an error), not hang.
    const ended = await Promise.race([
      reader.read().then(
        (r) => (r.done ? 'done' : 'more'),
        () => 'error',
      ),
      new Promise((resolve) => setTimeout(() => resolve('hung'), 3_000)),
    ]);
    expect(ended).not.toBe('hung');
  });

  it('keeps serving after each failure', async () => {
    upstream.onRequest((_req, res) =>
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end('{"jsonrpc":"2.0","id":"p1","result":{}}'),
    );
    const answer = await fetch(`${gateway.url}/mcp`, { method: 'POST', headers: HEADERS, body: PING });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ jsonrpc: '2.0', id: 'p1', result: {} });
  });
});

describe('@modelcontextprotocol/server-everything behind the gateway', () => {
  let everything: EverythingServer;
  let gateway: TestGateway;

  beforeAll(async () => {
    everything = await startEverythingServer();
    gateway = await startTestGateway({ routes: [{ upstream: everything.url }] });
  });
  afterAll(async () => {
    await gateway?.close();
    await everything?.close();
  });

  it('lists and calls its tools, reads its resources and gets its prompts', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`);
    try {
      expect(v1TransportOf(client).sessionId).toBeDefined();
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(expect.arrayContaining(['echo', 'get-sum']));
      const echo = await client.callTool({ name: 'echo', arguments: { message: 'through the gate' } });
      expect(echo.content).toEqual([{ type: 'text', text: 'Echo: through the gate' }]);
      const sum = await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } });
      expect(JSON.stringify(sum.content)).toContain('42');

      const { resources } = await client.listResources();
      expect(resources.length).toBeGreaterThan(0);
      for (const resource of resources.slice(0, 3)) {
        const read = await client.readResource({ uri: resource.uri });
        expect(read.contents[0]?.uri).toBe(resource.uri);
      }
      const { prompts } = await client.listPrompts();
      expect(prompts.map((p) => p.name)).toContain('simple-prompt');
      const prompt = await client.getPrompt({ name: 'simple-prompt' });
      expect(prompt.messages[0]?.content).toMatchObject({ type: 'text' });
    } finally {
      await client.close();
    }
  });
});
