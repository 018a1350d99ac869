/**
 * Every refusal the core gateway gives, through real sockets: the status, the JSON-RPC error and
 * its reason, the headers the refusal table lists — and proof that the upstream saw nothing.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { META, modernHeaders } from '../support/wire.js';

let upstream: Peer;
let gateway: TestGateway;
let url: string;
let seen = 0;

beforeAll(async () => {
  upstream = await startV2Server({ response: 'json' });
  gateway = await startTestGateway({
    routes: [{ upstream: upstream.url, extra: '    allowedOrigins: [https://app.example.com]\n' }],
    top: 'limits: { maxBodyBytes: 2048, drainTimeoutMs: 2000 }',
  });
  url = `${gateway.url}/mcp`;
});
afterAll(async () => {
  await gateway.close();
  await upstream.close();
});
afterEach(() => {
  seen = upstream.requests.length;
});

function toolCall(name: string, id: number | string = 1): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: { name, arguments: { text: 'x' }, _meta: META },
  });
}

async function expectRefused(
  answer: Response,
  status: number,
  reason: string,
  code: number,
  id: string | number | null = null,
): Promise<void> {
  expect(answer.status).toBe(status);
  const body = (await answer.json()) as {
    jsonrpc: string;
    id: unknown;
    error: { code: number; data: { reason: string } };
  };
  expect(body).toMatchObject({ jsonrpc: '2.0', id, error: { code, data: { reason } } });
  expect(upstream.requests.length, 'the upstream must see nothing').toBe(seen);
}

describe('routing and guard', () => {
  it('answers 404 for any path but the exact route, without normalization', async () => {
    for (const path of ['/', '/mcp/', '/MCP', '/mcp;x', '/%6Dcp', '/other']) {
      const answer = await fetch(`${gateway.url}${path}`, {
        method: 'POST',
        headers: modernHeaders('tools/call', 'echo'),
        body: toolCall('echo'),
      });
      expect(answer.status, path).toBe(404);
      expect(await answer.json()).toEqual({ error: 'not_found', message: 'Not found' });
    }
    expect(upstream.requests.length).toBe(seen);
  });

  it('answers 405 with Allow for other HTTP methods', async () => {
    const answer = await fetch(url, { method: 'PUT', headers: modernHeaders('tools/call'), body: '{}' });
    expect(answer.headers.get('allow')).toBe('GET, POST, DELETE, OPTIONS');
    await expectRefused(answer, 405, 'method_not_allowed', -32600);
  });

  it('refuses a POST that is not application/json with 415', async () => {
    const answer = await fetch(url, {
      method: 'POST',
      headers: { ...modernHeaders('tools/call', 'echo'), 'content-type': 'text/plain' },
      body: toolCall('echo'),
    });
    await expectRefused(answer, 415, 'unsupported_media_type', -32600);
  });

  it('refuses any Content-Encoding with 415 rather than forwarding an unread body', async () => {
    const answer = await fetch(url, {
      method: 'POST',
      headers: { ...modernHeaders('tools/call', 'echo'), 'content-encoding': 'gzip' },
      body: toolCall('echo'),
    });
    await expectRefused(answer, 415, 'encoded_body', -32600);
  });

  it('refuses a body over maxBodyBytes with 413', async () => {
    const big = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: 'echo', arguments: { text: 'x'.repeat(4096) }, _meta: META },
    });
    const answer = await fetch(url, {
      method: 'POST',
      headers: modernHeaders('tools/call', 'echo'),
      body: big,
    });
    await expectRefused(answer, 413, 'body_too_large', -32600);
  });

  it('refuses an Origin that is not listed with 403, and answers a listed origin’s preflight', async () => {
    const denied = await fetch(url, {
      method: 'POST',
      headers: { ...modernHeaders('tools/call', 'echo'), origin: 'https://evil.example' },
      body: toolCall('echo'),
    });
    await expectRefused(denied, 403, 'origin_not_allowed', -32600);

    const preflight = await fetch(url, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://app.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, mcp-method, mcp-param-region',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
    expect(preflight.headers.get('access-control-allow-headers')).toContain('mcp-param-region');

    const allowed = await fetch(url, {
      method: 'POST',
      headers: { ...modernHeaders('tools/call', 'echo'), origin: 'https://app.example.com' },
      body: toolCall('echo'),
    });
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://app.example.com');
  });

  it('refuses credentials in the query string with 400', async () => {
    const answer = await fetch(`${url}?access_token=abc`, {
      method: 'POST',
      headers: modernHeaders('tools/call', 'echo'),
      body: toolCall('echo'),
    });
    await expectRefused(answer, 400, 'credential_in_query', -32600);
  });

  it('refuses a presented credential on an anonymous route with 401, never falling through to anonymous', async () => {
    for (const credential of [{ authorization: 'Bearer abc' }, { 'x-api-key': 'abc' }]) {
      const answer = await fetch(url, {
        method: 'POST',
        headers: { ...modernHeaders('tools/call', 'echo'), ...credential },
        body: toolCall('echo'),
      });
      expect(answer.headers.get('www-authenticate')).toContain('invalid_token');
      await expectRefused(answer, 401, 'invalid_credential', -31091);
    }
  });
});

describe('JSON-RPC parsing', () => {
  const post = (body: string, headers: Record<string, string> = modernHeaders('tools/call', 'echo')) =>
    fetch(url, { method: 'POST', headers, body });

  it('refuses malformed JSON with -32700', async () => {
    await expectRefused(await post('{"jsonrpc":"2.0",'), 400, 'parse_error', -32700);
  });

  it('refuses duplicate keys, which two parsers could read differently', async () => {
    const body = `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","name":"delete_everything","arguments":{},"_meta":${JSON.stringify(META)}}}`;
    await expectRefused(await post(body), 400, 'parse_error', -32700, 7);
  });

  it('refuses an integer that would not survive re-serialization', async () => {
    const body = `{"jsonrpc":"2.0","id":9007199254740993,"method":"tools/call","params":{"name":"echo","_meta":${JSON.stringify(META)}}}`;
    await expectRefused(await post(body), 400, 'unsafe_number', -32600);
  });

  it('refuses a batch outside 2025-03-26 and forwards one in 2025-03-26', async () => {
    const batch = JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'ping' },
      { jsonrpc: '2.0', id: 2, method: 'ping' },
    ]);
    const legacy = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const refused = await post(batch, { ...legacy, 'mcp-protocol-version': '2025-11-25' });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject([
      { id: 1, error: { code: -32600, data: { reason: 'invalid_request' } } },
      { id: 2, error: { code: -32600, data: { reason: 'invalid_request' } } },
    ]);
    expect(upstream.requests.length).toBe(seen);

    await post(batch, { ...legacy, 'mcp-protocol-version': '2025-03-26' });
    expect(upstream.requests.length).toBe(seen + 1);
    expect(upstream.requests.at(-1)?.body).toEqual(JSON.parse(batch));
  });

  it('refuses a modern request without _meta protocolVersion with -32602', async () => {
    const body = JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'echo' } });
    await expectRefused(await post(body), 400, 'invalid_params', -32602, 3);
  });

  it('refuses mirrored headers that disagree with the body with -32020', async () => {
    await expectRefused(
      await post(toolCall('echo', 4), modernHeaders('tools/call', 'add')),
      400,
      'header_mismatch',
      -32020,
      4,
    );
    await expectRefused(
      await post(toolCall('echo', 5), modernHeaders('tools/list', 'echo')),
      400,
      'header_mismatch',
      -32020,
      5,
    );
    const { 'mcp-method': _, ...noMethod } = modernHeaders('tools/call', 'echo');
    await expectRefused(await post(toolCall('echo', 6), noMethod), 400, 'header_mismatch', -32020, 6);
    await expectRefused(
      await post(toolCall('echo', 7), {
        ...modernHeaders('tools/call', 'echo'),
        'mcp-protocol-version': '2026-12-01',
      }),
      400,
      'header_mismatch',
      -32020,
      7,
    );
    // A modern body sent without MCP-Protocol-Version is not taken for a legacy one.
    const { 'mcp-protocol-version': __, ...noVersion } = modernHeaders('tools/call', 'echo');
    await expectRefused(await post(toolCall('echo', 8), noVersion), 400, 'header_mismatch', -32020, 8);
  });

  it('accepts the base64 form of Mcp-Name and forwards the re-serialized body', async () => {
    const encoded = `=?base64?${Buffer.from('echo').toString('base64')}?=`;
    const body = `{"jsonrpc":"2.0", "id":11,   "method":"tools/call","params":{"name":"echo","arguments":{"text":"caf\\u00e9"},"_meta":${JSON.stringify(META)}}}`;
    const answer = await post(body, { ...modernHeaders('tools/call', encoded), 'mcp-param-text': 'x' });
    expect(answer.status).toBe(200);
    const received = upstream.requests.at(-1)!;
    expect(received.body).toEqual(JSON.parse(body));
    expect(received.headers['mcp-name']).toBe(encoded);
    expect(received.headers['mcp-param-text']).toBe('x');
  });
});

describe('audit of refusals', () => {
  it('writes one record per refusal with its reason and no credential', async () => {
    await fetch(url, {
      method: 'POST',
      headers: { ...modernHeaders('tools/call', 'echo'), authorization: 'Bearer secret-token-value' },
      body: toolCall('echo', 42),
    });
    const records = await gateway.auditRecords();
    const record = records.find((r) => r.reason === 'invalid_credential');
    expect(record).toMatchObject({ route: '/mcp', decision: 'deny', status: 401, upstreamStatus: null });
    expect(JSON.stringify(records)).not.toContain('secret-token-value');
  });
});
