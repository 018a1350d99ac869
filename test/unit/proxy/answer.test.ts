import { PassThrough, Readable } from 'node:stream';
import pinoLogger from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/auth/identity.js';
import type { ParsedBody } from '../../../src/jsonrpc/parse.js';
import type { Metrics } from '../../../src/metrics/registry.js';
import { createAnswerRelay, howToRead, readAnswer } from '../../../src/proxy/answer.js';
import { createSessionSealer } from '../../../src/proxy/sessions.js';
import { createContainment } from '../../../src/server/contain.js';
import type { Router } from '../../../src/server/router.js';
import type { UpstreamAnswer } from '../../../src/upstream/upstream.js';
import { type ExchangeServer, READER, startExchangeServer, testRouter } from '../../support/exchange.js';

const silentLogger = () => pinoLogger({ level: 'silent' });

describe('howToRead: an answer the gateway must filter', () => {
  it.each([
    [200, 'json', undefined, 'read-json'],
    [200, 'sse', undefined, 'rewrite-sse'],
    [200, 'sse', 'identity', 'rewrite-sse'],
    [200, 'other', undefined, 'refuse'],
    [201, 'json', undefined, 'refuse'],
    [202, 'sse', undefined, 'refuse'],
    [204, 'other', undefined, 'refuse'],
    [200, 'json', 'gzip', 'refuse'],
    [200, 'sse', 'br', 'refuse'],
    [500, 'json', 'gzip', 'refuse'],
    [200, 'json', ['identity', 'gzip'], 'refuse'],
    [404, 'json', undefined, 'read-json'],
    [500, 'other', undefined, 'relay'],
    [405, 'other', undefined, 'relay'],
  ] as const)('status %i, %s body, Content-Encoding %j → %s', (status, kind, encoding, how) => {
    expect(howToRead(status, kind, encoding as string | string[] | undefined)).toBe(how);
  });
});

describe('readAnswer', () => {
  it('reads UTF-8 text whole, refuses more than the limit or bytes that are not UTF-8', async () => {
    expect(await readAnswer(Readable.from([Buffer.from('{"a":'), Buffer.from('"é"}')]), 100)).toBe(
      '{"a":"é"}',
    );
    expect(await readAnswer(Readable.from([Buffer.alloc(60), Buffer.alloc(60)]), 100)).toEqual({
      unreadable: 'too_large',
    });
    expect(await readAnswer(Readable.from([Buffer.from([0x7b, 0xff, 0x7d])]), 100)).toEqual({
      unreadable: 'not_json',
    });
  });
});

/** An upstream answer whose body the test writes. */
function upstreamAnswer(
  status: number,
  headers: Record<string, string>,
  chunks: readonly string[],
  end = true,
): UpstreamAnswer {
  const body = new PassThrough();
  for (const chunk of chunks) body.write(chunk);
  if (end) body.end();
  return { status, headers, body };
}

