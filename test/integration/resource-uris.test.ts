/**
 * Issue 13, class 1: resource URIs through a real gateway in front of a real SDK v2 server whose
 * `file:///{+path}` template answers what its own WHATWG URL parser made of the URI it received.
 * Every bypass spelling is refused (400 `bad_uri`) or denied by its pattern with nothing reaching
 * the upstream, and the process keeps serving; an allowed spelling reaches the upstream — body
 * and `Mcp-Name` — in the canonical form the policy matched, and the audit names that form.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { header } from '../support/inspect.js';
import { META, MODERN } from '../support/wire.js';

let upstream: Peer;
let gateway: TestGateway;

beforeAll(async () => {
  upstream = await startV2Server({ response: 'json' });
  const route = (path: string, extra: string) => `  - route: ${path}
    resource: http://127.0.0.1${path}
    upstream: ${upstream.url}
    authentication: { methods: [anonymous] }
${extra}`;
  gateway = await startTestGateway({
    policy: `identities:
  anonymous: { scopes: [files:read] }
routes:
${route('/mcp', '    default: deny\n    resources: { "file:///public/**": files:read }\n')}
${route('/open/mcp', '    default: allow\n    resources: { "file:///secret/**": files:admin }\n')}`,
  });
});
afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});

/** `Mcp-Name` as a client must send it: plain when it is a safe header value, else base64. */
function mirror(value: string): string {
  return /^[\x21-\x7e]+$/.test(value) && !value.startsWith('=?')
    ? value
    : `=?base64?${Buffer.from(value, 'utf8').toString('base64')}?=`;
}

interface Answer {
  readonly status: number;
  readonly requestId: string | null;
  readonly body: {
    result?: { contents?: { uri: string; text: string }[] };
    error?: { code: number; data?: { reason?: string } };
  };
}

