/**
 * Prometheus metrics through a real gateway in front of a real MCP server (SDK v2), read the way a
 * scraper reads them — with a strict exposition-format parser (test/support/prometheus.ts):
 *
 * - `/metrics` is served on the admin listener only, and every scrape parses strictly;
 * - each counter moves by exactly what the calls made: requests, tool calls by decision and MCP
 *   outcome (ok, tool_error, rpc_error, none), authentication failures, refusals (rate_limited,
 *   concurrency_limited), upstream errors (an upstream that is down), the latency histograms;
 * - the policy-info gauge is one series, and changes when a reload applies;
 * - the certificate-expiry gauge of a TLS listener with a client CA equals the certificates'
 *   notAfter, and follows a rotation;
 * - label values stay bounded: hundreds of invented tool and method names add no series.
 */
import 'reflect-metadata';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { KNOWN_METHODS } from '../../src/metrics/registry.js';
import type { Gateway } from '../../src/server/gateway.js';
import { VERSION } from '../../src/version.js';
import { connectV2Client, type Peer, startV2Server } from '../fixtures/peers.js';
import { createTestCA, type TestCA } from '../support/certs.js';
import { freePort, startTestGateway, startWatchedGateway, type TestGateway } from '../support/gateway.js';
import { firstText } from '../support/inspect.js';
import { modernCall, toolCall } from '../support/modern-call.js';
import { Exposition } from '../support/prometheus.js';

const agent = newApiKey('pk_');

async function scrape(gateway: Pick<Gateway, 'adminUrl'>): Promise<Exposition> {
  const answer = await fetch(`${gateway.adminUrl}/metrics`);
  expect(answer.status).toBe(200);
  return new Exposition(await answer.text());
}

/** How much one series (exactly these labels) moved between two scrapes. */
function moved(before: Exposition, after: Exposition, name: string, labels: Record<string, string>): number {
  return after.value(name, labels) - before.value(name, labels);
}

/** How much the sum over every series whose labels include `labels` moved. */
function movedSum(
  before: Exposition,
  after: Exposition,
  name: string,
  labels: Record<string, string>,
): number {
  return after.sum(name, labels) - before.sum(name, labels);
}

function histogramCount(exposition: Exposition, name: string, route: string): number {
  return exposition.histogram(name, { route })?.count ?? 0;
}

function errorReason(body: unknown): unknown {
  return (body as { error?: { data?: { reason?: unknown } } }).error?.data?.reason;
}

/** The families the gateway declares, with their types. */
const FAMILIES = {
  portcullis_requests_total: 'counter',
  portcullis_request_duration_seconds: 'histogram',
  portcullis_upstream_duration_seconds: 'histogram',
  portcullis_upstream_errors_total: 'counter',
  portcullis_tool_calls_total: 'counter',
  portcullis_refusals_total: 'counter',
  portcullis_auth_failures_total: 'counter',
  portcullis_policy_decisions_total: 'counter',
  portcullis_policy_reloads_total: 'counter',
  portcullis_redis_errors_total: 'counter',
  portcullis_ratelimit_fail_open_total: 'counter',
  portcullis_active_sse_streams: 'gauge',
  portcullis_policy_info: 'gauge',
  portcullis_certificate_expiry_timestamp_seconds: 'gauge',
  portcullis_build_info: 'gauge',
} as const;

/** Every MCP method name the method label may carry, and `other`. */
const METHOD_LABELS = new Set([...KNOWN_METHODS, 'other']);