describe('createAnswerRelay', () => {
  const router = testRouter();
  const route = router.routes[0]!;
  let server: ExchangeServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });
  const pino = silentLogger();
  const relayWith = (metrics: Metrics, maxResponseBytes = 1 << 20) =>
    createAnswerRelay({
      sessions: createSessionSealer(undefined),
      metrics,
      logger: pino,
      contain: createContainment(pino, metrics),
      maxResponseBytes,
      maxJsonDepth: 64,
      router: () => router,
      lifetimes: { identityOf: () => undefined },
    });
  /** Serves one exchange whose parsed body holds `messages`, answered by `answer`. */
  async function serve(
    messages: ParsedBody['messages'],
    answer: () => UpstreamAnswer,
    maxResponseBytes?: number,
  ): Promise<ExchangeServer> {
    let relay: ReturnType<typeof relayWith> | undefined;
    const started = await startExchangeServer(route, (exchange) => {
      exchange.body = { batch: false, forward: '', messages };
      exchange.allowed = true;
      exchange.upstreamStatus = 200;
      return relay?.(exchange, answer());
    });
    relay = relayWith(started.metrics, maxResponseBytes);
    return started;
  }
  const call = [{ kind: 'request', id: 1, method: 'tools/call', params: { name: 'read_file' } }] as const;
  const list = [{ kind: 'request', id: 2, method: 'tools/list' }] as const;

  it('passes a JSON answer through untouched, its length kept, and scans its outcome', async () => {
    const text = '{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":true}}';
    server = await serve(call, () =>
      upstreamAnswer(200, { 'content-type': 'application/json', 'content-length': String(text.length) }, [
        text,
      ]),
    );
    const finished = server.nextFinish();
    const answer = await fetch(server.url, { method: 'POST', body: '{}' });
    expect(answer.headers.get('content-length')).toBe(String(text.length));
    expect(answer.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(await answer.text()).toBe(text);
    expect(await finished).toMatchObject({ status: 200, sse: false, answers: [{ id: 1, isError: true }] });
  });

  it('relays a pinned call’s JSON answer that can hold no list without parsing it, and refuses one that might, answering another id', async () => {
    const guarded = (text: string) => () => ({
      ...upstreamAnswer(200, { 'content-type': 'application/json' }, [text]),
      answers: 1,
      answersGuard: 'lists' as const,
    });
    // No list field can be in it: relayed (its other-id response is no list a client could misuse).
    const plain = '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}';
    server = await serve(call, guarded(plain));
    let answer = await fetch(server.url, { method: 'POST', body: '{}' });
    expect(await answer.text()).toBe(plain);
    await server.close();
    // A list under another id, however spelled: `"Tools"`, `"toolſ"` (Go folds it to tools), an escape.
    for (const smuggled of [
      '{"jsonrpc":"2.0","id":"7","result":{"Tools":[{"name":"evil"}]}}',
      '{"jsonrpc":"2.0","id":"7","result":{"toolſ":[{"name":"evil"}]}}',
      '{"jsonrpc":"2.0","id":"7","result":{"tool\\u0073":[{"name":"evil"}]}}',
      '{"jsonrpc":"2.0","id":"7","result":{"prompts":[{"name":"evil"}]}}',
    ]) {
      server = await serve(call, guarded(smuggled));
      answer = await fetch(server.url, { method: 'POST', body: '{}' });
      expect(answer.status, smuggled).toBe(502);
      expect(await answer.text()).not.toContain('evil');
      await server.close();
    }
    server = undefined;
  });

  it('rewrites an SSE list answer event by event, filtered to what the caller may use', async () => {
    const event = (data: string) => `event: message\ndata: ${data}\n\n`;
    const tools = '{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"read_file"},{"name":"drop_table"}]}}';
    server = await serve(list, () =>
      upstreamAnswer(200, { 'content-type': 'text/event-stream', 'content-length': '999' }, [
        ': hello\n\n',
        event(tools),
      ]),
    );
    const finished = server.nextFinish();
    const answer = await fetch(server.url, { method: 'POST', body: '{}' });
    expect(answer.headers.get('content-length'), 'framing headers dropped on a rewrite').toBeNull();
    const text = await answer.text();
    expect(text.startsWith(': hello\n\n')).toBe(true);
    expect(text).toContain('read_file');
    expect(text).not.toContain('drop_table');
    expect(await finished).toMatchObject({ status: 200, sse: true, answers: [{ id: 2, isError: false }] });
    expect((await server.metrics.activeStreams.get()).values.reduce((sum, v) => sum + v.value, 0)).toBe(0);
  });

  it('cuts an SSE answer that grows past the response cap with a JSON-RPC error event', async () => {
    const big = `data: {"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"${'x'.repeat(300)}"}]}}\n\n`;
    server = await serve(
      call,
      () => upstreamAnswer(200, { 'content-type': 'text/event-stream' }, [big, big], false),
      500,
    );
    const finished = server.nextFinish();
    const answer = await fetch(server.url, { method: 'POST', body: '{}' });
    const text = await answer.text();
    expect(answer.status).toBe(200);
    expect(text.startsWith(big)).toBe(true);
    expect(text.endsWith('\n\n')).toBe(true);
    expect(text).toContain('"reason":"response_too_large"');
    expect(await finished).toMatchObject({
      cut: 'response_too_large',
      upstreamError: 'too_large',
      reason: undefined,
    });
  });

  it('refuses a JSON answer declared larger than the cap before any byte of it goes out', async () => {
    server = await serve(
      call,
      () =>
        upstreamAnswer(200, { 'content-type': 'application/json', 'content-length': '5000' }, ['{}'], false),
      500,
    );
    const finished = server.nextFinish();
    const answer = await fetch(server.url, { method: 'POST', body: '{}' });
    expect(answer.status).toBe(502);
    expect(await answer.json()).toMatchObject({ id: 1, error: { data: { reason: 'response_too_large' } } });
    expect(await finished).toMatchObject({
      status: 502,
      reason: 'response_too_large',
      upstreamError: 'too_large',
    });
  });

  it('refuses a list answer it cannot read (not JSON) rather than relay it unfiltered', async () => {
    server = await serve(list, () =>
      upstreamAnswer(200, { 'content-type': 'application/json' }, ['{"tools": [nope']),
    );
    const answer = await fetch(server.url, { method: 'POST', body: '{}' });
    expect(answer.status).toBe(502);
    expect(await answer.json()).toMatchObject({ id: 2, error: { data: { reason: 'upstream_rejected' } } });
  });
});

