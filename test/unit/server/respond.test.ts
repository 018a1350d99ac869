/** The gateway's own answers (refusals, CORS preflights, RFC 9728 metadata), read off a real socket. */
import { Agent, createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { refuse } from '../../../src/errors.js';
import { corsHeaders, sendMetadata, sendPreflight, sendRefusal } from '../../../src/server/respond.js';
import { type RawAnswer, rawRequest } from '../../support/raw-http.js';

type Answer = RawAnswer;

/** Serves one request with `write` on a loopback server and returns what the client received. */
async function answerOf(write: (res: ServerResponse) => void): Promise<Answer> {
  const server = createServer((_req, res) => write(res));
  // A keep-alive client, as a real one is: `Connection: close` must come from the answer alone.
  const agent = new Agent({ keepAlive: true });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await rawRequest({ host: '127.0.0.1', port, path: '/mcp', method: 'POST', agent });
  } finally {
    agent.destroy();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('sendRefusal', () => {
  it('answers the catalogue status with a JSON-RPC error per refused id, never cached', async () => {
    const answer = await answerOf((res) =>
      sendRefusal(res, refuse('insufficient_scope', { ids: [7], data: { requiredScopes: ['a:b'] } }), {
        requestId: 'req-1',
      }),
    );
    expect(answer.status).toBe(403);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.headers['cache-control']).toBe('no-store');
    expect(answer.headers['x-request-id']).toBe('req-1');
    expect(Number(answer.headers['content-length'])).toBe(Buffer.byteLength(answer.body));
    expect(JSON.parse(answer.body)).toMatchObject({
      jsonrpc: '2.0',
      id: 7,
      error: { data: { reason: 'insufficient_scope', requiredScopes: ['a:b'] } },
    });
    // No CORS header without an accepted origin, and the connection stays open.
    expect(answer.headers['access-control-allow-origin']).toBeUndefined();
    expect(answer.headers.connection).not.toBe('close');
  });

  it('carries the refusal’s own headers (a challenge) and CORS headers for an accepted origin', async () => {
    const challenge = 'Bearer error="invalid_token"';
    const answer = await answerOf((res) =>
      sendRefusal(res, refuse('invalid_credential', { headers: { 'www-authenticate': challenge } }), {
        requestId: 'req-2',
        origin: 'https://app.example.com',
      }),
    );
    expect(answer.status).toBe(401);
    expect(answer.headers['www-authenticate']).toBe(challenge);
    expect(answer.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(answer.headers['access-control-expose-headers']).toContain('WWW-Authenticate');
    expect(answer.headers.vary).toBe('Origin');
    expect(JSON.parse(answer.body)).toMatchObject({
      id: null,
      error: { data: { reason: 'invalid_credential' } },
    });
  });

  it('asks for the connection to close when told to (a body left unread)', async () => {
    const answer = await answerOf((res) =>
      sendRefusal(res, refuse('body_too_large'), { requestId: 'req-3', close: true }),
    );
    expect(answer.status).toBe(413);
    expect(answer.headers.connection).toBe('close');
  });
});

describe('corsHeaders', () => {
  it('is empty without an origin', () => {
    expect(corsHeaders(undefined)).toEqual({});
  });

  it('exposes the headers a browser client must read', () => {
    const headers = corsHeaders('https://app.example.com');
    expect(headers['access-control-allow-origin']).toBe('https://app.example.com');
    const exposed = String(headers['access-control-expose-headers']).split(', ');
    for (const name of [
      'Mcp-Session-Id',
      'MCP-Protocol-Version',
      'WWW-Authenticate',
      'Retry-After',
      'RateLimit',
    ])
      expect(exposed).toContain(name);
  });
});

describe('sendPreflight', () => {
  const allowedOf = (answer: Answer) => String(answer.headers['access-control-allow-headers']).split(', ');

  it('answers 204 with the methods, the known headers and a 10-minute max-age', async () => {
    const answer = await answerOf((res) => sendPreflight(res, 'https://app.example.com', undefined));
    expect(answer.status).toBe(204);
    expect(answer.body).toBe('');
    expect(answer.headers['access-control-allow-origin']).toBe('https://app.example.com');
    expect(answer.headers['access-control-allow-methods']).toBe('GET, POST, DELETE');
    expect(answer.headers['access-control-max-age']).toBe('600');
    expect(allowedOf(answer)).toEqual(expect.arrayContaining(['authorization', 'mcp-method', 'mcp-name']));
  });

  it('adds requested Mcp-Param-* headers, lower-cased, and nothing else that was requested', async () => {
    const answer = await answerOf((res) =>
      sendPreflight(res, 'https://app.example.com', ' Mcp-Param-Region , X-Evil, cookie,mcp-param-a b'),
    );
    const allowed = allowedOf(answer);
    expect(allowed).toContain('mcp-param-region');
    expect(allowed).not.toContain('x-evil');
    expect(allowed).not.toContain('cookie');
    expect(allowed).not.toContain('mcp-param-a b');
    // A known header requested again is listed once.
    const again = allowedOf(
      await answerOf((res) => sendPreflight(res, 'https://a.example', 'Authorization')),
    );
    expect(again.filter((name) => name === 'authorization')).toHaveLength(1);
  });
});

describe('sendMetadata', () => {
  it('serves the document as public, cacheable JSON readable from any origin', async () => {
    const document = JSON.stringify({ resource: 'https://mcp.example.com/mcp', authorization_servers: [] });
    const answer = await answerOf((res) => sendMetadata(res, document));
    expect(answer.status).toBe(200);
    expect(answer.body).toBe(document);
    expect(answer.headers['content-type']).toBe('application/json');
    expect(answer.headers['cache-control']).toBe('public, max-age=300');
    expect(answer.headers['access-control-allow-origin']).toBe('*');
  });
});
