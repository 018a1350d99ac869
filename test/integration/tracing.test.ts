/**
 * OpenTelemetry tracing through a real gateway, a real MCP server (SDK v2, which records the
 * headers it receives) and an OTLP/HTTP receiver in the test (POST /v1/traces, JSON):
 *
 * - a request's server span continues the caller's W3C `traceparent` (same trace, the caller's span
 *   as parent) and carries route, MCP method, tool, decision and the caller's subject;
 * - the upstream receives a `traceparent` continuing the gateway's span; without an incoming one a
 *   new trace starts and is propagated all the same; a malformed one is not continued;
 * - a denied request's span says so, and nothing reaches the upstream;
 * - spans are batched: exported by the batch timer, or at the latest when the gateway closes;
 * - `sampleRatio` samples new traces only; a sampled caller's trace is always exported;
 * - with tracing off, the caller's `traceparent`/`tracestate` reach the upstream untouched.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { VERSION } from '../../src/version.js';
import { type Peer, type RecordedRequest, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { header, rpcMethod } from '../support/inspect.js';
import { toolCall } from '../support/modern-call.js';
import {
  type OtlpReceiver,
  parseTraceparent,
  SPAN_ID,
  SPAN_KIND_SERVER,
  startOtlpReceiver,
  TRACE_ID,
} from '../support/otlp.js';

const agent = newApiKey('pk_');
const hex = (bytes: number) => randomBytes(bytes).toString('hex');

describe('tracing', () => {
  let upstream: Peer;
  let receiver: OtlpReceiver;
  const open: TestGateway[] = [];

  /** A gateway exporting to the receiver; `tracing` adds to the section (e.g. `sampleRatio`). */
  async function tracedGateway(tracing = ''): Promise<TestGateway> {
    const gateway = await startTestGateway({
      policy: `tracing: { otlpEndpoint: "${receiver.url}"${tracing} }
identities:
  apiKeys:
    - { id: agent, hash: "${agent.hash}", scopes: [files:read] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    default: deny
    tools: { echo: files:read, secret: files:admin }
`,
    });
    open.push(gateway);
    return gateway;
  }

  /** The one upstream request (tools/call) made since `from`. */
  function forwardedSince(from: number): RecordedRequest {
    const calls = upstream.requests.slice(from).filter((r) => rpcMethod(r) === 'tools/call');
    expect(calls).toHaveLength(1);
    return calls[0]!;
  }

  beforeAll(async () => {
    upstream = await startV2Server({ response: 'json' });
    receiver = await startOtlpReceiver();
  });
  afterEach(async () => {
    await Promise.all(open.splice(0).map((g) => g.close()));
    receiver.requests.length = 0;
  });
  afterAll(async () => {
    await upstream?.close();
    await receiver?.close();
  });

  it("continues the caller's trace, with the request's attributes, and propagates it upstream", async () => {
    const gateway = await tracedGateway();
    const traceId = hex(16);
    const callerSpan = hex(8);
    const from = upstream.requests.length;
    const answer = await toolCall(
      `${gateway.url}/mcp`,
      'echo',
      { text: 'traced' },
      {
        key: agent.key,
        headers: { traceparent: `00-${traceId}-${callerSpan}-01`, tracestate: 'vendor=abc' },
      },
    );
    expect(answer.status).toBe(200);
    // Batched (5 s): nothing is exported yet; closing the gateway flushes.
    expect(receiver.requests).toHaveLength(0);
    await gateway.close();

    expect(receiver.requests.length).toBeGreaterThan(0);
    for (const request of receiver.requests) {
      expect(request.method).toBe('POST');
      expect(request.path).toBe('/v1/traces');
      expect(request.contentType).toBe('application/json');
    }
    const spans = receiver.spans();
    expect(spans).toHaveLength(1);
    const span = spans[0]!;
    expect(span.traceId).toBe(traceId);
    expect(span.parentSpanId).toBe(callerSpan);
    expect(span.spanId).toMatch(SPAN_ID);
    expect(span.spanId).not.toBe(callerSpan);
    expect(span.kind).toBe(SPAN_KIND_SERVER);
    expect(span.name).toBe('tools/call /mcp');
    expect(span.scope).toBe('portcullis');
    expect(span.resource).toMatchObject({ 'service.name': 'portcullis', 'service.version': VERSION });
    expect(span.attributes).toEqual({
      'http.request.method': 'POST',
      'http.response.status_code': 200,
      'portcullis.route': '/mcp',
      'portcullis.request_id': answer.headers.get('x-request-id'),
      'mcp.method.name': 'tools/call',
      'gen_ai.tool.name': 'echo',
      'portcullis.decision': 'allow',
      'enduser.id': 'agent',
      'portcullis.upstream_status': 200,
    });

    // The upstream continues the gateway's span, not the caller's; the caller's tracestate goes along.
    const forwarded = forwardedSince(from);
    expect(header(forwarded, 'traceparent')).toBe(`00-${traceId}-${span.spanId}-01`);
    expect(header(forwarded, 'tracestate')).toBe('vendor=abc');
  });

  it('starts a new trace when the caller sends none, and still propagates it', async () => {
    const gateway = await tracedGateway();
    const parents: Array<{ traceId: string; parentId: string; flags: string }> = [];
    for (let i = 0; i < 2; i++) {
      const from = upstream.requests.length;
      const answer = await toolCall(`${gateway.url}/mcp`, 'echo', { text: `new ${i}` }, { key: agent.key });
      expect(answer.status).toBe(200);
      parents.push(parseTraceparent(header(forwardedSince(from), 'traceparent')));
    }
    await gateway.close();
    const spans = receiver.spans();
    expect(spans).toHaveLength(2);
    spans.forEach((span, i) => {
      expect(span.traceId).toMatch(TRACE_ID);
      expect(span.traceId).not.toBe('0'.repeat(32));
      expect(span.parentSpanId).toBeUndefined();
      expect(span.attributes['portcullis.decision']).toBe('allow');
      const parent = parents.find((p) => p.traceId === span.traceId);
      expect(parent, `span ${i} reached the upstream in its own trace`).toEqual({
        traceId: span.traceId,
        parentId: span.spanId,
        flags: '01',
      });
    });
    // Two requests, two traces.
    expect(spans[0]!.traceId).not.toBe(spans[1]!.traceId);
  });

  it('does not continue a malformed traceparent, and replaces it upstream', async () => {
    const gateway = await tracedGateway();
    const malformed = [`00-${'0'.repeat(32)}-${hex(8)}-01`, `00-${hex(16)}-${'0'.repeat(16)}-01`, 'garbage'];
    const forwarded: string[] = [];
    for (const traceparent of malformed) {
      const from = upstream.requests.length;
      const answer = await toolCall(
        `${gateway.url}/mcp`,
        'echo',
        { text: 'x' },
        { key: agent.key, headers: { traceparent, tracestate: 'vendor=stale' } },
      );
      expect(answer.status).toBe(200);
      forwarded.push(header(forwardedSince(from), 'traceparent') ?? '');
      // The state of a trace that is not continued does not ride along with the new one.
      expect(header(forwardedSince(from), 'tracestate')).toBeUndefined();
    }
    await gateway.close();
    const spans = receiver.spans();
    expect(spans).toHaveLength(3);
    for (const span of spans) expect(span.parentSpanId).toBeUndefined();
    expect(forwarded.map((value) => parseTraceparent(value))).toEqual(
      expect.arrayContaining(
        spans.map((span) => ({ traceId: span.traceId, parentId: span.spanId, flags: '01' })),
      ),
    );
  });

  it("records a denied request's decision in its span, and nothing reaches the upstream", async () => {
    const gateway = await tracedGateway();
    const deniedTrace = hex(16);
    const unauthenticatedTrace = hex(16);
    const from = upstream.requests.length;
    const denied = await toolCall(
      `${gateway.url}/mcp`,
      'secret',
      {},
      { key: agent.key, headers: { traceparent: `00-${deniedTrace}-${hex(8)}-01` } },
    );
    expect(denied.status).toBe(403);
    const unauthenticated = await toolCall(
      `${gateway.url}/mcp`,
      'echo',
      { text: 'x' },
      { headers: { traceparent: `00-${unauthenticatedTrace}-${hex(8)}-01` } },
    );
    expect(unauthenticated.status).toBe(401);
    expect(upstream.requests.length).toBe(from);
    await gateway.close();

    const spans = receiver.spans();
    expect(spans).toHaveLength(2);
    const deniedSpan = spans.find((s) => s.traceId === deniedTrace);
    expect(deniedSpan?.attributes).toEqual({
      'http.request.method': 'POST',
      'http.response.status_code': 403,
      'portcullis.route': '/mcp',
      'portcullis.request_id': denied.headers.get('x-request-id'),
      'mcp.method.name': 'tools/call',
      'gen_ai.tool.name': 'secret',
      'portcullis.decision': 'deny',
      'portcullis.reason': 'insufficient_scope',
      'enduser.id': 'agent',
    });
    expect(deniedSpan?.name).toBe('tools/call /mcp');
    // Refused before the body was read: no method, no tool, no subject.
    const unauthenticatedSpan = spans.find((s) => s.traceId === unauthenticatedTrace);
    expect(unauthenticatedSpan?.attributes).toMatchObject({
      'http.response.status_code': 401,
      'portcullis.decision': 'deny',
      'portcullis.reason': 'missing_credential',
      'mcp.method.name': 'none',
    });
    expect(unauthenticatedSpan?.attributes).not.toHaveProperty('enduser.id');
    expect(unauthenticatedSpan?.attributes).not.toHaveProperty('gen_ai.tool.name');
    expect(unauthenticatedSpan?.attributes).not.toHaveProperty('portcullis.upstream_status');
  });

  it('exports on the batch timer while the gateway keeps running', async () => {
    const gateway = await tracedGateway();
    const traceId = hex(16);
    const answer = await toolCall(
      `${gateway.url}/mcp`,
      'echo',
      { text: 'x' },
      { key: agent.key, headers: { traceparent: `00-${traceId}-${hex(8)}-01` } },
    );
    expect(answer.status).toBe(200);
    await vi.waitFor(() => expect(receiver.spans().map((s) => s.traceId)).toEqual([traceId]), {
      timeout: 10_000,
      interval: 200,
    });
  });

  it('samples new traces by sampleRatio, and always follows a sampled caller', async () => {
    const gateway = await tracedGateway(', sampleRatio: 0');
    let from = upstream.requests.length;
    const unsampled = await toolCall(`${gateway.url}/mcp`, 'echo', { text: 'x' }, { key: agent.key });
    expect(unsampled.status).toBe(200);
    // Not sampled, but the upstream still gets a trace context, marked not sampled.
    const propagated = parseTraceparent(header(forwardedSince(from), 'traceparent'));
    expect(propagated.flags).toBe('00');

    const traceId = hex(16);
    from = upstream.requests.length;
    const sampled = await toolCall(
      `${gateway.url}/mcp`,
      'echo',
      { text: 'x' },
      { key: agent.key, headers: { traceparent: `00-${traceId}-${hex(8)}-01` } },
    );
    expect(sampled.status).toBe(200);
    const continued = parseTraceparent(header(forwardedSince(from), 'traceparent'));
    await gateway.close();
    const spans = receiver.spans();
    expect(spans.map((s) => s.traceId)).toEqual([traceId]);
    expect(continued).toEqual({ traceId, parentId: spans[0]!.spanId, flags: '01' });
  });
});

