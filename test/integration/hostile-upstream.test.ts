/**
 * A compromised or buggy upstream, through the real gateway (issue 13, classes 2, 6 and 17): a
 * raw `node:http` upstream written here sends the hostile bytes, and for each the client gets
 * the precise refusal (or a filtered answer), the audit record is written, and the process keeps
 * serving — another client's call to a real SDK v2 server succeeds right after.
 */
import { once } from 'node:events';
import { createServer, type IncomingMessage, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectV2Client, type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { counterValue, metricsText } from '../support/wire.js';

/** The upstream's answer to every request, set by each test. */
type Behaviour = (req: IncomingMessage, body: string, res: ServerResponse) => void;

interface RawUpstream {
  readonly url: string;
  readonly received: { method: string; headers: IncomingMessage['headers']; body: string }[];
  behave(b: Behaviour): void;
  close(): Promise<void>;
}

async function startRawUpstream(): Promise<RawUpstream> {
  const received: RawUpstream['received'] = [];
  let behaviour: Behaviour = (_req, _body, res) => res.writeHead(500).end();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      received.push({ method: req.method ?? '', headers: { ...req.headers }, body });
      behaviour(req, body, res);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    received,
    behave: (b) => {
      behaviour = b;
    },
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const TOOLS = [
  { name: 'echo', inputSchema: { type: 'object' } },
  { name: 'drop_database', inputSchema: { type: 'object' } },
];
const listResult = (id: unknown) => JSON.stringify({ jsonrpc: '2.0', id, result: { tools: TOOLS } });
/** 12 MB: room for an SSE event of 300 000 responses; past it an answer is too large. */
const MAX_RESPONSE_BYTES = 12_000_000;

let raw: RawUpstream;
let v2: Peer;
let gateway: TestGateway;

beforeAll(async () => {
  [raw, v2] = await Promise.all([startRawUpstream(), startV2Server({ response: 'json' })]);
  gateway = await startTestGateway({
    top: `limits: { drainTimeoutMs: 2000, maxResponseBytes: ${MAX_RESPONSE_BYTES} }`,
    routes: [
      { route: '/raw/mcp', upstream: raw.url, extra: '    tools: { drop_database: db:admin }\n' },
      { route: '/ok/mcp', upstream: v2.url },
    ],
  });
});
afterAll(async () => {
  await gateway?.close();
  await Promise.all([raw?.close(), v2?.close()]);
});
afterEach(() => {
  raw.received.length = 0;
  vi.restoreAllMocks();
});

/** A legacy JSON-RPC request to the raw upstream's route. */
function post(
  method: string,
  id: number | string = 1,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${gateway.url}/raw/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2025-11-25',
      ...headers,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id,
      method,
      ...(method === 'tools/call' ? { params: { name: 'echo', arguments: {} } } : {}),
    }),
  });
}

/** The gateway still serves: another client's tool call to a real SDK v2 server succeeds. */
async function expectServing(): Promise<void> {
  const client = await connectV2Client(`${gateway.url}/ok/mcp`);
  try {
    const result = await client.callTool({ name: 'echo', arguments: { text: 'still here' } });
    expect(result.content).toEqual([{ type: 'text', text: 'still here' }]);
  } finally {
    await client.close();
  }
}

async function expectRefused(
  answer: Response,
  status: number,
  reason: string,
  id: unknown = 1,
): Promise<void> {
  expect(answer.status).toBe(status);
  const body = (await answer.json()) as { id: unknown; error: { data: { reason: string } } };
  expect(body.id).toEqual(id);
  expect(body.error.data.reason).toBe(reason);
  const requestId = answer.headers.get('x-request-id');
  const records = await gateway.auditRecords();
  expect(records.find((r) => r.requestId === requestId)).toMatchObject({ status, reason });
}

