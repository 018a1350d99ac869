/**
 * Concurrency caps and the response-size cap, per replica: the request over a cap is refused 429
 * `concurrency_limited` before the upstream sees it, and its slot comes back when a call ends; an
 * answer past `maxResponseBytes` is refused (known length) or cut with a JSON-RPC error (SSE).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { MAX_BATCH_MESSAGES } from '../../src/jsonrpc/parse.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

const agent = newApiKey('pk_');
const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-11-25',
  authorization: `Bearer ${agent.key}`,
};

describe('concurrency and size caps', () => {
  let upstream: Server;
  let gateway: TestGateway;
  let seen = 0;
  const release: Array<() => void> = [];

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      seen++;
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        return;
      }
      let body = '';
      req.on('data', (c) => {
        body += c;
      });
      req.on('end', () => {
        const { method, id } = JSON.parse(body) as { method: string; id: number };
        if (method === 'big') {
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(
            `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { data: 'x'.repeat(600) } })}\n\n`,
          );
          // The second event a moment later: written at once, both could reach the gateway as one
          // chunk, which is over the cap as a whole, and the first would never be relayed.
          setTimeout(
            () =>
              res.write(
                `data: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { data: 'y'.repeat(600) } })}\n\n`,
              ),
            100,
          );
          return;
        }
        if (method === 'huge' || method === 'unsized' || method === 'tools/list') {
          const answer = JSON.stringify({ jsonrpc: '2.0', id, result: { blob: 'z'.repeat(5000) } });
          const length = method === 'huge' ? { 'content-length': String(Buffer.byteLength(answer)) } : {};
          res.writeHead(200, { 'content-type': 'application/json', ...length }).end(answer);
          return;
        }
        // `slow` answers when the test says so.
        release.push(() =>
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ jsonrpc: '2.0', id, result: {} })),
        );
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    gateway = await startTestGateway({
      policy: `limits: { maxConcurrentPerIdentity: 2, maxStreamsPerIdentity: 1, maxResponseBytes: 1000, drainTimeoutMs: 500 }
identities:
  apiKeys: [{ id: agent, hash: "${agent.hash}", scopes: [t] }]
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp
    authentication: { methods: [apiKey] }
    methods: { slow: t, big: t, huge: t, unsized: t }
`,
    });
  });
  afterAll(async () => {
    await gateway?.close();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  });

  const post = (method: string, id: number) =>
    fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      headers: HEADERS,
      body: JSON.stringify({ jsonrpc: '2.0', id, method }),
    });

  it('refuses the request over maxConcurrentPerIdentity, then frees the slot', async () => {
    const first = post('slow', 1);
    const second = post('slow', 2);
    while (release.length < 2) await new Promise((r) => setTimeout(r, 20));
    const before = seen;
    const third = await post('slow', 3);
    expect(third.status).toBe(429);
    expect(await third.json()).toMatchObject({
      error: { code: -31093, data: { reason: 'concurrency_limited' } },
    });
    expect(seen, 'the upstream must see nothing').toBe(before);
    for (const done of release.splice(0)) done();
    expect((await first).status).toBe(200);
    expect((await second).status).toBe(200);
    const fourth = post('slow', 4);
    while (release.length < 1) await new Promise((r) => setTimeout(r, 20));
    for (const done of release.splice(0)) done();
    expect((await fourth).status).toBe(200);
  });

  it('refuses a second GET stream over maxStreamsPerIdentity', async () => {
    const controller = new AbortController();
    const stream = await fetch(`${gateway.url}/mcp`, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${agent.key}` },
      signal: controller.signal,
    });
    expect(stream.status).toBe(200);
    const second = await fetch(`${gateway.url}/mcp`, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${agent.key}` },
    });
    expect(second.status).toBe(429);
    await second.text();
    controller.abort();
    await new Promise((r) => setTimeout(r, 100));
    const again = new AbortController();
    const third = await fetch(`${gateway.url}/mcp`, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${agent.key}` },
      signal: again.signal,
    });
    expect(third.status).toBe(200);
    again.abort();
  });

  it('refuses an answer known to be over maxResponseBytes, and cuts an SSE stream that grows past it', async () => {
    const big = await post('big', 6);
    expect(big.status).toBe(200);
    const text = await big.text();
    expect(text).toContain('x'.repeat(600));
    expect(text).not.toContain('y'.repeat(600));
    expect(text).toContain('response_too_large');
    const huge = await post('huge', 5);
    expect(huge.status).toBe(502);
    expect(await huge.json()).toMatchObject({
      id: 5,
      error: { code: -31097, data: { reason: 'response_too_large' } },
    });
    // A JSON answer of unknown length that grows past the cap cannot carry an error: it is cut.
    await expect(post('unsized', 7).then((a) => a.text())).rejects.toThrow();
  });

  it(`refuses a 2025-03-26 batch of more than ${MAX_BATCH_MESSAGES} messages with one error, forwarding nothing`, async () => {
    const before = seen;
    const answer = await fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      headers: { ...HEADERS, 'mcp-protocol-version': '2025-03-26' },
      body: JSON.stringify(
        Array.from({ length: MAX_BATCH_MESSAGES + 1 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' })),
      ),
    });
    expect(answer.status).toBe(400);
    expect(await answer.json()).toMatchObject({
      id: null,
      error: { code: -32600, data: { reason: 'invalid_request' } },
    });
    expect(seen, 'the upstream must see nothing').toBe(before);
  });

  it('refuses a list answer too large to filter, auditing it once', async () => {
    const list = await post('tools/list', 8);
    expect(list.status).toBe(502);
    const requestId = list.headers.get('x-request-id');
    await list.text();
    await new Promise((r) => setTimeout(r, 100));
    const records = (await gateway.auditRecords()).filter((r) => r.requestId === requestId);
    expect(records).toEqual([expect.objectContaining({ reason: 'response_too_large', status: 502 })]);
  });

  it('audits a call whose client left before the answer: once, status 499', async () => {
    const controller = new AbortController();
    const call = fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      headers: HEADERS,
      body: JSON.stringify({ jsonrpc: '2.0', id: 'gone-1', method: 'slow' }),
      signal: controller.signal,
    }).catch(() => undefined);
    while (release.length < 1) await new Promise((r) => setTimeout(r, 20));
    controller.abort();
    await call;
    await new Promise((r) => setTimeout(r, 100));
    for (const done of release.splice(0)) done();
    const records = (await gateway.auditRecords()).filter((r) => r.id === 'gone-1');
    expect(records).toEqual([expect.objectContaining({ method: 'slow', decision: 'allow', status: 499 })]);
  });
});