/** One modern request with its mirrored headers; `uri` mirrored into `Mcp-Name` for a read. */
async function call(
  route: string,
  method: string,
  params: Record<string, unknown>,
  signal?: AbortSignal,
): Promise<Answer & { readonly response: Response }> {
  const uri = method === 'resources/read' ? params.uri : undefined;
  const response = await fetch(`${gateway.url}${route}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      'mcp-method': method,
      ...(typeof uri === 'string' ? { 'mcp-name': mirror(uri) } : {}),
    },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: META } }),
    ...(signal === undefined ? {} : { signal }),
  });
  const requestId = response.headers.get('x-request-id');
  if (signal !== undefined) return { status: response.status, requestId, body: {}, response };
  return { status: response.status, requestId, body: (await response.json()) as Answer['body'], response };
}

const read = (route: string, uri: string) => call(route, 'resources/read', { uri });

/** A normal read right after: the gateway kept serving, and the upstream still answers. */
async function expectStillServing(): Promise<void> {
  const answer = await read('/mcp', 'file:///public/a.txt');
  expect(answer.status).toBe(200);
  expect(answer.body.result?.contents?.[0]?.text).toBe('read file:///public/a.txt pathname /public/a.txt');
}

/** What the upstream received for the read it last served. */
function lastUpstreamRequest(): { uri: unknown; ref: unknown; mcpName: string | undefined; body: unknown } {
  const request = upstream.requests.at(-1);
  if (request === undefined) throw new Error('the upstream received nothing');
  const params = (request.body as { params?: Record<string, unknown> }).params ?? {};
  return { uri: params.uri, ref: params.ref, mcpName: header(request, 'mcp-name'), body: request.body };
}

describe('resource URIs: refused spellings', () => {
  it('reads an allowed file (the baseline the refusals are measured against)', async () => {
    await expectStillServing();
    expect(lastUpstreamRequest().uri).toBe('file:///public/a.txt');
  });

  // Each would match file:///public/** as a string; WHATWG parsers read most as /secret/a.
  it.each([
    ['TAB', 'file:///public/.\t./secret/a'],
    ['LF', 'file:///public/.\n./secret/a'],
    ['CR', 'file:///public/.\r./secret/a'],
    ['a TAB-split dot segment', 'file:///public/\t../secret/a'],
    ['..', 'file:///public/../secret/a'],
    ['%2e%2e', 'file:///public/%2e%2e/secret/a'],
    ['.%2E', 'file:///public/.%2E/secret/a'],
    ['%2F', 'file:///public/..%2Fsecret/a'],
    ['%5C', 'file:///public/..%5Csecret/a'],
    ['a backslash', 'file:///public/..\\secret/a'],
    ['%25', 'file:///public/%252e%252e/secret/a'],
    ['an escaped TAB', 'file:///public/.%09./secret/a'],
    ['a space', 'file:///public/. ./secret/a'],
    ['a .. in the query', 'file:///public/a?/../../secret/a'],
    ['an empty segment', 'file:///public//../secret/a'],
    ['an overlong UTF-8 dot', 'file:///public/%C0%AE%C0%AE/secret/a'],
  ])('refuses %s (400 bad_uri); the upstream sees nothing and the gateway keeps serving', async (_, uri) => {
    const before = upstream.requests.length;
    const answer = await read('/mcp', uri);
    expect(answer.status).toBe(400);
    expect(answer.body.error).toMatchObject({ code: -32600, data: { reason: 'bad_uri' } });
    expect(upstream.requests.length, 'the upstream must see nothing').toBe(before);
    await expectStillServing();
  });

  it('refuses a bypass spelling in a completion reference and in a subscription list', async () => {
    const before = upstream.requests.length;
    const completion = await call('/mcp', 'completion/complete', {
      ref: { type: 'ref/resource', uri: 'file:///public/.\t./secret/{name}' },
      argument: { name: 'name', value: '' },
    });
    expect(completion.status).toBe(400);
    expect(completion.body.error?.data?.reason).toBe('bad_uri');
    const listen = await call('/mcp', 'subscriptions/listen', {
      notifications: { resourceSubscriptions: ['file:///public/a', 'file:///public/.\n./secret/a'] },
    });
    expect(listen.status).toBe(400);
    expect(listen.body.error?.data?.reason).toBe('bad_uri');
    expect(upstream.requests.length, 'the upstream must see nothing').toBe(before);
    await expectStillServing();
  });
});

describe('resource URIs: default allow with a deny pattern', () => {
  it.each([
    'file:///secret/a',
    'FILE:///secret/a',
    'File:///secret/a',
    'file:/secret/a',
    'file:secret/a',
    'file://localhost/secret/a',
    'file://LOCALHOST/secret/a',
    'file:///%73ecret/a',
  ])('denies %s by file:///secret/**; the upstream sees nothing', async (uri) => {
    const before = upstream.requests.length;
    const answer = await read('/open/mcp', uri);
    expect(answer.status).toBe(403);
    expect(answer.body.error?.data?.reason).toBe('insufficient_scope');
    expect(upstream.requests.length, 'the upstream must see nothing').toBe(before);
    const [record] = (await gateway.auditRecords()).filter((r) => r.requestId === answer.requestId);
    // The audit names the URI the pattern matched, not the client's spelling.
    expect(record).toMatchObject({ resource: 'file:///secret/a', rule: 'resources."file:///secret/**"' });
  });

  it('still reads what no deny pattern names', async () => {
    const answer = await read('/open/mcp', 'file:///public/b');
    expect(answer.status).toBe(200);
    expect(answer.body.result?.contents?.[0]?.text).toBe('read file:///public/b pathname /public/b');
  });
});

describe('resource URIs: what is forwarded is what was matched', () => {
  it('forwards an allowed non-canonical spelling in canonical form, body and Mcp-Name alike', async () => {
    const answer = await read('/mcp', 'FILE://localhost/public/%7e%61%c3%a9/é');
    expect(answer.status).toBe(200);
    const canonical = 'file:///public/~a%C3%A9/%C3%A9';
    const received = lastUpstreamRequest();
    expect(received.uri).toBe(canonical);
    expect(received.mcpName).toBe(canonical);
    expect(answer.body.result?.contents?.[0]).toMatchObject({
      uri: canonical,
      text: `read ${canonical} pathname /public/~a%C3%A9/%C3%A9`,
    });
    const [record] = (await gateway.auditRecords()).filter((r) => r.requestId === answer.requestId);
    expect(record).toMatchObject({ resource: canonical, decision: 'allow' });
  });

  it('forwards the canonical spelling the client already wrote untouched', async () => {
    const answer = await read('/mcp', 'file:///public/a%20b');
    expect(answer.status).toBe(200);
    expect(lastUpstreamRequest().uri).toBe('file:///public/a%20b');
    expect(lastUpstreamRequest().mcpName).toBe('file:///public/a%20b');
  });

  it('forwards a completion reference in canonical form, its template expression as written', async () => {
    await call('/mcp', 'completion/complete', {
      ref: { type: 'ref/resource', uri: 'FILE://localhost/public/{+path}' },
      argument: { name: 'path', value: '' },
    });
    expect(lastUpstreamRequest().ref).toEqual({ type: 'ref/resource', uri: 'file:///public/{+path}' });
  });

  it('forwards every subscribed URI of subscriptions/listen in canonical form', async () => {
    const abort = new AbortController();
    const answer = await call(
      '/mcp',
      'subscriptions/listen',
      {
        notifications: { resourceSubscriptions: ['FILE:///public/a', 'file:///public/b', 'file:/public/c'] },
      },
      abort.signal,
    );
    // The answer is a long-lived stream: its headers say the upstream took the request.
    abort.abort();
    expect(answer.status).toBe(200);
    const params = (lastUpstreamRequest().body as { params: { notifications: unknown } }).params;
    expect(params.notifications).toEqual({
      resourceSubscriptions: ['file:///public/a', 'file:///public/b', 'file:///public/c'],
    });
    await expectStillServing();
  });
});