/** The data of every event of an SSE text (lines joined), in order. */
function eventData(text: string): string[] {
  return text
    .split(/\r\n\r\n|\n\n|\r\r/)
    .map((event) =>
      event
        .split(/\r\n|\n|\r/)
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(line[5] === ' ' ? 6 : 5))
        .join('\n'),
    )
    .filter((data) => data !== '');
}

const sseHeaders = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' };

describe('class 2: answers too deep or too large to read', () => {
  const deep = (id: unknown) =>
    `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"result":{"tools":[{"name":"drop_database","x":${'['.repeat(8000)}${']'.repeat(8000)}}]}}`;

  it('ends an 8000-deep SSE tools/list answer with a JSON-RPC error event, and keeps serving', async () => {
    raw.behave((_req, _body, res) => {
      res.writeHead(200, sseHeaders);
      res.end(`event: message\ndata: ${deep(1)}\n\n`);
    });
    const answer = await post('tools/list');
    expect(answer.status).toBe(200);
    const text = await answer.text();
    expect(text).not.toContain('drop_database');
    expect(eventData(text).map((d) => JSON.parse(d))).toEqual([
      {
        jsonrpc: '2.0',
        id: 1,
        error: expect.objectContaining({ data: { reason: 'upstream_rejected' } }),
      },
    ]);
    await expectServing();
  });

  it('refuses an 8000-deep JSON tools/list answer with 502 upstream_rejected', async () => {
    raw.behave((_req, _body, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(deep(1)));
    await expectRefused(await post('tools/list'), 502, 'upstream_rejected');
    await expectServing();
  });

  it('relays an SSE event holding 300 000 responses without dying, and audits the call', async () => {
    const response = '{"jsonrpc":"2.0","id":1,"result":{}}';
    const data = `[${Array.from({ length: 300_000 }, () => response).join(',')}]`;
    raw.behave((_req, _body, res) => {
      res.writeHead(200, sseHeaders);
      res.end(`data: ${data}\n\n`);
    });
    const answer = await post('tools/call');
    expect(answer.status).toBe(200);
    expect((await answer.text()).length).toBeGreaterThan(data.length);
    const requestId = answer.headers.get('x-request-id');
    const records = await gateway.auditRecords();
    expect(records.find((r) => r.requestId === requestId)).toMatchObject({ status: 200 });
    await expectServing();
  });

  it('ends an SSE list answer whose event outgrows maxResponseBytes with response_too_large', async () => {
    raw.behave((_req, _body, res) => {
      res.writeHead(200, sseHeaders);
      res.write(`data: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"drop_database","d":"`);
      res.end(`${'x'.repeat(MAX_RESPONSE_BYTES)}"}]}}`);
    });
    const answer = await post('tools/list');
    const text = await answer.text();
    expect(text).not.toContain('drop_database');
    expect(eventData(text).map((d) => JSON.parse(d))).toEqual([
      { jsonrpc: '2.0', id: 1, error: expect.objectContaining({ data: { reason: 'response_too_large' } }) },
    ]);
    await expectServing();
  });
});

describe('class 2: an exception in an exchange’s handler ends that exchange only', () => {
  it('contains a throw in a close handler: counted, logged, and the process keeps serving', async () => {
    raw.behave((_req, _body, res) => {
      res.writeHead(200, sseHeaders);
      res.end('data: {"jsonrpc":"2.0","id":1,"result":{"content":[]}}\n\n');
    });
    const before = counterValue(await metricsText(gateway), 'portcullis_internal_errors_total', {
      where: 'close',
    });
    // A fault injected into what the stream's close handler calls (a metrics bug, say).
    vi.spyOn(gateway.metrics.activeStreams, 'dec').mockImplementationOnce(() => {
      throw new Error('injected fault');
    });
    const answer = await post('tools/call');
    await answer.text();
    await vi.waitFor(async () => {
      const after = counterValue(await metricsText(gateway), 'portcullis_internal_errors_total', {
        where: 'close',
      });
      expect(after).toBe(before + 1);
    });
    await expectServing();
  });

  it('contains a throw while recording the outcome: counted, and the process keeps serving', async () => {
    raw.behave((_req, _body, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}'),
    );
    const before = counterValue(await metricsText(gateway), 'portcullis_internal_errors_total', {
      where: 'outcome',
    });
    vi.spyOn(gateway.metrics.requests, 'inc').mockImplementationOnce(() => {
      throw new Error('injected fault');
    });
    expect((await post('ping')).status).toBe(200);
    const after = counterValue(await metricsText(gateway), 'portcullis_internal_errors_total', {
      where: 'outcome',
    });
    expect(after).toBe(before + 1);
    await expectServing();
  });
});

describe('class 6: answers never relayed', () => {
  it('refuses a redirect with 502 upstream_rejected: never followed, no Location to the client', async () => {
    const elsewhere = await startRawUpstream();
    try {
      elsewhere.behave((_req, _body, res) => res.writeHead(200).end());
      for (const status of [301, 302, 303, 307, 308]) {
        raw.behave((_req, _body, res) => res.writeHead(status, { location: elsewhere.url }).end());
        const answer = await post('tools/call');
        expect(answer.headers.get('location')).toBeNull();
        await expectRefused(answer, 502, 'upstream_rejected');
      }
      expect(raw.received).toHaveLength(5);
      expect(elsewhere.received).toEqual([]);
    } finally {
      await elsewhere.close();
    }
    await expectServing();
  });

  it('refuses an answer with two Mcp-Session-Id headers with 502', async () => {
    raw.behave((_req, _body, res) => {
      res.setHeader('mcp-session-id', ['upstream-a', 'upstream-b']);
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}');
    });
    const answer = await post('initialize');
    expect(answer.headers.get('mcp-session-id')).toBeNull();
    await expectRefused(answer, 502, 'upstream_rejected');
    await expectServing();
  });

  it.each([
    ['a 2xx other than 200', 201, { 'content-type': 'application/json' }, (id: number) => listResult(id)],
    ['an unknown media type', 200, { 'content-type': 'text/plain' }, (id: number) => listResult(id)],
    ['no media type', 200, {}, (id: number) => listResult(id)],
    ['a repeated Content-Type', 200, { 'content-type': ['application/json', 'text/plain'] }, listResult],
    ['JSON in another charset', 200, { 'content-type': 'application/json; charset=latin1' }, listResult],
    [
      'a Content-Encoding',
      200,
      { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      (id: number) => gzipSync(listResult(id)),
    ],
    ['text that is not JSON', 200, { 'content-type': 'application/json' }, () => `${listResult(1)}, NaN`],
    // A case-insensitive client decoder (Go's encoding/json) reads `Tools` as `tools`.
    [
      'a list field spelled in another case',
      200,
      { 'content-type': 'application/json' },
      () => listResult(1).replace('"tools"', '"Tools"'),
    ],
  ] as const)(
    'refuses a tools/list answer with %s (502, never passed through)',
    async (_, status, headers, body) => {
      raw.behave((_req, _body, res) => {
        for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
        res.writeHead(status).end(body(1));
      });
      await expectRefused(await post('tools/list'), 502, 'upstream_rejected');
      await expectServing();
    },
  );

  it.each([
    ['Application/JSON;charset=UTF-8', false],
    ['application/json ; charset="utf-8"', false],
    ['Text/Event-Stream', true],
    ['text/event-stream; charset=utf-8', true],
  ])('understands %s and filters the list', async (contentType, sse) => {
    raw.behave((_req, _body, res) => {
      res.writeHead(200, { 'content-type': contentType });
      res.end(sse ? `data: ${listResult(1)}\n\n` : listResult(1));
    });
    const answer = await post('tools/list');
    expect(answer.status).toBe(200);
    const text = await answer.text();
    const [data] = sse ? eventData(text) : [text];
    expect(JSON.parse(data as string)).toEqual({ jsonrpc: '2.0', id: 1, result: { tools: [TOOLS[0]] } });
  });

  // The official TypeScript SDK 1.32 sends a Content-Length on SSE: kept after a rewrite, it truncated the body.
  it('never relays the upstream’s Content-Length or digests after rewriting an SSE list answer', async () => {
    const stream = `: ping\n\nevent: message\ndata: ${listResult(1)}\n\n`;
    raw.behave((_req, _body, res) => {
      res.writeHead(200, {
        ...sseHeaders,
        'content-length': Buffer.byteLength(stream),
        'content-digest': 'sha-256=:AAAA:',
        etag: '"v1"',
      });
      res.end(stream);
    });
    const answer = await post('tools/list');
    expect(answer.headers.get('content-length')).toBeNull();
    expect(answer.headers.get('content-digest')).toBeNull();
    expect(answer.headers.get('etag')).toBeNull();
    const text = await answer.text();
    expect(text).toBe(
      `: ping\n\nevent: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [TOOLS[0]] } })}\n\n`,
    );
  });

  it('recomputes Content-Length after rewriting a JSON list answer', async () => {
    raw.behave((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/json', etag: '"v1"' });
      res.end(listResult(1));
    });
    const answer = await post('tools/list');
    const text = await answer.text();
    expect(answer.headers.get('content-length')).toBe(String(Buffer.byteLength(text)));
    expect(answer.headers.get('etag')).toBeNull();
    expect(text).not.toContain('drop_database');
  });

  it.each([
    ['a lone CR as the very last byte', (e: string) => `data: ${e}\r\r`],
    ['CR line ends throughout', (e: string) => `event: message\rdata: ${e}\r\r`],
    ['an LF line then a CRLF blank line', (e: string) => `data: ${e}\n\r\n`],
    ['no blank line at all (unterminated)', (e: string) => `data: ${e}\n`],
    ['no line end at all', (e: string) => `data: ${e}`],
  ])('never relays an SSE list result unfiltered, whatever ends its event: %s', async (_, frame) => {
    raw.behave((_req, _body, res) => {
      res.writeHead(200, sseHeaders);
      // The event's last byte in its own write, as a stream may split it.
      const bytes = frame(listResult(1));
      res.write(bytes.slice(0, -1));
      setTimeout(() => res.end(bytes.slice(-1)), 20);
    });
    const answer = await post('tools/list');
    const text = await answer.text();
    expect(text).not.toContain('drop_database');
    for (const data of eventData(text)) expect(JSON.parse(data).result.tools).toEqual([TOOLS[0]]);
  });
});

describe('class 12: the headers the upstream receives', () => {
  /** Headers the gateway or its HTTP client set on every upstream request. */
  const GATEWAY_OWN = [
    'host',
    'connection',
    'content-length',
    'x-forwarded-for',
    'x-forwarded-proto',
    'x-forwarded-host',
    'accept-encoding',
  ];

  it('receives exactly the allow-listed client headers, whatever else the client sends', async () => {
    raw.behave((_req, _body, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}'),
    );
    const allowed = {
      accept: 'application/json, text/event-stream',
      'content-type': 'application/json',
      'mcp-protocol-version': '2025-11-25',
      'last-event-id': 'e-1',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      tracestate: 'vendor=1',
      'user-agent': 'hostile-test/1',
      'mcp-param-region': 'eu',
    };
    const hostile = {
      'x-remote-user': 'admin',
      'x-client-cert': 'MIIB',
      'x-original-url': '/admin',
      'x-http-method-override': 'DELETE',
      forwarded: 'for=1.2.3.4;host=evil.example',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-user': 'admin',
      'x-real-ip': '1.2.3.4',
      cookie: 'session=abc',
      'accept-encoding': 'gzip, br',
      'x-tenant': 'not-forwarded-on-this-route',
    };
    // `fetch` would not let a test choose Host: node:http does.
    const text = await new Promise<string>((resolve, reject) => {
      const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' });
      const req = request(
        `${gateway.url}/raw/mcp`,
        { method: 'POST', headers: { ...allowed, ...hostile, host: 'attacker.example' } },
        (res) => {
          let out = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (out += chunk));
          res.on('end', () => resolve(out));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
    expect(JSON.parse(text)).toEqual({ jsonrpc: '2.0', id: 1, result: {} });
    expect(raw.received).toHaveLength(1);
    const seen = raw.received[0]!.headers;
    expect(Object.keys(seen).sort()).toEqual([...Object.keys(allowed), ...GATEWAY_OWN].sort());
    for (const [name, value] of Object.entries(allowed)) expect(seen[name]).toBe(value);
    expect(seen['accept-encoding']).toBe('identity');
    // The route's public host (its resource URL), never the client's Host.
    expect(seen['x-forwarded-host']).toBe('127.0.0.1');
    expect(seen['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen['x-forwarded-proto']).toBe('http');
  });

  it('sends an SDK v2 server only allow-listed headers and the route’s forwardHeaders', async () => {
    const own = await startTestGateway({
      routes: [{ upstream: v2.url, extra: '    forwardHeaders: [X-Tenant]\n' }],
    });
    try {
      const client = await connectV2Client(`${own.url}/mcp`, {
        headers: { 'X-Tenant': 't-1', 'X-Remote-User': 'admin', Cookie: 'a=1', 'X-Original-URL': '/admin' },
      });
      const before = v2.requests.length;
      await client.callTool({ name: 'echo', arguments: { text: 'hi' } });
      await client.close();
      const calls = v2.requests
        .slice(before)
        .filter((r) => (r.body as { method?: string })?.method === 'tools/call');
      expect(calls).toHaveLength(1);
      const seen = calls[0]!.headers;
      expect(seen['x-tenant']).toBe('t-1');
      const allowed = new Set([
        'accept',
        'content-type',
        'mcp-protocol-version',
        'mcp-method',
        'mcp-name',
        'user-agent',
        'x-tenant',
        ...GATEWAY_OWN,
      ]);
      expect(
        Object.keys(seen).filter((name) => !allowed.has(name) && !name.startsWith('mcp-param-')),
      ).toEqual([]);
    } finally {
      await own.close();
    }
  });
});

describe('class 17: an SSE answer’s status and headers go out at once', () => {
  /** Resolves with how long the client waited for the status line. */
  async function timeToHeaders(send: () => Promise<Response>): Promise<{ ms: number; answer: Response }> {
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('no status and headers within 2 s')), 2000);
    });
    try {
      const answer = await Promise.race([send(), late]);
      return { ms: performance.now() - started, answer };
    } finally {
      clearTimeout(timer);
    }
  }

  let silent: ServerResponse[] = [];
  afterEach(() => {
    for (const res of silent) res.end();
    silent = [];
  });
  const idleStream: Behaviour = (_req, _body, res) => {
    // Headers now, the first event much later: a quiet stream.
    res.writeHead(200, sseHeaders);
    res.flushHeaders();
    silent.push(res);
  };

  it.each([
    [
      'a GET stream',
      () =>
        fetch(`${gateway.url}/raw/mcp`, {
          headers: { accept: 'text/event-stream', 'mcp-protocol-version': '2025-11-25' },
        }),
    ],
    ['a POST answered with SSE', () => post('tools/call')],
    ['a POST list answer the gateway rewrites', () => post('tools/list')],
  ])('%s: the client sees 200 while the upstream is silent', async (_, send) => {
    raw.behave(idleStream);
    const { ms, answer } = await timeToHeaders(send);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('text/event-stream');
    // The upstream sends no event for the whole test: the status must not wait for one.
    expect(ms).toBeLessThan(1500);
    await answer.body?.cancel();
  });
});
