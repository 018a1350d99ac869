/**
 * An OTLP/HTTP trace receiver for the tracing tests (POST /v1/traces, JSON, gzip or not) and a
 * reader of W3C `traceparent` headers.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export type AttributeValue = string | number | boolean;

/** One span as the gateway exported it, attributes flattened. */
export interface ExportedSpan {
  readonly traceId: string;
  readonly spanId: string;
  /** Absent for a root span. */
  readonly parentSpanId: string | undefined;
  readonly name: string;
  readonly kind: number;
  readonly statusCode: number;
  readonly attributes: Record<string, AttributeValue>;
  readonly resource: Record<string, AttributeValue>;
  readonly scope: string;
}

/** One HTTP request the receiver got. */
export interface ExportRequest {
  readonly method: string;
  readonly path: string;
  readonly contentType: string | undefined;
  readonly body: unknown;
}

/** OTLP's `SPAN_KIND_SERVER`. */
export const SPAN_KIND_SERVER = 2;
export const TRACE_ID = /^[0-9a-f]{32}$/;
export const SPAN_ID = /^[0-9a-f]{16}$/;

interface OtlpKeyValue {
  key: string;
  value: {
    stringValue?: string;
    intValue?: number | string;
    doubleValue?: number;
    boolValue?: boolean;
  };
}

function flatten(attributes: OtlpKeyValue[] | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const { key, value } of attributes ?? []) {
    if (value.stringValue !== undefined) out[key] = value.stringValue;
    else if (value.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue;
    else if (value.boolValue !== undefined) out[key] = value.boolValue;
    else
      throw new Error(`attribute ${key} has a value kind the test does not read: ${JSON.stringify(value)}`);
  }
  return out;
}

/** A running OTLP/HTTP trace receiver. */
export interface OtlpReceiver {
  /** Its base URL, the `tracing.otlpEndpoint` to configure (`/v1/traces` is appended by the exporter). */
  readonly url: string;
  /** Every HTTP request it received, in order. */
  readonly requests: ExportRequest[];
  /** The spans of every `/v1/traces` export so far (throws on a non-JSON export). */
  spans(): ExportedSpan[];
  close(): Promise<void>;
}

/** An OTLP/HTTP trace receiver on 127.0.0.1 that keeps every export, JSON only. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const requests: ExportRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      let raw = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
      const contentType = req.headers['content-type'];
      let body: unknown = raw;
      if (contentType?.startsWith('application/json')) body = JSON.parse(raw.toString('utf8'));
      requests.push({ method: req.method ?? '', path: req.url ?? '', contentType, body });
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    spans() {
      const spans: ExportedSpan[] = [];
      for (const request of requests) {
        if (request.path !== '/v1/traces') continue;
        if (!request.contentType?.startsWith('application/json'))
          throw new Error(`the exporter sent ${request.contentType}, not JSON`);
        const body = request.body as {
          resourceSpans?: Array<{
            resource?: { attributes?: OtlpKeyValue[] };
            scopeSpans?: Array<{
              scope?: { name?: string };
              spans?: Array<{
                traceId: string;
                spanId: string;
                parentSpanId?: string;
                name: string;
                kind: number;
                status?: { code?: number };
                attributes?: OtlpKeyValue[];
              }>;
            }>;
          }>;
        };
        for (const resourceSpans of body.resourceSpans ?? []) {
          const resource = flatten(resourceSpans.resource?.attributes);
          for (const scopeSpans of resourceSpans.scopeSpans ?? [])
            for (const span of scopeSpans.spans ?? [])
              spans.push({
                traceId: span.traceId,
                spanId: span.spanId,
                parentSpanId: span.parentSpanId === '' ? undefined : span.parentSpanId,
                name: span.name,
                kind: span.kind,
                statusCode: span.status?.code ?? 0,
                attributes: flatten(span.attributes),
                resource,
                scope: scopeSpans.scope?.name ?? '',
              });
        }
      }
      return spans;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** The `traceparent` header's parts. */
export function parseTraceparent(value: string | undefined): {
  traceId: string;
  parentId: string;
  flags: string;
} {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(value ?? '');
  if (match === null) throw new Error(`not a version-00 traceparent: ${JSON.stringify(value)}`);
  return { traceId: match[1]!, parentId: match[2]!, flags: match[3]! };
}
