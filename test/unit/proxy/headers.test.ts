import type { IncomingHttpHeaders } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  clientResponseHeaders,
  type ForwardingContext,
  upstreamRequestHeaders,
} from '../../../src/proxy/headers.js';

const ctx: ForwardingContext = { peer: '198.51.100.7', proto: 'https' };

/** What a typical modern MCP client sends, as node:http presents it (lower-case names). */
const clientHeaders: IncomingHttpHeaders = {
  host: 'gateway.example.com',
  'content-type': 'application/json',
  'content-length': '120',
  accept: 'application/json, text/event-stream',
  'mcp-session-id': 'sealed-id',
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'tools/call',
  'mcp-name': 'read_file',
  'mcp-param-region': 'us-west1',
  'last-event-id': 'evt-42',
  traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
  tracestate: 'vendor=1',
  'user-agent': 'mcp-client/1.0',
};

describe('upstreamRequestHeaders: what never reaches the upstream', () => {
  it.each([
    ['Authorization', 'authorization', 'Bearer client-token'],
    ['X-API-Key', 'x-api-key', 'pk_live_secret'],
    ['Cookie', 'cookie', 'session=abc'],
    ['Proxy-Authorization', 'proxy-authorization', 'Basic eDp5'],
  ])('drops the client credential header %s', (_, name, value) => {
    const out = upstreamRequestHeaders({ ...clientHeaders, [name]: value }, {}, ctx);
    expect(out).not.toHaveProperty(name);
    expect(Object.values(out)).not.toContain(value);
  });

  it.each(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'])(
    'drops the hop-by-hop header %s',
    (name) => {
      const out = upstreamRequestHeaders({ ...clientHeaders, [name]: 'x' }, {}, ctx);
      expect(out).not.toHaveProperty(name);
    },
  );

  it('drops Host, Content-Length and Expect, which belong to the new request', () => {
    const out = upstreamRequestHeaders({ ...clientHeaders, expect: '100-continue' }, {}, ctx);
    expect(out).not.toHaveProperty('host');
    expect(out).not.toHaveProperty('content-length');
    expect(out).not.toHaveProperty('expect');
  });

  it('drops headers named in Connection, case-insensitively', () => {
    const out = upstreamRequestHeaders(
      {
        ...clientHeaders,
        connection: 'keep-alive, X-Internal-Hop , x-other',
        'x-internal-hop': '1',
        'x-other': '2',
      },
      {},
      ctx,
    );
    expect(out).not.toHaveProperty('x-internal-hop');
    expect(out).not.toHaveProperty('x-other');
    expect(out).toHaveProperty('mcp-method', 'tools/call');
  });

  it('drops a single header named in Connection', () => {
    const out = upstreamRequestHeaders(
      { ...clientHeaders, connection: 'x-secret', 'x-secret': '1' },
      {},
      ctx,
    );
    expect(out).not.toHaveProperty('x-secret');
  });

  it.each([
    'forwarded',
    'x-forwarded-for',
    'x-forwarded-host',
    'x-forwarded-proto',
    'x-forwarded-port',
    'x-real-ip',
  ])('never relays the client’s own %s', (name) => {
    const out = upstreamRequestHeaders({ ...clientHeaders, [name]: 'spoofed' }, {}, ctx);
    expect(out[name]).not.toBe('spoofed');
    expect(out[name] ?? '').not.toContain('spoofed');
  });

  it.each(['x-forwarded-client-cert', 'x-forwarded-user', 'x-forwarded-prefix'])(
    'never relays a client-sent %s (every X-Forwarded-* is the gateway’s)',
    (name) => {
      const out = upstreamRequestHeaders({ ...clientHeaders, [name]: 'spoofed' }, {}, ctx);
      expect(out).not.toHaveProperty(name);
    },
  );

  it('never relays any client-sent X-Forwarded-* value, whatever the suffix', () => {
    const suffix = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
    fc.assert(
      fc.property(suffix, (s) => {
        const name = `x-forwarded-${s}`;
        const out = upstreamRequestHeaders({ ...clientHeaders, [name]: 'spoofed' }, {}, ctx);
        return !Object.values(out).some((value) => value.includes('spoofed'));
      }),
    );
  });
});

describe('upstreamRequestHeaders: sessions', () => {
  it('never forwards the client’s (sealed) session id; sends the unsealed upstream id it is given', () => {
    expect(upstreamRequestHeaders(clientHeaders, {}, ctx)).not.toHaveProperty('mcp-session-id');
    const out = upstreamRequestHeaders(clientHeaders, {}, { ...ctx, sessionId: 'upstream-42' });
    expect(out['mcp-session-id']).toBe('upstream-42');
  });
});

describe('upstreamRequestHeaders: what passes through', () => {
  it.each([
    'mcp-protocol-version',
    'mcp-method',
    'mcp-name',
    'mcp-param-region',
    'last-event-id',
    'accept',
    'content-type',
    'traceparent',
    'tracestate',
    'user-agent',
  ])('forwards %s unchanged', (name) => {
    const out = upstreamRequestHeaders(clientHeaders, {}, ctx);
    expect(out[name]).toBe(clientHeaders[name]);
  });

  it('forwards any Mcp-Param-* header', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9-]{1,20}$/),
        fc.stringMatching(/^[!-~]{0,30}$/),
        (suffix, value) => {
          const name = `mcp-param-${suffix}`;
          return upstreamRequestHeaders({ [name]: value }, {}, ctx)[name] === value;
        },
      ),
    );
  });

  it('joins a repeated header into one value', () => {
    const out = upstreamRequestHeaders({ 'x-multi': ['a', 'b'] } as IncomingHttpHeaders, {}, ctx);
    expect(out['x-multi']).toBe('a, b');
  });

  it('keeps headers when Connection is only keep-alive or close', () => {
    for (const connection of ['keep-alive', 'close', 'Keep-Alive']) {
      const out = upstreamRequestHeaders({ ...clientHeaders, connection }, {}, ctx);
      expect(out['mcp-protocol-version']).toBe(clientHeaders['mcp-protocol-version']);
      expect(out).not.toHaveProperty('connection');
    }
  });
});

