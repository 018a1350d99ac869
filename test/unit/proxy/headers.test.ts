import type { IncomingHttpHeaders } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  clientResponseHeaders,
  compileUpstreamHeaders,
  type ForwardingContext,
  NOT_A_PAGE,
  upstreamRequestHeaders,
} from '../../../src/proxy/headers.js';

const ctx: ForwardingContext = { peer: '198.51.100.7', proto: 'https' };
const route = { resource: 'https://mcp.example.com:8443/files/mcp', upstreamHeaders: {} };
const plan = compileUpstreamHeaders(route);
const build = (incoming: IncomingHttpHeaders, context: ForwardingContext = ctx) =>
  upstreamRequestHeaders(incoming, plan, context);

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

/** The allow-list, and what the gateway adds itself. */
const FORWARDED = [
  'content-type',
  'accept',
  'mcp-protocol-version',
  'mcp-method',
  'mcp-name',
  'mcp-param-region',
  'last-event-id',
  'traceparent',
  'tracestate',
  'user-agent',
];
const GATEWAY_OWN = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'accept-encoding'];

describe('upstreamRequestHeaders: an allow-list', () => {
  it('forwards exactly the allow-listed headers and the gateway’s own', () => {
    expect(Object.keys(build(clientHeaders)).sort()).toEqual([...FORWARDED, ...GATEWAY_OWN].sort());
  });

  it.each([
    ['Authorization', 'authorization', 'Bearer client-token'],
    ['X-API-Key', 'x-api-key', 'pk_live_secret'],
    ['Cookie', 'cookie', 'session=abc'],
    ['Proxy-Authorization', 'proxy-authorization', 'Basic eDp5'],
    ['X-Remote-User', 'x-remote-user', 'admin'],
    ['X-Client-Cert', 'x-client-cert', 'MIIB...'],
    ['X-Original-URL', 'x-original-url', '/admin'],
    ['X-HTTP-Method-Override', 'x-http-method-override', 'DELETE'],
    ['Forwarded', 'forwarded', 'for=1.2.3.4;host=evil.example'],
    ['X-Real-IP', 'x-real-ip', '1.2.3.4'],
    ['Accept-Encoding', 'accept-encoding', 'gzip, br'],
    ['Content-Encoding', 'content-encoding', 'gzip'],
    ['Expect', 'expect', '100-continue'],
  ])('drops the client’s %s', (_, name, value) => {
    const out = build({ ...clientHeaders, [name]: value });
    expect(Object.values(out)).not.toContain(value);
  });

  it.each([
    'connection',
    'keep-alive',
    'proxy-connection',
    'te',
    'trailer',
    'transfer-encoding',
    'upgrade',
    'host',
    'content-length',
  ])('drops %s, which belongs to the client’s connection or message', (name) => {
    expect(build({ ...clientHeaders, [name]: 'x' })).not.toHaveProperty(name);
  });

  it('drops any header that is not on the list, whatever it is called', () => {
    fc.assert(
      fc.property(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), (name) => {
        fc.pre(!FORWARDED.includes(name) && !name.startsWith('mcp-param-'));
        const out = build({ ...clientHeaders, [name]: 'client-chose-this' });
        return !Object.values(out).includes('client-chose-this');
      }),
    );
  });

  it('forwards any Mcp-Param-* header', () => {
    fc.assert(
      fc.property(
        fc.stringMatching(/^[a-z0-9-]{1,20}$/),
        fc.stringMatching(/^[!-~]{0,30}$/),
        (suffix, value) => {
          const name = `mcp-param-${suffix}`;
          return build({ [name]: value })[name] === value;
        },
      ),
    );
  });

  it('drops an allowed header the client named in Connection (hop-by-hop), case-insensitively', () => {
    const out = build({ ...clientHeaders, connection: 'keep-alive, User-Agent , x-other' });
    expect(out).not.toHaveProperty('user-agent');
    expect(out).toHaveProperty('mcp-method', 'tools/call');
  });

  it('joins a repeated allowed header into one value', () => {
    const out = build({ tracestate: ['a=1', 'b=2'] } as IncomingHttpHeaders);
    expect(out.tracestate).toBe('a=1, b=2');
  });

  it('adds the route’s forwardHeaders to the list, by any case', () => {
    const own = compileUpstreamHeaders({ ...route, forwardHeaders: ['X-Tenant', 'baggage'] });
    const out = upstreamRequestHeaders(
      { ...clientHeaders, 'x-tenant': 't1', baggage: 'k=v', 'x-other': '1' },
      own,
      ctx,
    );
    expect(out['x-tenant']).toBe('t1');
    expect(out.baggage).toBe('k=v');
    expect(out).not.toHaveProperty('x-other');
  });
});

