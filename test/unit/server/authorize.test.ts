import { describe, expect, it } from 'vitest';
import { isRefusal } from '../../../src/errors.js';
import type { Parsed } from '../../../src/exchange.js';
import type { RpcMessage } from '../../../src/jsonrpc/parse.js';
import { createAuthorization } from '../../../src/server/authorize.js';
import { onExchange, testRouter } from '../../support/exchange.js';

const route = testRouter('    resources: { "file:///public/**": files:read }').routes[0]!;
const authorize = createAuthorization();
const parsed = (messages: RpcMessage[]) => (exchange: Parameters<Parameters<typeof onExchange>[1]>[0]) => {
  exchange.body = { batch: false, forward: JSON.stringify({ jsonrpc: '2.0', ...messages[0] }), messages };
  exchange.version = '2025-06-18';
  return authorize(exchange as Parsed);
};

describe('createAuthorization: the authorize stage', () => {
  it('decides every message and allows the exchange when policy allows them', async () => {
    const { result, exchange } = await onExchange(
      route,
      parsed([{ kind: 'request', id: 1, method: 'tools/call', params: { name: 'read_file' } }]),
    );
    expect(isRefusal(result)).toBe(false);
    expect(exchange.allowed).toBe(true);
    expect(exchange.decisions).toMatchObject([{ effect: 'allow', rule: 'tools."read_*"' }]);
  });

  it('refuses a denied call, keeping its decisions for the audit and leaving the exchange not allowed', async () => {
    const { result, exchange } = await onExchange(
      route,
      parsed([{ kind: 'request', id: 1, method: 'tools/call', params: { name: 'drop_table' } }]),
    );
    expect(isRefusal(result) && result.reason).toBe('method_denied');
    expect(exchange.allowed).toBe(false);
    expect(exchange.decisions).toMatchObject([{ effect: 'deny' }]);
  });

  it('puts the resource URI policy matched, canonical, into the body forwarded', async () => {
    const { exchange } = await onExchange(
      route,
      parsed([
        { kind: 'request', id: 1, method: 'resources/read', params: { uri: 'FILE:///public/%61.txt' } },
      ]),
    );
    expect(exchange.body?.forward).toContain('"uri":"file:///public/a.txt"');
    expect(exchange.body?.messages[0]).toMatchObject({ params: { uri: 'file:///public/a.txt' } });
  });
});