describe('metrics through a real gateway and a real upstream', () => {
  let upstream: Peer;
  let gateway: TestGateway;
  let downPort: number;
  const url = (route: string) => `${gateway.url}${route}`;

  beforeAll(async () => {
    upstream = await startV2Server({ response: 'json' });
    downPort = await freePort(); // nothing listens there
    gateway = await startTestGateway({
      policy: `identities:
  apiKeys:
    - { id: agent, hash: "${agent.hash}", scopes: [files:read] }
  anonymous: { scopes: [open] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    default: deny
    tools: { echo: files:read, add: files:read, nope: files:read, "read_*": files:read, secret: files:admin }
  - route: /open/mcp
    resource: http://127.0.0.1/open/mcp
    upstream: ${upstream.url}
    authentication: { methods: [anonymous] }
    default: allow
  - route: /limited/mcp
    resource: http://127.0.0.1/limited/mcp
    upstream: ${upstream.url}
    authentication: { methods: [anonymous] }
    default: allow
    rateLimits: [{ per: identity, limit: 2/minute }]
    failMode: open
  - route: /down/mcp
    resource: http://127.0.0.1/down/mcp
    upstream: http://127.0.0.1:${downPort}/mcp
    upstreamTimeouts: { connectMs: 1000 }
    authentication: { methods: [anonymous] }
    default: deny
    tools: { echo: open }
`,
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('serves /metrics on the admin listener only, in a strictly valid exposition', async () => {
    const before = await scrape(gateway);
    const answer = await fetch(`${gateway.adminUrl}/metrics`);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const exposition = new Exposition(await answer.text());
    for (const [name, type] of Object.entries(FAMILIES)) {
      expect(exposition.family(name).type, name).toBe(type);
      expect(exposition.family(name).help, name).toMatch(/\S/);
    }
    for (const family of exposition.families.values()) {
      expect(family.name).toMatch(/^portcullis_/);
      expect(family.type, family.name).not.toBe('untyped');
    }
    // The admin listener answers reads only.
    expect((await fetch(`${gateway.adminUrl}/metrics`, { method: 'POST' })).status).toBe(405);

    // The public listener has no /metrics: it is an unrouted path there, refused like any other.
    const onMain = await fetch(`${gateway.url}/metrics`);
    expect(onMain.status).toBe(404);
    const text = await onMain.text();
    expect(text).not.toMatch(/^# (HELP|TYPE) /m);
    expect(text).not.toContain('portcullis_');
    const after = await scrape(gateway);
    expect(
      moved(before, after, 'portcullis_requests_total', { route: 'none', method: 'GET', status: '404' }),
    ).toBe(1);
    expect(moved(before, after, 'portcullis_refusals_total', { route: 'none', reason: 'not_found' })).toBe(1);
  });

  it('exports build info and the default process metrics', async () => {
    const first = await scrape(gateway);
    expect(first.samples('portcullis_build_info')).toEqual([
      { name: 'portcullis_build_info', labels: { version: VERSION, node: process.version }, value: 1 },
    ]);
    const cpu = 'portcullis_process_cpu_user_seconds_total';
    expect(first.family(cpu).type).toBe('counter');
    expect(first.value(cpu)).toBeGreaterThan(0);
    expect(first.family('portcullis_nodejs_heap_size_used_bytes').type).toBe('gauge');
    expect(first.value('portcullis_nodejs_heap_size_used_bytes')).toBeGreaterThan(1_000_000);
    // Burn some CPU: the counter only goes up.
    const until = performance.now() + 30;
    while (performance.now() < until) createHash('sha256').update(randomBytes(1024)).digest();
    const second = await scrape(gateway);
    expect(second.value(cpu)).toBeGreaterThan(first.value(cpu));
  });

  it('counts tools/call by policy entry, decision and MCP outcome, and the requests and latencies', async () => {
    const before = await scrape(gateway);
    const seen = upstream.requests.length;
    const key = agent.key;

    const ok = await toolCall(url('/mcp'), 'echo', { text: 'hi' }, { key });
    expect(ok.status).toBe(200);
    expect(firstText((ok.body as { result: unknown }).result)).toBe('hi');
    // The SDK validates arguments and answers a tool result with isError: true.
    const toolError = await toolCall(url('/mcp'), 'echo', { text: 5 }, { key });
    expect(toolError.status).toBe(200);
    expect(toolError.body).toMatchObject({ result: { isError: true } });
    // Allowed by the policy, unknown to the server: a JSON-RPC error answer.
    const rpcError = await toolCall(url('/mcp'), 'nope', {}, { key });
    expect(rpcError.status).toBe(200);
    expect(rpcError.body).toMatchObject({ error: { code: -32602 } });
    // Denied by a listed entry (a scope the key lacks) and by `default: deny`.
    const deniedListed = await toolCall(url('/mcp'), 'secret', {}, { key });
    expect(deniedListed.status).toBe(403);
    const deniedDefault = await toolCall(url('/mcp'), 'unlisted', {}, { key });
    expect(deniedDefault.status).toBe(403);
    expect(upstream.requests.length - seen, 'only the three allowed calls reach the upstream').toBe(3);

    const after = await scrape(gateway);
    const tools = (tool: string, decision: string, outcome: string) =>
      moved(before, after, 'portcullis_tool_calls_total', { route: '/mcp', tool, decision, outcome });
    expect(tools('echo', 'allow', 'ok')).toBe(1);
    expect(tools('echo', 'allow', 'tool_error')).toBe(1);
    expect(tools('nope', 'allow', 'rpc_error')).toBe(1);
    expect(tools('secret', 'deny', 'none')).toBe(1);
    expect(tools('other', 'deny', 'none')).toBe(1);
    expect(movedSum(before, after, 'portcullis_tool_calls_total', { route: '/mcp' })).toBe(5);

    const requests = (status: string) =>
      moved(before, after, 'portcullis_requests_total', { route: '/mcp', method: 'tools/call', status });
    expect(requests('200')).toBe(3);
    expect(requests('403')).toBe(2);
    expect(movedSum(before, after, 'portcullis_requests_total', { route: '/mcp' })).toBe(5);
    expect(
      moved(before, after, 'portcullis_policy_decisions_total', { route: '/mcp', decision: 'allow' }),
    ).toBe(3);
    expect(
      moved(before, after, 'portcullis_policy_decisions_total', { route: '/mcp', decision: 'deny' }),
    ).toBe(2);
    expect(
      moved(before, after, 'portcullis_refusals_total', { route: '/mcp', reason: 'insufficient_scope' }),
    ).toBe(1);
    // The name `default: deny` refuses: no scope could grant it.
    expect(
      moved(before, after, 'portcullis_refusals_total', { route: '/mcp', reason: 'method_denied' }),
    ).toBe(1);
    // The latency histogram holds the answered requests (refusals are counted as refusals);
    // the upstream histogram holds the three forwarded ones.
    const duration = 'portcullis_request_duration_seconds';
    const upstreamDuration = 'portcullis_upstream_duration_seconds';
    expect(histogramCount(after, duration, '/mcp') - histogramCount(before, duration, '/mcp')).toBe(3);
    expect(
      histogramCount(after, upstreamDuration, '/mcp') - histogramCount(before, upstreamDuration, '/mcp'),
    ).toBe(3);
    const sum = (e: Exposition, name: string) => e.histogram(name, { route: '/mcp' })?.sum ?? 0;
    expect(sum(after, duration)).toBeGreaterThan(sum(before, duration));
    expect(sum(after, upstreamDuration)).toBeGreaterThan(sum(before, upstreamDuration));
    // Each request takes at least as long as its upstream part.
    expect(sum(after, duration) - sum(before, duration)).toBeGreaterThanOrEqual(
      sum(after, upstreamDuration) - sum(before, upstreamDuration),
    );
    expect(movedSum(before, after, 'portcullis_upstream_errors_total', {})).toBe(0);
  });

  it('counts a call made by the official SDK client', async () => {
    const before = await scrape(gateway);
    const client = await connectV2Client(url('/mcp'), { headers: { authorization: `Bearer ${agent.key}` } });
    try {
      expect(firstText(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }))).toBe('5');
    } finally {
      await client.close();
    }
    const after = await scrape(gateway);
    expect(
      moved(before, after, 'portcullis_tool_calls_total', {
        route: '/mcp',
        tool: 'add',
        decision: 'allow',
        outcome: 'ok',
      }),
    ).toBe(1);
    expect(movedSum(before, after, 'portcullis_tool_calls_total', {})).toBe(1);
    expect(
      moved(before, after, 'portcullis_requests_total', {
        route: '/mcp',
        method: 'tools/call',
        status: '200',
      }),
    ).toBe(1);
  });

  it('counts authentication failures by method and reason, and forwards nothing', async () => {
    const before = await scrape(gateway);
    const seen = upstream.requests.length;
    const missing = await toolCall(url('/mcp'), 'echo', { text: 'x' });
    expect(missing.status).toBe(401);
    const wrong = await toolCall(url('/mcp'), 'echo', { text: 'x' }, { key: newApiKey('pk_').key });
    expect(wrong.status).toBe(401);
    expect(upstream.requests.length).toBe(seen);
    const after = await scrape(gateway);
    const failures = (method: string, reason: string) =>
      moved(before, after, 'portcullis_auth_failures_total', { route: '/mcp', method, reason });
    expect(failures('none', 'no_credential')).toBe(1);
    expect(failures('apiKey', 'unknown')).toBe(1);
    expect(movedSum(before, after, 'portcullis_auth_failures_total', {})).toBe(2);
    expect(
      moved(before, after, 'portcullis_refusals_total', { route: '/mcp', reason: 'missing_credential' }),
    ).toBe(1);
    expect(
      moved(before, after, 'portcullis_refusals_total', { route: '/mcp', reason: 'invalid_credential' }),
    ).toBe(1);
    expect(
      moved(before, after, 'portcullis_requests_total', { route: '/mcp', method: 'none', status: '401' }),
    ).toBe(2);
    // Never parsed, so never a tool call.
    expect(movedSum(before, after, 'portcullis_tool_calls_total', {})).toBe(0);
  });

  it('counts the call over a rate limit as a rate_limited refusal', async () => {
    const before = await scrape(gateway);
    const seen = upstream.requests.length;
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++)
      statuses.push((await toolCall(url('/limited/mcp'), 'echo', { text: 'x' })).status);
    expect(statuses).toEqual([200, 200, 429]);
    expect(upstream.requests.length - seen).toBe(2);
    const after = await scrape(gateway);
    const route = '/limited/mcp';
    expect(moved(before, after, 'portcullis_refusals_total', { route, reason: 'rate_limited' })).toBe(1);
    expect(movedSum(before, after, 'portcullis_refusals_total', {})).toBe(1);
    expect(
      moved(before, after, 'portcullis_requests_total', { route, method: 'tools/call', status: '429' }),
    ).toBe(1);
    expect(
      moved(before, after, 'portcullis_requests_total', { route, method: 'tools/call', status: '200' }),
    ).toBe(2);
    const tools = (decision: string, outcome: string) =>
      moved(before, after, 'portcullis_tool_calls_total', { route, tool: 'other', decision, outcome });
    expect(tools('allow', 'ok')).toBe(2);
    expect(tools('rate-limited', 'none')).toBe(1);
    expect(histogramCount(after, 'portcullis_upstream_duration_seconds', route)).toBe(
      histogramCount(before, 'portcullis_upstream_duration_seconds', route) + 2,
    );
  });

  it('counts an unreachable upstream as an upstream error and a 502 refusal', async () => {
    const before = await scrape(gateway);
    for (let i = 0; i < 2; i++) {
      const answer = await toolCall(url('/down/mcp'), 'echo', { text: 'x' });
      expect(answer.status).toBe(502);
      expect(errorReason(answer.body)).toBe('upstream_unreachable');
    }
    const after = await scrape(gateway);
    const route = '/down/mcp';
    expect(moved(before, after, 'portcullis_upstream_errors_total', { route, kind: 'unreachable' })).toBe(2);
    expect(movedSum(before, after, 'portcullis_upstream_errors_total', {})).toBe(2);
    expect(moved(before, after, 'portcullis_refusals_total', { route, reason: 'upstream_unreachable' })).toBe(
      2,
    );
    expect(
      moved(before, after, 'portcullis_requests_total', { route, method: 'tools/call', status: '502' }),
    ).toBe(2);
    expect(
      movedSum(before, after, 'portcullis_tool_calls_total', { route, decision: 'error', outcome: 'none' }),
    ).toBe(2);
    // Nothing answered: no upstream latency, and a refusal is not in the latency histogram.
    expect(histogramCount(after, 'portcullis_upstream_duration_seconds', route)).toBe(0);
    expect(histogramCount(after, 'portcullis_request_duration_seconds', route)).toBe(0);
  });

  it('labels a tools/call the upstream never answered with the policy entry that allowed it', async () => {
    const before = await scrape(gateway);
    const answer = await toolCall(url('/down/mcp'), 'echo', { text: 'x' });
    expect(answer.status).toBe(502);
    const after = await scrape(gateway);
    const route = '/down/mcp';
    // The policy allowed `echo` by its entry `tools.echo`: the label is `echo`, and the decision counted.
    expect
      .soft(
        moved(before, after, 'portcullis_tool_calls_total', {
          route,
          tool: 'echo',
          decision: 'error',
          outcome: 'none',
        }),
        'tool_calls_total{tool="echo",decision="error"}',
      )
      .toBe(1);
    expect
      .soft(
        moved(before, after, 'portcullis_policy_decisions_total', { route, decision: 'allow' }),
        'policy_decisions_total{decision="allow"}',
      )
      .toBe(1);
    expect(movedSum(before, after, 'portcullis_tool_calls_total', { route })).toBe(1);
  });

  it('exposes the policy in force as exactly one policy_info series', async () => {
    const exposition = await scrape(gateway);
    const info = exposition.samples('portcullis_policy_info');
    expect(info).toHaveLength(1);
    expect(info[0]?.value).toBe(1);
    expect(info[0]?.labels).toEqual({ hash: expect.stringMatching(/^[0-9a-f]{16}$/) });
  });

  describe('cardinality', () => {
    /** Families whose series the gateway's own traffic creates (the process metrics aside). */
    const gatewayFamilies = (family: { name: string }) =>
      !family.name.startsWith('portcullis_process_') && !family.name.startsWith('portcullis_nodejs_');
    const words = (n: number) => randomBytes(n).toString('hex');
    /** Invented names, some with characters a label value must escape. */
    const invented = (i: number) =>
      [`t${words(6)}`, `x"${words(4)}"`, `back\\slash${words(3)}`, `a,b=c{${words(3)}}`][i % 4] as string;

    async function inBatches(count: number, make: (i: number) => Promise<number>): Promise<number[]> {
      const statuses: number[] = [];
      for (let start = 0; start < count; start += 20) {
        const batch = Array.from({ length: Math.min(20, count - start) }, (_, k) => make(start + k));
        statuses.push(...(await Promise.all(batch)));
      }
      return statuses;
    }

    const key = agent.key;
    const floodTool = (i: number) =>
      i % 3 === 0
        ? toolCall(url('/mcp'), `read_${invented(i)}`, {}, { key }) // matches the pattern: forwarded
        : i % 3 === 1
          ? toolCall(url('/mcp'), invented(i), {}, { key }) // only `default: deny` covers it
          : toolCall(url('/open/mcp'), invented(i), {}); // only `default: allow` covers it
    const floodMethod = (i: number) =>
      modernCall(url(i % 2 === 0 ? '/mcp' : '/open/mcp'), {
        method: `${invented(i)}/${words(3)}`,
        ...(i % 2 === 0 ? { key } : {}),
      });

    let warm: Exposition;
    let flooded: Exposition;

    beforeAll(async () => {
      // One of each kind first, so that every series the flood can touch exists already.
      for (let i = 0; i < 4; i++) await floodTool(i);
      for (let i = 0; i < 2; i++) await floodMethod(i);
      warm = await scrape(gateway);
      const tools = await inBatches(300, async (i) => (await floodTool(i)).status);
      expect(tools.filter((s) => s === 200)).toHaveLength(200);
      expect(tools.filter((s) => s === 403)).toHaveLength(100);
      const methods = await inBatches(100, async (i) => (await floodMethod(i)).status);
      expect(new Set(methods)).toEqual(new Set([404]));
      flooded = await scrape(gateway);
    });

    it('300 invented tool names and 100 invented methods add no series', () => {
      expect([...flooded.seriesKeys(gatewayFamilies)].sort()).toEqual(
        [...warm.seriesKeys(gatewayFamilies)].sort(),
      );
      // … while every call was counted.
      const moves = (labels: Record<string, string>) =>
        movedSum(warm, flooded, 'portcullis_tool_calls_total', labels);
      expect(moves({ route: '/mcp', decision: 'allow', outcome: 'rpc_error' })).toBe(100);
      expect(moves({ route: '/mcp', tool: 'other', decision: 'deny', outcome: 'none' })).toBe(100);
      expect(moves({ route: '/open/mcp', tool: 'other', decision: 'allow', outcome: 'rpc_error' })).toBe(100);
      expect(moves({})).toBe(300);
      const requests = (route: string, method: string, status: string) =>
        moved(warm, flooded, 'portcullis_requests_total', { route, method, status });
      expect(requests('/mcp', 'other', '404')).toBe(50);
      expect(requests('/open/mcp', 'other', '404')).toBe(50);
      expect(
        moved(warm, flooded, 'portcullis_refusals_total', { route: '/mcp', reason: 'method_not_found' }),
      ).toBe(50);
    });

    it('the method label is an MCP method name or other', () => {
      for (const name of ['portcullis_requests_total']) {
        const values = flooded.labelValues(name, 'method');
        for (const value of values) expect(METHOD_LABELS, `method="${value}"`).toContain(value);
      }
      for (const value of flooded.labelValues('portcullis_auth_failures_total', 'method'))
        expect(['apiKey', 'jwt', 'mtls', 'anonymous', 'none']).toContain(value);
    });

    it('the tool label is a name or pattern as the policy writes it, or other', () => {
      const policyEntries = new Set(['echo', 'add', 'nope', 'read_*', 'secret', 'other']);
      const values = flooded.labelValues('portcullis_tool_calls_total', 'tool');
      expect(values.has('read_*'), `tool label values: ${JSON.stringify([...values])}`).toBe(true);
      for (const value of values) expect(policyEntries, `tool="${value}"`).toContain(value);
    });
  });
});

describe('concurrency_limited', () => {
  let upstream: Server;
  let gateway: TestGateway;
  let holding = false;
  const held: Array<() => void> = [];
  let seen = 0;

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      seen++;
      let text = '';
      req.on('data', (chunk: Buffer) => {
        text += chunk.toString('utf8');
      });
      req.on('end', () => {
        const { id } = JSON.parse(text) as { id: number };
        const answer = () =>
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ jsonrpc: '2.0', id, result: {} }));
        if (holding) held.push(answer);
        else answer();
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    gateway = await startTestGateway({
      top: 'limits: { maxConcurrentPerIdentity: 1, drainTimeoutMs: 500 }',
      routes: [{ upstream: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp` }],
    });
  });
  afterAll(async () => {
    for (const answer of held.splice(0)) answer();
    await gateway?.close();
    upstream?.closeAllConnections();
    await new Promise((resolve) => upstream?.close(resolve));
  });

  it('counts the request over maxConcurrentPerIdentity, refused before its body is read', async () => {
    const url = `${gateway.url}/mcp`;
    const before = await scrape(gateway);
    holding = true;
    const first = modernCall(url, { method: 'server/discover', id: 1 });
    await vi.waitFor(() => expect(held).toHaveLength(1));
    const second = await modernCall(url, { method: 'server/discover', id: 2 });
    expect(second.status).toBe(429);
    expect(errorReason(second.body)).toBe('concurrency_limited');
    holding = false;
    for (const answer of held.splice(0)) answer();
    expect((await first).status).toBe(200);
    // The slot came back.
    expect((await modernCall(url, { method: 'server/discover', id: 3 })).status).toBe(200);
    expect(seen).toBe(2);

    const after = await scrape(gateway);
    expect(
      moved(before, after, 'portcullis_refusals_total', { route: '/mcp', reason: 'concurrency_limited' }),
    ).toBe(1);
    expect(movedSum(before, after, 'portcullis_refusals_total', {})).toBe(1);
    // Refused before its body was read: its method is unknown (`none`).
    expect(
      moved(before, after, 'portcullis_requests_total', { route: '/mcp', method: 'none', status: '429' }),
    ).toBe(1);
    expect(
      moved(before, after, 'portcullis_requests_total', {
        route: '/mcp',
        method: 'server/discover',
        status: '200',
      }),
    ).toBe(2);
    expect(histogramCount(after, 'portcullis_request_duration_seconds', '/mcp')).toBe(
      histogramCount(before, 'portcullis_request_duration_seconds', '/mcp') + 2,
    );
    expect(histogramCount(after, 'portcullis_upstream_duration_seconds', '/mcp')).toBe(
      histogramCount(before, 'portcullis_upstream_duration_seconds', '/mcp') + 2,
    );
    // The held call waited for the upstream well past the first bucket.
    const slowest = after.histogram('portcullis_upstream_duration_seconds', { route: '/mcp' });
    expect(slowest?.buckets.find((b) => b.le === 0.001)?.count ?? 0).toBeLessThan(slowest?.count ?? 0);
  });
});

describe('portcullis_policy_info across reloads', () => {
  let dir: string;
  let file: string;
  let gateway: Gateway;

  const policy = (tools: string, adminPort = 0) => `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: ${adminPort} }
audit: { destination: ${JSON.stringify(join(dir, 'audit.jsonl'))} }
limits: { drainTimeoutMs: 500 }
identities:
  anonymous: { scopes: [t] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: http://127.0.0.1:9/mcp
    authentication: { methods: [anonymous] }
    tools: { ${tools} }
`;
  const fileHash = (text: string) => createHash('sha256').update(text).digest('hex').slice(0, 16);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-metrics-reload-'));
    file = join(dir, 'portcullis.yaml');
    writeFileSync(file, policy('echo: t'));
    gateway = await startWatchedGateway(file);
  });
  afterAll(async () => {
    await gateway?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const info = async () =>
    (await scrape(gateway)).samples('portcullis_policy_info').map((s) => ({ ...s.labels, value: s.value }));

  it('is the hash of the file in force: unchanged by a reload that fails, replaced by one that applies', async () => {
    const first = policy('echo: t');
    expect(await info()).toEqual([{ hash: fileHash(first), value: 1 }]);

    writeFileSync(file, `${first}  - route: [broken\n`);
    expect(await gateway.reload()).toBe('invalid');
    expect(await info()).toEqual([{ hash: fileHash(first), value: 1 }]);
    writeFileSync(file, policy('echo: t', 1));
    expect(await gateway.reload()).toBe('refused');
    expect(await info()).toEqual([{ hash: fileHash(first), value: 1 }]);

    const second = policy('echo: t, add: t');
    writeFileSync(file, second);
    // SIGHUP's path; the directory watch may have applied it a moment earlier.
    expect(['applied', 'unchanged']).toContain(await gateway.reload());
    await vi.waitFor(async () => expect(await info()).toEqual([{ hash: fileHash(second), value: 1 }]));
    const exposition = await scrape(gateway);
    expect(exposition.value('portcullis_policy_reloads_total', { result: 'applied' })).toBe(1);
  });
});

describe('portcullis_certificate_expiry_timestamp_seconds', () => {
  let dir: string;
  let gateway: TestGateway;
  let clientCaPem: string;
  let gatewayCA: TestCA;
  const whole = (ms: number) => new Date(Math.floor(ms / 1000) * 1000);
  const servingNotAfter = whole(Date.now() + 40 * 86_400_000);

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-metrics-tls-'));
    gatewayCA = await createTestCA('Gateway CA');
    const clientCA = await createTestCA('Client CA');
    clientCaPem = clientCA.cert;
    const serving = await gatewayCA.issue({
      cn: 'gateway.test',
      ips: ['127.0.0.1'],
      notAfter: servingNotAfter,
    });
    writeFileSync(join(dir, 'tls.crt'), serving.cert);
    writeFileSync(join(dir, 'tls.key'), serving.key);
    writeFileSync(join(dir, 'client-ca.crt'), clientCA.cert);
    gateway = await startTestGateway({
      top: `tls: { cert: ${join(dir, 'tls.crt')}, key: ${join(dir, 'tls.key')}, clientCA: ${join(dir, 'client-ca.crt')}, clientCertificate: optional }`,
      routes: [{ upstream: 'http://127.0.0.1:9/mcp' }],
    });
  });
  afterAll(async () => {
    await gateway?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const expiry = async () =>
    (await scrape(gateway))
      .samples('portcullis_certificate_expiry_timestamp_seconds')
      .map((s): Record<string, string | number> => ({ ...s.labels, value: s.value }))
      .sort((a, b) => String(a.certificate).localeCompare(String(b.certificate)));

  it("equals each certificate's notAfter, in seconds: the serving certificate and the client CA", async () => {
    expect(gateway.url).toMatch(/^https:/);
    const caNotAfter = new x509.X509Certificate(clientCaPem).notAfter.getTime() / 1000;
    expect(await expiry()).toEqual([
      { certificate: 'client_ca', subject: 'CN=Client CA', value: caNotAfter },
      { certificate: 'serving', subject: 'CN=gateway.test', value: servingNotAfter.getTime() / 1000 },
    ]);
  });

  it('follows a certificate rotation on disk, leaving no series of the old certificate', async () => {
    const renewedNotAfter = whole(Date.now() + 90 * 86_400_000);
    const renewed = await gatewayCA.issue({
      cn: 'renewed.test',
      ips: ['127.0.0.1'],
      notAfter: renewedNotAfter,
    });
    writeFileSync(join(dir, 'tls.key'), renewed.key);
    writeFileSync(join(dir, 'tls.crt'), renewed.cert);
    const caNotAfter = new x509.X509Certificate(clientCaPem).notAfter.getTime() / 1000;
    await vi.waitFor(
      async () =>
        expect(await expiry()).toEqual([
          { certificate: 'client_ca', subject: 'CN=Client CA', value: caNotAfter },
          { certificate: 'serving', subject: 'CN=renewed.test', value: renewedNotAfter.getTime() / 1000 },
        ]),
      { timeout: 5_000, interval: 100 },
    );
  });
});
