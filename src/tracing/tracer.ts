import type { IncomingHttpHeaders } from 'node:http';
import {
  type Attributes,
  defaultTextMapGetter,
  defaultTextMapSetter,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  trace,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  NodeTracerProvider,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-node';
import type { Config } from '../config/schema.js';

/** A request's span: its attributes as the pipeline learns them, and its context for the upstream. */
export interface RequestSpan {
  setAttributes(attributes: Attributes): void;
  /** Writes `traceparent` (and `tracestate`) continuing this span into the upstream's headers. */
  inject(headers: Record<string, string>): void;
  /** Ends the span, named for what the request turned out to be (`tools/call /mcp`). */
  end(status: number, name: string): void;
}

export interface Tracing {
  /** A server span for one request, continuing the caller's `traceparent` when it sent one. */
  start(headers: IncomingHttpHeaders, name: string): RequestSpan;
  /** Exports what is pending; called on shutdown. */
  shutdown(): Promise<void>;
}

/**
 * OpenTelemetry tracing over OTLP/HTTP (DESIGN.md step 10), off unless `tracing.otlpEndpoint` is
 * set. The provider is the gateway's own, not registered globally: nothing else in the process is
 * instrumented by accident, and the W3C trace context is extracted from and injected into headers
 * explicitly — the upstream call goes through undici's Pool, which no auto-instrumentation sees.
 */
export function createTracing(config: NonNullable<Config['tracing']>, version: string): Tracing {
  const endpoint = config.otlpEndpoint.replace(/\/+$/, '');
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'portcullis', 'service.version': version }),
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
    spanProcessors: [
      new BatchSpanProcessor(
        new OTLPTraceExporter({ url: endpoint.endsWith('/v1/traces') ? endpoint : `${endpoint}/v1/traces` }),
      ),
    ],
  });
  const tracer = provider.getTracer('portcullis', version);
  const propagator = new W3CTraceContextPropagator();
  return {
    start(headers, name) {
      const parent = propagator.extract(ROOT_CONTEXT, headers, defaultTextMapGetter);
      const span: Span = tracer.startSpan(name, { kind: SpanKind.SERVER }, parent);
      const context = trace.setSpan(parent, span);
      return {
        setAttributes: (attributes) => span.setAttributes(attributes),
        inject(out) {
          // The caller's headers are replaced, never merged: a `tracestate` left from a malformed
          // `traceparent` must not ride along with the new trace (W3C Trace Context).
          delete out.traceparent;
          delete out.tracestate;
          propagator.inject(context, out, defaultTextMapSetter);
        },
        end(status, finalName) {
          span.updateName(finalName);
          span.setAttribute('http.response.status_code', status);
          if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
          span.end();
        },
      };
    },
    shutdown: () => provider.shutdown(),
  };
}
