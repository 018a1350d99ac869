import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { isRefusal, refuse } from '../../../src/errors.js';
import type { CompiledRoute } from '../../../src/server/router.js';
import { createSending } from '../../../src/upstream/send.js';
import type { Upstream, UpstreamRequest } from '../../../src/upstream/upstream.js';
import { onExchange, testRouter } from '../../support/exchange.js';

/** The test route with its upstream replaced by one that records what it is sent. */
function recording(answer: (request: UpstreamRequest) => ReturnType<Upstream['send']>): {
  route: CompiledRoute;
  sent: UpstreamRequest[];
} {
  const sent: UpstreamRequest[] = [];
  const base = testRouter().routes[0]!;
  const upstream: Upstream = {
    send: (request) => {
      sent.push(request);
      return answer(request);
    },
    close: async () => undefined,
  };
  return { route: { ...base, upstream }, sent };
}

const send = createSending({ proto: 'https' });

describe('createSending: the send stage', () => {
  it('hands the upstream the parsed body, its text, the identity and headers without the credential', async () => {
    const { route, sent } = recording(async () => ({ status: 200, headers: {}, body: new PassThrough() }));
    const { result, exchange } = await onExchange(
      route,
      (ex) => {
        ex.body = { batch: false, forward: '{"jsonrpc":"2.0","id":1,"method":"ping"}', messages: [] };
        return send(ex);
      },
      {
        method: 'POST',
        body: '{}',
        headers: { authorization: 'Bearer secret', 'x-api-key': 'k', 'mcp-method': 'ping' },
      },
    );
    expect(isRefusal(result)).toBe(false);
    const [request] = sent;
    expect(request?.text).toBe('{"jsonrpc":"2.0","id":1,"method":"ping"}');
    expect(request?.identity.key).toBe('apiKey:reader');
    expect(request?.headers).toMatchObject({ 'mcp-method': 'ping', 'x-forwarded-proto': 'https' });
    expect(request?.headers.authorization).toBeUndefined();
    expect(request?.headers['x-api-key']).toBeUndefined();
    expect(exchange.upstreamStatus).toBe(200);
    expect(exchange.upstreamMs).toBeGreaterThanOrEqual(0);
  });

  it('names the upstream failure for the metrics and returns its refusal', async () => {
    const { route } = recording(async () => refuse('upstream_timeout'));
    const { result, exchange } = await onExchange(route, send);
    expect(isRefusal(result) && result.reason).toBe('upstream_timeout');
    expect(exchange.upstreamError).toBe('timeout');
    expect(exchange.upstreamStatus).toBeUndefined();
  });

  it('lets the exchange cancel the upstream work through the cancellation it sent', async () => {
    const { route, sent } = recording(async () => ({ status: 200, headers: {}, body: new PassThrough() }));
    const { exchange } = await onExchange(route, send, { method: 'GET' });
    expect(sent[0]?.method).toBe('GET');
    expect(sent[0]?.text).toBeUndefined();
    expect(sent[0]?.cancellation).toBe(exchange.cancellation);
  });
});
