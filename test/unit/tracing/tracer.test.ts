/** `createTracing` against a real OTLP/HTTP receiver: what it exports and what it propagates. */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTracing, type Tracing } from '../../../src/tracing/tracer.js';
import {
  type OtlpReceiver,
  parseTraceparent,
  SPAN_KIND_SERVER,
  startOtlpReceiver,
} from '../../support/otlp.js';

/** OTLP's `STATUS_CODE_ERROR`. */
const STATUS_ERROR = 2;

const hex = (bytes: number) => randomBytes(bytes).toString('hex');

let receiver: OtlpReceiver;
beforeAll(async () => {
  receiver = await startOtlpReceiver();
});
afterAll(async () => {
  await receiver?.close();
});

/** A tracer exporting to the receiver; `shutdown()` exports what it holds. */
function tracing(sampleRatio = 1, endpoint = receiver.url): Tracing {
  return createTracing({ otlpEndpoint: endpoint, sampleRatio }, '9.9.9-test');
}

/** What `inject` writes for a span started from `incoming`. */
function injected(tracer: Tracing, incoming: Record<string, string>, out: Record<string, string> = {}) {
  const span = tracer.start(incoming, 'POST /mcp');
  span.inject(out);
  return { span, out };
}

describe('createTracing: propagation', () => {
  it('continues a caller’s sampled trace: same trace id, a new span id, sampled', async () => {
    const tracer = tracing();
    const traceId = hex(16);
    const callerSpan = hex(8);
    const { out } = injected(tracer, { traceparent: `00-${traceId}-${callerSpan}-01` });
    const sent = parseTraceparent(out.traceparent);
    expect(sent.traceId).toBe(traceId);
    expect(sent.parentId).not.toBe(callerSpan);
    expect(sent.flags).toBe('01');
    await tracer.shutdown();
  });

  it('starts a new trace without a traceparent, and replaces what the upstream headers held', async () => {
    const tracer = tracing();
    const stale = `00-${hex(16)}-${hex(8)}-01`;
    const { out } = injected(tracer, {}, { traceparent: stale, tracestate: 'vendor=stale' });
    expect(out.traceparent).not.toBe(stale);
    expect(parseTraceparent(out.traceparent).traceId).not.toBe(parseTraceparent(stale).traceId);
    expect(out.tracestate).toBeUndefined();
    await tracer.shutdown();
  });

  it('does not continue a malformed traceparent, nor carry its tracestate along', async () => {
    const tracer = tracing();
    const traceId = hex(16);
    const { out } = injected(tracer, { traceparent: `00-${traceId}-zz-01`, tracestate: 'vendor=left-over' });
    expect(parseTraceparent(out.traceparent).traceId).not.toBe(traceId);
    expect(out.tracestate).toBeUndefined();
    await tracer.shutdown();
  });

  it('carries a valid caller’s tracestate on the continued trace', async () => {
    const tracer = tracing();
    const { out } = injected(tracer, {
      traceparent: `00-${hex(16)}-${hex(8)}-01`,
      tracestate: 'vendor=kept',
    });
    expect(out.tracestate).toBe('vendor=kept');
    await tracer.shutdown();
  });

  it('with sampleRatio 0, samples no new trace but always a sampled caller’s', async () => {
    const tracer = tracing(0);
    expect(parseTraceparent(injected(tracer, {}).out.traceparent).flags).toBe('00');
    const traceId = hex(16);
    expect(
      parseTraceparent(injected(tracer, { traceparent: `00-${traceId}-${hex(8)}-01` }).out.traceparent),
    ).toMatchObject({ traceId, flags: '01' });
    await tracer.shutdown();
  });
});

describe('createTracing: export', () => {
  it('exports each ended server span once, named as it ended, with its status and the service', async () => {
    const tracer = tracing(1, `${receiver.url}/`);
    const traceId = hex(16);
    const ok = tracer.start({ traceparent: `00-${traceId}-${hex(8)}-01` }, 'POST /mcp');
    ok.setAttributes({ 'mcp.method.name': 'tools/call', 'portcullis.decision': 'allow' });
    ok.end(200, 'tools/call /mcp');
    const failed = tracer.start({ traceparent: `00-${traceId}-${hex(8)}-01` }, 'POST /mcp');
    failed.end(502, 'tools/list /mcp');
    await tracer.shutdown();

    const spans = receiver.spans().filter((span) => span.traceId === traceId);
    expect(spans.map((span) => span.name).sort()).toEqual(['tools/call /mcp', 'tools/list /mcp']);
    const first = spans.find((span) => span.name === 'tools/call /mcp');
    expect(first).toMatchObject({
      kind: SPAN_KIND_SERVER,
      scope: 'portcullis',
      resource: { 'service.name': 'portcullis', 'service.version': '9.9.9-test' },
      attributes: {
        'mcp.method.name': 'tools/call',
        'portcullis.decision': 'allow',
        'http.response.status_code': 200,
      },
    });
    expect(first?.statusCode).not.toBe(STATUS_ERROR);
    expect(spans.find((span) => span.name === 'tools/list /mcp')?.statusCode).toBe(STATUS_ERROR);
  });

  it('posts to the endpoint’s /v1/traces whether or not the endpoint already names it', async () => {
    const before = receiver.requests.length;
    const tracer = tracing(1, `${receiver.url}/v1/traces`);
    tracer.start({}, 'POST /mcp').end(200, 'ping /mcp');
    await tracer.shutdown();
    expect(receiver.requests.slice(before).map((request) => request.path)).toEqual(['/v1/traces']);
  });

  it('exports nothing for an unsampled trace', async () => {
    const before = receiver.spans().length;
    const tracer = tracing(0);
    tracer.start({}, 'POST /mcp').end(200, 'ping /mcp');
    await tracer.shutdown();
    expect(receiver.spans().length).toBe(before);
  });
});