describe('upstreamRequestHeaders: the gateway’s own headers', () => {
  it('sets X-Forwarded-For, -Proto and -Host from the connection', () => {
    const out = upstreamRequestHeaders(clientHeaders, {}, ctx);
    expect(out['x-forwarded-for']).toBe('198.51.100.7');
    expect(out['x-forwarded-proto']).toBe('https');
    expect(out['x-forwarded-host']).toBe('gateway.example.com');
  });

  it('appends the client address to a chain received from a trusted proxy', () => {
    const out = upstreamRequestHeaders(
      { ...clientHeaders, 'x-forwarded-for': 'ignored-raw-header' },
      {},
      { peer: '10.0.0.5', forwardedFor: '203.0.113.9', proto: 'http' },
    );
    expect(out['x-forwarded-for']).toBe('203.0.113.9, 10.0.0.5');
    expect(out['x-forwarded-proto']).toBe('http');
  });

  it('sets no X-Forwarded-Host when the request has no Host', () => {
    const { host: _host, ...withoutHost } = clientHeaders;
    const out = upstreamRequestHeaders(withoutHost, {}, ctx);
    expect(out).not.toHaveProperty('x-forwarded-host');
  });

  it('adds upstreamHeaders, which win over anything the client sent', () => {
    const out = upstreamRequestHeaders(
      { ...clientHeaders, authorization: 'Bearer client-token', 'x-tenant': 'client-choice' },
      { authorization: 'Bearer upstream-token', 'x-tenant': 'route-choice', 'x-extra': '1' },
      ctx,
    );
    expect(out.authorization).toBe('Bearer upstream-token');
    expect(out['x-tenant']).toBe('route-choice');
    expect(out['x-extra']).toBe('1');
  });

  it('lets upstreamHeaders override the gateway’s forwarding headers', () => {
    const out = upstreamRequestHeaders(clientHeaders, { 'x-forwarded-proto': 'https-from-route' }, ctx);
    expect(out['x-forwarded-proto']).toBe('https-from-route');
  });

  it('never forwards the client’s Authorization or X-API-Key, whatever else is sent', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/), fc.string(), { maxKeys: 6 }),
        fc.string({ minLength: 1 }),
        (extra, secret) => {
          const token = `secret-${secret}`;
          const out = upstreamRequestHeaders(
            { ...extra, authorization: `Bearer ${token}`, 'x-api-key': token },
            {},
            ctx,
          );
          return !('authorization' in out) && !('x-api-key' in out);
        },
      ),
    );
  });
});

describe('clientResponseHeaders', () => {
  const upstream = {
    'content-type': 'text/event-stream',
    'cache-control': 'no-cache',
    'mcp-session-id': 'upstream-session',
    'x-accel-buffering': 'no',
    connection: 'keep-alive',
    'keep-alive': 'timeout=5',
    'transfer-encoding': 'chunked',
    upgrade: 'h2c',
    'proxy-authenticate': 'Basic realm="x"',
    trailer: 'x-checksum',
    te: 'trailers',
    'www-authenticate': 'Bearer resource_metadata="https://upstream.internal/.well-known/x"',
    'set-cookie': ['a=1', 'b=2'],
    'access-control-allow-origin': '*',
    'access-control-allow-credentials': 'true',
    'access-control-expose-headers': 'mcp-session-id',
  };

  it('relays the upstream’s content headers', () => {
    const out = clientResponseHeaders(upstream);
    expect(out['content-type']).toBe('text/event-stream');
    expect(out['cache-control']).toBe('no-cache');
    expect(out['x-accel-buffering']).toBe('no');
  });

  it.each([
    'connection',
    'keep-alive',
    'transfer-encoding',
    'upgrade',
    'proxy-authenticate',
    'trailer',
    'te',
  ])('drops the hop-by-hop header %s', (name) => {
    expect(clientResponseHeaders(upstream)).not.toHaveProperty(name);
  });

  it('drops the upstream’s WWW-Authenticate challenge, so it cannot send clients elsewhere', () => {
    expect(clientResponseHeaders(upstream)).not.toHaveProperty('www-authenticate');
  });

  it('drops the upstream’s Set-Cookie', () => {
    expect(clientResponseHeaders(upstream)).not.toHaveProperty('set-cookie');
  });

  it('drops the upstream’s CORS headers, which are the gateway’s to decide', () => {
    const out = clientResponseHeaders(upstream);
    expect(out).not.toHaveProperty('access-control-allow-origin');
    expect(out).not.toHaveProperty('access-control-allow-credentials');
    expect(out).not.toHaveProperty('access-control-expose-headers');
  });

  it('drops headers the upstream names in Connection', () => {
    const out = clientResponseHeaders({
      'content-type': 'application/json',
      connection: 'X-Upstream-Debug',
      'x-upstream-debug': '1',
    });
    expect(out).not.toHaveProperty('x-upstream-debug');
    expect(out['content-type']).toBe('application/json');
  });

  it('skips undefined values', () => {
    expect(clientResponseHeaders({ 'content-type': 'application/json', 'x-none': undefined })).toEqual({
      'content-type': 'application/json',
    });
  });
});
