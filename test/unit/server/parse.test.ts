import { describe, expect, it } from 'vitest';
import { isRefusal } from '../../../src/errors.js';
import { createParsing } from '../../../src/server/parse.js';
import { onExchange, testRouter } from '../../support/exchange.js';

const route = testRouter().routes[0]!;
const parse = createParsing({ maxBodyBytes: 1000, maxJsonDepth: 8 });
const post = (body: string, headers: Record<string, string> = {}): RequestInit => ({
  method: 'POST',
  body,
  headers: { 'content-type': 'application/json', ...headers },
});

describe('createParsing: the parse stage', () => {
  it('gives the exchange its parsed body and version', async () => {
    const { result, exchange } = await onExchange(
      route,
      parse,
      post('{"jsonrpc":"2.0","id":1,"method":"ping"}', { 'mcp-protocol-version': '2025-06-18' }),
    );
    expect(isRefusal(result)).toBe(false);
    expect(exchange.version).toBe('2025-06-18');
    expect(exchange.body?.messages).toEqual([{ kind: 'request', id: 1, method: 'ping' }]);
    expect(exchange.body?.forward).toBe('{"jsonrpc":"2.0","id":1,"method":"ping"}');
  });

  it('refuses a body over the limit, and one nested deeper than the bound', async () => {
    const large = await onExchange(route, parse, post(`{"a":"${'x'.repeat(2000)}"}`));
    expect(isRefusal(large.result) && large.result.reason).toBe('body_too_large');
    const deep = await onExchange(route, parse, post(`${'['.repeat(20)}${']'.repeat(20)}`));
    expect(isRefusal(deep.result) && deep.result.reason).toBe('too_deep');
  });

  it('keeps the parsed body on the exchange when the mirrored headers disagree with it', async () => {
    const { result, exchange } = await onExchange(
      route,
      parse,
      post('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"a"}}', { 'mcp-method': 'ping' }),
    );
    expect(isRefusal(result) && result.reason).toBe('header_mismatch');
    expect(exchange.body?.messages[0]).toMatchObject({ id: 7 });
  });
});
