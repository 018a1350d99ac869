/**
 * A client that leaves early is still audited exactly once, and what it left behind is released:
 * while the Redis limiter is still deciding (the call is then never forwarded), and while a list
 * answer is being read for filtering. Found by review: before, the first case forwarded the call
 * with no audit record and, for SSE answers, kept a stream slot and the active-stream gauge forever.
 */
import { createServer, type Server } from 'node:http';
import { type AddressInfo, connect } from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { type RedisServer, startRedis } from '../support/redis.js';

const AGENT = newApiKey('pk_gone_');
let redis: RedisServer;
let upstream: Server;
let upstreamCalls = 0;
let gateway: TestGateway;

beforeAll(async () => {
  redis = await startRedis({ args: ['--enable-debug-command', 'local'] });
  upstream = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => {
      body += chunk;
    });
    req.on('end', () => {
      upstreamCalls++;
      if (body.includes('"tools/list"')) {
        // A list answer that never finishes: the gateway reads it whole before filtering.
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"jsonrpc":"2.0","id":1,"result":{"tools":[');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end('event: message\ndata: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n');
    });
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
  gateway = await startTestGateway({
    policy: `redis: { url: "${redis.url}", commandTimeoutMs: 1000 }
limits: { maxConcurrentPerIdentity: 1, drainTimeoutMs: 2000 }
identities:
  anonymous: { scopes: [] }
  apiKeys: [{ id: agent, hash: "${AGENT.hash}", scopes: [] }]
routes:
  - route: /limited
    resource: http://127.0.0.1/limited
    upstream: ${url}
    authentication: { methods: [anonymous] }
    default: allow
    rateLimits: [{ per: identity, limit: 100/second }]
    failMode: open
  - route: /open
    resource: http://127.0.0.1/open
    upstream: ${url}
    authentication: { methods: [anonymous] }
    default: allow
  - route: /keyed
    resource: http://127.0.0.1/keyed
    upstream: ${url}
    authentication: { methods: [apiKey] }
    default: allow
`,
  });
  const deadline = Date.now() + 5_000;
  while (!(await fetch(`${gateway.adminUrl}/readyz`)).ok && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
});
afterAll(async () => {
  await gateway?.close();
  upstream?.closeAllConnections();
  await new Promise((resolve) => upstream?.close(resolve));
  await redis?.stop();
});

/** Sends a POST over a raw socket and closes it after `ms`, before any answer. */
async function postThenLeave(path: string, body: object, ms: number, header = ''): Promise<void> {
  const { port, hostname } = new URL(gateway.url);
  const text = JSON.stringify(body);
  const socket = connect(Number(port), hostname);
  await new Promise((resolve) => socket.once('connect', resolve));
  socket.write(
    `POST ${path} HTTP/1.1\r\nhost: x\r\n${header}content-type: application/json\r\naccept: application/json, text/event-stream\r\ncontent-length: ${Buffer.byteLength(text)}\r\n\r\n${text}`,
  );
  await new Promise((resolve) => setTimeout(resolve, ms));
  socket.destroy();
}

describe('a client that leaves early', () => {
  it('while the limiter is deciding: not forwarded, audited once as 499, nothing held', async () => {
    const before = upstreamCalls;
    const blocker = new Redis(redis.url);
    // Connected first: a connection still opening would start the stall after the call went through.
    await blocker.ping();
    // Redis stalls for 400 ms: the limiter's answer comes after the client has gone.
    const stall = blocker.call('DEBUG', 'SLEEP', '0.4').catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 30));
    await postThenLeave(
      '/limited',
      { jsonrpc: '2.0', id: 'gone-limiter', method: 'tools/call', params: { name: 'x' } },
      100,
    );
    await stall;
    blocker.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(upstreamCalls, 'the call must not reach the upstream').toBe(before);
    const records = (await gateway.auditRecords()).filter((r) => r.id === 'gone-limiter');
    expect(records).toEqual([
      expect.objectContaining({ decision: 'allow', status: 499, upstreamStatus: null }),
    ]);
    const streams = (await gateway.metrics.activeStreams.get()).values.reduce((sum, v) => sum + v.value, 0);
    expect(streams).toBe(0);
  });

  it('while a list answer is read for filtering: audited once as 499, not also as a 500', async () => {
    await postThenLeave('/open', { jsonrpc: '2.0', id: 'gone-list', method: 'tools/list' }, 300);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const records = (await gateway.auditRecords()).filter(
      (r) => r.requestId !== undefined && r.id === 'gone-list',
    );
    expect(records).toEqual([
      expect.objectContaining({ method: 'tools/list', status: 499, upstreamStatus: 200 }),
    ]);
    const internal = (await gateway.auditRecords()).filter((r) => r.reason === 'internal');
    expect(internal).toEqual([]);
  });

  it('while its credential is checked: the concurrency slot it took is freed', async () => {
    const blocker = new Redis(redis.url);
    await blocker.ping();
    // A request with a credential first asks Redis for its address's failure budget: stall it.
    const stall = blocker.call('DEBUG', 'SLEEP', '0.4').catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, 30));
    await postThenLeave(
      '/keyed',
      { jsonrpc: '2.0', id: 'gone-auth', method: 'ping' },
      100,
      `x-api-key: ${AGENT.key}\r\n`,
    );
    await stall;
    blocker.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 200));
    // maxConcurrentPerIdentity is 1: a leaked slot would refuse this call with 429.
    const next = await fetch(`${gateway.url}/keyed`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'x-api-key': AGENT.key,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'after', method: 'ping' }),
    });
    const text = await next.text();
    expect(next.status, text).toBe(200);
    const records = (await gateway.auditRecords()).filter(
      (r) => r.httpMethod === 'POST' && r.route === '/keyed' && r.status === 499,
    );
    expect(records).toHaveLength(1);
  });
});
