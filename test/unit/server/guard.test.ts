import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isRefusal, REFUSALS, type Refusal, type RefusalReason } from '../../../src/errors.js';
import { ALLOW, type GuardResult, guardRequest } from '../../../src/server/guard.js';
import type { CompiledRoute } from '../../../src/server/router.js';

const LISTED = 'https://app.example.com';

/** The guard reads only `allowedOrigins` from the route. */
const route = { allowedOrigins: new Set([LISTED]) } as unknown as CompiledRoute;

/** The request line and headers, as node:http hands them over (lower-case names). */
function req(method: string, url: string, headers: IncomingHttpHeaders = {}): IncomingMessage {
  return { method, url, headers } as unknown as IncomingMessage;
}

const jsonPost = (headers: IncomingHttpHeaders = {}, url = '/mcp') =>
  req('POST', url, { 'content-type': 'application/json', 'content-length': '2', ...headers });

function refusalOf(result: GuardResult): Refusal {
  if (!isRefusal(result)) throw new Error(`expected a refusal, got ${result.kind}`);
  return result;
}

function expectRefused(result: GuardResult, reason: RefusalReason, status: number): Refusal {
  const refusal = refusalOf(result);
  expect(refusal.reason).toBe(reason);
  expect(REFUSALS[refusal.reason].status).toBe(status);
  return refusal;
}

describe('guardRequest: HTTP method', () => {
  it.each(['POST', 'GET', 'DELETE'] as const)('passes %s', (method) => {
    const headers: IncomingHttpHeaders = method === 'POST' ? { 'content-type': 'application/json' } : {};
    expect(guardRequest(req(method, '/mcp', headers), route)).toEqual({ kind: 'pass', method });
  });

  it.each(['PUT', 'PATCH', 'HEAD', 'CONNECT', 'TRACE', 'post', 'PROPFIND'])(
    'refuses %s with 405 and an Allow header',
    (method) => {
      const refusal = expectRefused(guardRequest(req(method, '/mcp'), route), 'method_not_allowed', 405);
      expect(refusal.headers?.allow).toBe(ALLOW);
      expect(ALLOW.split(', ').sort()).toEqual(['DELETE', 'GET', 'OPTIONS', 'POST']);
    },
  );

  it('refuses OPTIONS without an Origin with 405 and Allow', () => {
    const refusal = expectRefused(guardRequest(req('OPTIONS', '/mcp'), route), 'method_not_allowed', 405);
    expect(refusal.headers?.allow).toBe(ALLOW);
  });

  it('answers OPTIONS from a listed origin as a preflight', () => {
    expect(guardRequest(req('OPTIONS', '/mcp', { origin: LISTED }), route)).toEqual({
      kind: 'preflight',
      origin: LISTED,
    });
  });

  it('refuses OPTIONS from an origin that is not listed with 403', () => {
    expectRefused(
      guardRequest(req('OPTIONS', '/mcp', { origin: 'https://evil.example' }), route),
      'origin_not_allowed',
      403,
    );
  });
});

describe('guardRequest: media type', () => {
  it.each([
    'application/json',
    'application/json; charset=utf-8',
    'application/json;charset=UTF-8',
    'Application/JSON',
    ' application/json ',
  ])('passes a POST with Content-Type %j', (contentType) => {
    expect(guardRequest(jsonPost({ 'content-type': contentType }), route)).toEqual({
      kind: 'pass',
      method: 'POST',
    });
  });

  it.each([
    'text/plain',
    'text/json',
    'application/x-www-form-urlencoded',
    'multipart/form-data; boundary=x',
    'application/json-seq',
    'application/jsonx',
    'application/json, text/plain',
    'application/problem+json',
    '',
  ])('refuses a POST with Content-Type %j with 415', (contentType) => {
    expectRefused(
      guardRequest(jsonPost({ 'content-type': contentType }), route),
      'unsupported_media_type',
      415,
    );
  });

  it('refuses a POST without a Content-Type with 415', () => {
    expectRefused(
      guardRequest(req('POST', '/mcp', { 'content-length': '2' }), route),
      'unsupported_media_type',
      415,
    );
  });

  it('does not require a Content-Type on GET or DELETE', () => {
    expect(guardRequest(req('GET', '/mcp', { accept: 'text/event-stream' }), route)).toEqual({
      kind: 'pass',
      method: 'GET',
    });
    expect(guardRequest(req('DELETE', '/mcp', { 'content-type': 'text/plain' }), route)).toEqual({
      kind: 'pass',
      method: 'DELETE',
    });
  });

  it.each(['gzip', 'deflate', 'br', 'zstd', 'identity', 'gzip, gzip'])(
    'refuses a body with Content-Encoding %j with 415, never forwarding it unread',
    (encoding) => {
      expectRefused(guardRequest(jsonPost({ 'content-encoding': encoding }), route), 'encoded_body', 415);
    },
  );

  it('refuses Content-Encoding on a GET too', () => {
    expectRefused(
      guardRequest(req('GET', '/mcp', { 'content-encoding': 'gzip' }), route),
      'encoded_body',
      415,
    );
  });
});