describe('upstreamRequestHeaders: sessions', () => {
  it('never forwards the client’s (sealed) session id; sends the unsealed upstream id it is given', () => {
    expect(build(clientHeaders)).not.toHaveProperty('mcp-session-id');
    expect(build(clientHeaders, { ...ctx, sessionId: 'upstream-42' })['mcp-session-id']).toBe('upstream-42');
  });
});

describe('upstreamRequestHeaders: the gateway’s own headers', () => {
  it('sets X-Forwarded-For and -Proto from the connection, -Host from the route’s public URL', () => {
    const out = build({ ...clientHeaders, host: 'attacker.example', 'x-forwarded-host': 'evil.example' });
    expect(out['x-forwarded-for']).toBe('198.51.100.7');
    expect(out['x-forwarded-proto']).toBe('https');
    expect(out['x-forwarded-host']).toBe('mcp.example.com:8443');
  });

  it('appends the client address to a chain received from a trusted proxy, never the raw header', () => {
    const out = build(
      { ...clientHeaders, 'x-forwarded-for': 'ignored-raw-header' },
      { peer: '10.0.0.5', forwardedFor: '203.0.113.9', proto: 'http' },
    );
    expect(out['x-forwarded-for']).toBe('203.0.113.9, 10.0.0.5');
    expect(out['x-forwarded-proto']).toBe('http');
  });

  it('asks the upstream for an uncompressed answer, whatever the client or the route says', () => {
    const own = compileUpstreamHeaders({ ...route, upstreamHeaders: { 'Accept-Encoding': 'gzip' } });
    expect(upstreamRequestHeaders({ 'accept-encoding': 'br' }, own, ctx)['accept-encoding']).toBe('identity');
  });

  it('adds upstreamHeaders, which win over anything the client sent', () => {
    const own = compileUpstreamHeaders({
      ...route,
      upstreamHeaders: { Authorization: 'Bearer upstream-token', 'X-Forwarded-Proto': 'https-from-route' },
    });
    const out = upstreamRequestHeaders({ ...clientHeaders, authorization: 'Bearer client-token' }, own, ctx);
    expect(out.authorization).toBe('Bearer upstream-token');
    expect(out['x-forwarded-proto']).toBe('https-from-route');
  });

  it('never forwards the client’s Authorization or X-API-Key, whatever else is sent', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9-]{0,12}$/), fc.string(), { maxKeys: 6 }),
        fc.string({ minLength: 1 }),
        (extra, secret) => {
          const token = `secret-${secret}`;
          const out = build({ ...extra, authorization: `Bearer ${token}`, 'x-api-key': token });
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
      ...NOT_A_PAGE,
    });
  });

  it('says every answer is not a page, in place of the upstream’s own CSP and nosniff', () => {
    const out = clientResponseHeaders({
      'content-type': 'text/html',
      'content-security-policy': "script-src 'unsafe-inline'",
      'content-security-policy-report-only': 'default-src *',
      'x-content-type-options': 'sniff-away',
    });
    expect(out).toEqual({ 'content-type': 'text/html', ...NOT_A_PAGE });
    expect(NOT_A_PAGE['content-security-policy']).toContain('sandbox');
  });
});
