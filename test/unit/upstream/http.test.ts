import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cancellation } from '../../../src/cancellation.js';
import { parseConfig } from '../../../src/config/load.js';
import { upstreamTargets } from '../../../src/config/upstreams.js';
import { isRefusal } from '../../../src/errors.js';
import { createHttpUpstream } from '../../../src/upstream/http.js';
import type { Upstream, UpstreamAnswer, UpstreamRequest } from '../../../src/upstream/upstream.js';
import { READER } from '../../support/exchange.js';

let answerWith: (req: IncomingMessage, res: ServerResponse) => void = (_, res) => res.end();
let server: Server;
let upstream: Upstream;
let url: string;

function upstreamFor(target: string): Upstream {
  const config = parseConfig(
    `identities: { anonymous: { scopes: [] } }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${target}
    upstreamTimeouts: { connectMs: 500, headersMs: 300, idleMs: 1000 }
    authentication: { methods: [anonymous] }
`,
    { env: {} },
  );
  const route = config.routes[0]!;
  return createHttpUpstream(route.upstream as string, upstreamTargets(route, 0)[0]!);
}

const request = (over: Partial<UpstreamRequest> = {}): UpstreamRequest => ({
  method: 'POST',
  headers: { 'content-type': 'application/json' },
  body: undefined,
  text: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
  cancellation: new Cancellation(),
  version: '2025-11-25',
  identity: READER,
  session: undefined,
  ...over,
});

beforeAll(async () => {
  server = createServer((req, res) => answerWith(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
  upstream = upstreamFor(url);
});
afterAll(async () => {
  await upstream.close();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('createHttpUpstream', () => {
  it('sends the text to the route URL and answers with the upstream status, headers and body stream', async () => {
    let seen = '';
    answerWith = (req, res) => {
      req.on('data', (chunk) => {
        seen += chunk;
      });
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":1}'));
    };
    const answer = (await upstream.send(request())) as UpstreamAnswer;
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(await answer.body.toArray().then((c) => Buffer.concat(c).toString())).toBe('{"ok":1}');
    expect(seen).toBe('{"jsonrpc":"2.0","id":1,"method":"ping"}');
  });

  it.each([
    ['a redirect', 302, { location: 'http://elsewhere.example/' }],
    ['an auth challenge', 401, { 'www-authenticate': 'Bearer' }],
    ['two session ids', 200, { 'mcp-session-id': ['a', 'b'] }],
    ['a session id with a space', 200, { 'mcp-session-id': 'a b' }],
  ])('refuses %s as upstream_rejected, never relayed', async (_, status, headers) => {
    answerWith = (_req, res) => {
      res.writeHead(status, headers as Record<string, string | string[]>).end('{}');
    };
    const answer = await upstream.send(request());
    expect(isRefusal(answer) && answer.reason).toBe('upstream_rejected');
  });

  it('refuses an answer that is not HTTP (bytes no parser accepts) as upstream_rejected, never a gateway error', async () => {
    answerWith = (req) => {
      req.socket.end('HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n');
    };
    const answer = await upstream.send(request());
    expect(isRefusal(answer) && answer.reason).toBe('upstream_rejected');
  });

  it('answers unreachable and slow upstreams with their refusals', async () => {
    const closed = upstreamFor('http://127.0.0.1:9/mcp');
    expect(await closed.send(request()).then((a) => isRefusal(a) && a.reason)).toBe('upstream_unreachable');
    await closed.close();
    answerWith = () => undefined; // never answers: the headers timeout fires
    expect(await upstream.send(request()).then((a) => isRefusal(a) && a.reason)).toBe('upstream_timeout');
  });

  it('cancels the upstream request when its cancellation is cancelled', async () => {
    let closed = false;
    answerWith = (req) => {
      req.socket.once('close', () => {
        closed = true;
      });
    };
    const cancellation = new Cancellation();
    const pending = upstream.send(request({ cancellation }));
    await new Promise((resolve) => setTimeout(resolve, 50));
    cancellation.cancel();
    expect(await pending.then((a) => isRefusal(a) && a.reason)).toBe('upstream_unreachable');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(closed).toBe(true);
  });

  it('refuses a redirect without reading its body, closing that connection (a trickling body holds nothing)', async () => {
    let closed = false;
    answerWith = (req, res) => {
      req.socket.once('close', () => {
        closed = true;
      });
      res.writeHead(302, { location: 'http://elsewhere/', 'content-type': 'text/plain' });
      res.write('never ');
      // The body never ends: read to its end, it would hold the pooled connection.
    };
    const answer = await upstream.send(request());
    expect(isRefusal(answer) && answer.reason).toBe('upstream_rejected');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(closed).toBe(true);
  });

  it('aborts the upstream request when the gateway stops reading the body, and ends it cleanly when read', async () => {
    let closed = false;
    answerWith = (req, res) => {
      req.socket.once('close', () => {
        closed = true;
      });
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: {}\n\n');
    };
    const answer = (await upstream.send(request())) as UpstreamAnswer;
    expect(answer.status).toBe(200);
    answer.body.destroy();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(closed).toBe(true);

    answerWith = (_, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"jsonrpc":"2.0","id":1,"result":{}}');
    };
    const whole = (await upstream.send(request())) as UpstreamAnswer;
    let text = '';
    for await (const chunk of whole.body) text += chunk;
    expect(text).toBe('{"jsonrpc":"2.0","id":1,"result":{}}');
  });
});