describe('createAnswerRelay: resources/updated only to callers who may read the resource now', () => {
  const resources = (secret: string) =>
    `    resources: { "file:///public/**": files:read, "file:///secret/**": ${secret} }\n`;
  const before = testRouter(resources('files:read'));
  const route = before.routes[0]!;
  let server: ExchangeServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });
  const pino = silentLogger();
  const event = (data: unknown) =>
    `event: message\ndata: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`;
  const updated = (uri: unknown) => ({
    jsonrpc: '2.0',
    method: 'notifications/resources/updated',
    params: { uri },
  });
  const call = [{ kind: 'request', id: 1, method: 'tools/call', params: { name: 'read_file' } }] as const;

  /**
   * One SSE answer to a call, written by the test as it goes (`body`); `current` is the router in
   * force and `identityOf` the identity a reload gave the caller, both read at delivery.
   */
  async function serveStream(
    current: { router: Router; identity?: Identity },
    forwardMethod: 'POST' | 'GET' = 'POST',
  ): Promise<{ server: ExchangeServer; body: PassThrough; read: () => Promise<string> }> {
    const body = new PassThrough();
    const started = await startExchangeServer(route, (exchange) => {
      if (forwardMethod === 'POST') exchange.body = { batch: false, forward: '', messages: call };
      exchange.allowed = true;
      const metrics = started.metrics;
      return createAnswerRelay({
        sessions: createSessionSealer(undefined),
        metrics,
        logger: pino,
        contain: createContainment(pino, metrics),
        maxResponseBytes: 1 << 20,
        maxJsonDepth: 64,
        router: () => current.router,
        lifetimes: { identityOf: () => current.identity },
      })(exchange, { status: 200, headers: { 'content-type': 'text/event-stream' }, body });
    });
    const answer = await fetch(started.url, {
      method: forwardMethod,
      ...(forwardMethod === 'POST' ? { body: '{}' } : {}),
    });
    const reader = (answer.body as ReadableStream<Uint8Array>).getReader();
    const decoder = new TextDecoder();
    let seen = '';
    /** What arrived so far, once the marker event (`{"mark":n}`) the test wrote last is there. */
    let marks = 0;
    const read = async () => {
      marks++;
      body.write(event({ mark: marks }));
      while (!seen.includes(`{"mark":${marks}}`)) {
        const { value, done } = await reader.read();
        if (done) break;
        seen += decoder.decode(value, { stream: true });
      }
      return seen;
    };
    return { server: started, body, read };
  }

  it('drops, on a POST’s SSE answer, an update the policy now in force denies, and keeps the stream and the other events', async () => {
    const current: { router: Router; identity?: Identity } = { router: before };
    const stream = await serveStream(current);
    server = stream.server;
    stream.body.write(event(updated('file:///secret/a')));
    stream.body.write(event(updated('file:///public/a')));
    let seen = await stream.read();
    expect(seen).toContain('file:///secret/a');
    expect(seen).toContain('file:///public/a');
    // A reload: the secret resources now need a scope the caller lacks.
    current.router = testRouter(resources('admin'));
    stream.body.write(event(updated('file:///secret/b')));
    stream.body.write(event(updated('file:///public/b')));
    stream.body.write(
      event({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } }),
    );
    // Not JSON but naming the method: a lenient client parser might read an update in it.
    stream.body.write(event('{"method":"notifications/resources/updated", not json'));
    seen = await stream.read();
    expect(seen).not.toContain('file:///secret/b');
    expect(seen).toContain('file:///public/b');
    expect(seen).toContain('notifications/progress');
    expect(seen).not.toContain('not json');
    // The same caller given the scope by that reload (its identity re-authenticated) reads it again.
    current.identity = { ...READER, scopes: new Set(['files:read', 'admin']) };
    stream.body.write(event(updated('file:///secret/c')));
    seen = await stream.read();
    expect(seen).toContain('file:///secret/c');
  });

  it('drops, on a GET stream, escaped spellings, case variants, malformed URIs and denied batch members', async () => {
    const current = { router: testRouter(resources('admin')) };
    const stream = await serveStream(current, 'GET');
    server = stream.server;
    // `upd\u0061ted`: the method to any JSON parser.
    stream.body.write(
      event(
        '{"jsonrpc":"2.0","method":"notifications\\/resources\\/upd\\u0061ted","params":{"uri":"file:///secret/escaped"}}',
      ),
    );
    stream.body.write(
      event({
        jsonrpc: '2.0',
        method: 'notifications/resources/updated',
        params: { uri: 'file:///public/x', URI: 'file:///secret/variant' },
      }),
    );
    stream.body.write(event(updated(42)));
    stream.body.write(event(updated('file:///public/../secret/traversal')));
    stream.body.write(event([updated('file:///secret/batched'), updated('file:///public/batched')]));
    const seen = await stream.read();
    expect(seen).not.toContain('secret');
    expect(seen).not.toContain('42');
    expect(seen).toContain('file:///public/batched');
    expect(seen).toContain('{"mark":1}');
  });

  it('delivers no update once the route is gone from the policy in force', async () => {
    const current = { router: testRouter(resources('files:read')) };
    const stream = await serveStream(current);
    server = stream.server;
    current.router = { ...current.router, match: () => undefined };
    stream.body.write(event(updated('file:///public/a')));
    expect(await stream.read()).not.toContain('file:///public/a');
  });
});