describe('without tracing', () => {
  let upstream: Peer;
  let gateway: TestGateway;

  beforeAll(async () => {
    upstream = await startV2Server({ response: 'json' });
    gateway = await startTestGateway({ routes: [{ upstream: upstream.url }] });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it("passes the caller's traceparent and tracestate to the upstream untouched", async () => {
    const traceparent = `00-${hex(16)}-${hex(8)}-01`;
    let from = upstream.requests.length;
    const answer = await toolCall(
      `${gateway.url}/mcp`,
      'echo',
      { text: 'x' },
      { headers: { traceparent, tracestate: 'a=1,b=2' } },
    );
    expect(answer.status).toBe(200);
    let forwarded = upstream.requests.slice(from).filter((r) => rpcMethod(r) === 'tools/call');
    expect(forwarded).toHaveLength(1);
    expect(header(forwarded[0]!, 'traceparent')).toBe(traceparent);
    expect(header(forwarded[0]!, 'tracestate')).toBe('a=1,b=2');

    // Nor does it start a trace of its own.
    from = upstream.requests.length;
    expect((await toolCall(`${gateway.url}/mcp`, 'echo', { text: 'x' })).status).toBe(200);
    forwarded = upstream.requests.slice(from).filter((r) => rpcMethod(r) === 'tools/call');
    expect(forwarded).toHaveLength(1);
    expect(header(forwarded[0]!, 'traceparent')).toBeUndefined();
  });
});