describe('guardRequest: framing', () => {
  it('refuses Content-Length together with Transfer-Encoding with 400 bad_framing', () => {
    expectRefused(guardRequest(jsonPost({ 'transfer-encoding': 'chunked' }), route), 'bad_framing', 400);
  });

  it('passes a chunked POST without Content-Length', () => {
    const request = req('POST', '/mcp', {
      'content-type': 'application/json',
      'transfer-encoding': 'chunked',
    });
    expect(guardRequest(request, route)).toEqual({ kind: 'pass', method: 'POST' });
  });
});

describe('guardRequest: Origin', () => {
  it('passes a listed origin and reports it', () => {
    expect(guardRequest(jsonPost({ origin: LISTED }), route)).toEqual({
      kind: 'pass',
      method: 'POST',
      origin: LISTED,
    });
  });

  it.each([
    'https://evil.example',
    'null',
    'http://app.example.com',
    'https://app.example.com:8443',
    'https://app.example.com.evil.example',
    'https://APP.example.com',
    `${LISTED}/`,
    '',
  ])('refuses Origin %j with 403', (origin) => {
    expectRefused(guardRequest(jsonPost({ origin }), route), 'origin_not_allowed', 403);
  });

  it('refuses any origin on a route that lists none', () => {
    const closed = { allowedOrigins: new Set<string>() } as unknown as CompiledRoute;
    expectRefused(guardRequest(jsonPost({ origin: LISTED }), closed), 'origin_not_allowed', 403);
  });

  it('passes a request without an Origin (not a browser)', () => {
    expect(guardRequest(jsonPost(), route)).toEqual({ kind: 'pass', method: 'POST' });
  });
});

describe('guardRequest: credentials in the query string', () => {
  it.each([
    '/mcp?access_token=abc',
    '/mcp?api_key=abc',
    '/mcp?apikey=abc',
    '/mcp?api-key=abc',
    '/mcp?x-api-key=abc',
    '/mcp?token=abc',
    '/mcp?id_token=abc',
    '/mcp?key=abc',
    '/mcp?auth=abc',
    '/mcp?authorization=Bearer%20abc',
    '/mcp?bearer=abc',
    '/mcp?jwt=a.b.c',
    '/mcp?client_secret=abc',
    '/mcp?password=abc',
    '/mcp?secret=abc',
    '/mcp?ACCESS_TOKEN=abc',
    '/mcp?Api_Key=abc',
    '/mcp?x=1&access_token=abc',
    '/mcp?access%5Ftoken=abc',
    '/mcp?access_token',
    '/mcp?access_token=',
  ])('refuses %s with 400 credential_in_query', (url) => {
    expectRefused(guardRequest(jsonPost({}, url), route), 'credential_in_query', 400);
  });

  it('refuses a credential in the query of a GET too', () => {
    expectRefused(guardRequest(req('GET', '/mcp?access_token=abc'), route), 'credential_in_query', 400);
  });

  it.each(['/mcp', '/mcp?', '/mcp?x=1', '/mcp?tokens=1', '/mcp?q=access_token', '/mcp?page=2&sort=name'])(
    'passes %s, which carries no credential parameter',
    (url) => {
      expect(guardRequest(jsonPost({}, url), route)).toEqual({ kind: 'pass', method: 'POST' });
    },
  );

  it('refuses every credential parameter whatever its value and position', () => {
    const names = fc.constantFrom('access_token', 'api_key', 'token', 'key', 'password', 'client_secret');
    const other = fc.stringMatching(/^[a-z]{1,8}=[a-z0-9]{0,8}$/);
    fc.assert(
      fc.property(
        fc.array(other, { maxLength: 3 }),
        names,
        fc.string(),
        fc.nat(3),
        (params, name, value, at) => {
          const list = [...params];
          list.splice(Math.min(at, list.length), 0, `${name}=${encodeURIComponent(value)}`);
          const result = guardRequest(jsonPost({}, `/mcp?${list.join('&')}`), route);
          return isRefusal(result) && result.reason === 'credential_in_query';
        },
      ),
    );
  });
});
