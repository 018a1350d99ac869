/**
 * Rate-limit keys: every part a caller can influence (identity key, tool name, client address) is
 * escaped, so no two distinct (rule, identity, tool, client) tuples ever share a counter, and the
 * `{route}` hash tag is exactly the route whatever the parts hold.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import type { RpcMessage } from '../../../src/jsonrpc/parse.js';
import { createMemoryLimiter } from '../../../src/ratelimit/memory.js';
import { slotGroup } from '../../../src/ratelimit/redis.js';
import { compileRateLimits, keyPart } from '../../../src/ratelimit/rules.js';

function compile(rules: string, route = '/mcp') {
  const config = parseConfig(
    `identities: { anonymous: { scopes: [] } }
routes:
  - route: ${route}
    resource: http://127.0.0.1${route}
    upstream: http://127.0.0.1:1/mcp
    authentication: { methods: [anonymous] }
    rateLimits: ${rules}
    failMode: closed
`,
    { env: {} },
  );
  return compileRateLimits(config.routes[0]!);
}

const call = (name: string): RpcMessage => ({
  kind: 'request',
  id: 1,
  method: 'tools/call',
  params: { name },
});
const request = (method: string): RpcMessage => ({ kind: 'request', id: 1, method });

describe('compileRateLimits: keys never collide', () => {
  const perTool = compile('[{ per: identity+tool, limit: 1/hour }]');
  const keyOf = (identity: string, message: RpcMessage, client = '127.0.0.1') => {
    const [charge] = perTool([message], { identity, client });
    return charge!.key;
  };

  it('identity `a|b` calling `c` and identity `a` calling `b|c` are two counters', () => {
    expect(keyOf('apiKey:a|b', call('c'))).not.toBe(keyOf('apiKey:a', call('b|c')));
  });

  it('a JWT subject holding the separator cannot land on another issuer’s subject', () => {
    // jwt:<issuer>|<sub>, with the tool appended: issuer "https://x" with sub "y|z" calling `t`
    // vs the same issuer's sub "y" calling `z|t`.
    expect(keyOf('jwt:https://x|y|z', call('t'))).not.toBe(keyOf('jwt:https://x|y', call('z|t')));
  });

  it('a tool named like a method is not the method’s counter', () => {
    expect(keyOf('apiKey:a', call('ping'))).not.toBe(keyOf('apiKey:a', request('ping')));
    expect(keyOf('apiKey:a', call('tools/list'))).not.toBe(keyOf('apiKey:a', request('tools/list')));
  });

  it('names holding braces, colons, percent signs or lone surrogates keep the route as the hash tag', () => {
    for (const name of ['}', '{x}', 'a:0:b', '%7c', '\ud800', '\ud801', 'é', '\u0000']) {
      const key = keyOf(`apiKey:${name}`, call(name));
      expect(slotGroup(key), JSON.stringify(name)).toBe('/mcp');
      // ASCII only: what reaches Redis as UTF-8 is the same string, byte for byte.
      expect(Buffer.from(key, 'utf8').toString('latin1')).toBe(key);
    }
    // Two lone surrogates would both become U+FFFD in UTF-8 if sent raw: here they stay apart.
    expect(keyOf('apiKey:a', call('\ud800'))).not.toBe(keyOf('apiKey:a', call('\ud801')));
  });

  it('client addresses are escaped too (a trusted proxy may name anything)', () => {
    const perClient = compile('[{ per: client, limit: 1/hour }]');
    const a = perClient([request('ping')], { identity: 'x', client: '10.0.0.1|x' })[0]!.key;
    const b = perClient([request('ping')], { identity: 'x', client: '10.0.0.1' })[0]!.key;
    expect(a).not.toBe(b);
    expect(slotGroup(a)).toBe('/mcp');
  });

  it('a route path holding escapes still hashes to one slot per route', () => {
    const odd = compile('[{ per: identity, limit: 1/hour }]', '/a%7Db');
    const key = odd([request('ping')], { identity: 'apiKey:{x}', client: '' })[0]!.key;
    expect(slotGroup(key)).toBe(keyPart('/a%7Db'));
  });

  it('distinct (identity, tool) pairs always get distinct keys (property)', () => {
    const part = fc.string({ unit: fc.constantFrom('a', '|', ':', '{', '}', '%', '0', '\ud800', 'é') });
    fc.assert(
      fc.property(part, part, part, part, (i1, t1, i2, t2) => {
        const same = i1 === i2 && t1 === t2;
        expect(keyOf(i1, call(t1)) === keyOf(i2, call(t2))).toBe(same);
      }),
      { numRuns: 2_000, seed: 13 },
    );
  });

  it('keyPart is injective and ASCII-only (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), fc.string({ unit: 'binary' }), (a, b) => {
        expect(keyPart(a) === keyPart(b)).toBe(a === b);
        expect(keyPart(a)).toMatch(/^[\x21-\x7e]*$/);
      }),
      { numRuns: 300, seed: 7 },
    );
  });

  it('through a limiter: exhausting one identity’s tool leaves the colliding spelling untouched', () => {
    const limiter = createMemoryLimiter();
    const spend = (identity: string, tool: string) =>
      limiter.consumeAll(perTool([call(tool)], { identity, client: '' }), 0).allowed;
    expect(spend('apiKey:a|b', 'c')).toBe(true);
    expect(spend('apiKey:a|b', 'c')).toBe(false);
    expect(spend('apiKey:a', 'b|c')).toBe(true);
  });
});
