import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/auth/identity.js';
import { isRefusal } from '../../../src/errors.js';
import { type ParsedBody, parseJsonRpc } from '../../../src/jsonrpc/parse.js';
import { mirrorCanonicalName, withCanonicalUris } from '../../../src/policy/canonical-body.js';
import { type CompiledPolicy, compileTable } from '../../../src/policy/compile.js';
import { decide } from '../../../src/policy/decide.js';

const policy: CompiledPolicy = {
  tools: compileTable('tools', {}),
  resources: compileTable('resources', { 'file:///public/**': 'files:read' }),
  prompts: compileTable('prompts', {}),
  methods: compileTable('methods', {}),
  defaultEffect: 'deny',
  mode: 'enforce',
};
const reader: Identity = {
  key: 'apiKey:r',
  subject: 'r',
  methods: ['apiKey'],
  scopes: new Set(['files:read']),
};

function parsed(value: unknown): ParsedBody {
  const body = parseJsonRpc(JSON.stringify(value), { allowBatch: true });
  if (isRefusal(body)) throw new Error('test body does not parse');
  return body;
}

function canonicalized(value: unknown) {
  const body = parsed(value);
  const decisions = body.messages.map((m) => decide(policy, m, reader, true));
  return { request: withCanonicalUris({ body }, decisions), body, decisions };
}

const read = (id: number, uri: string) => ({ jsonrpc: '2.0', id, method: 'resources/read', params: { uri } });

describe('withCanonicalUris', () => {
  it('returns the very same request when every URI is already canonical (no parse, no copy)', () => {
    const { request, body } = canonicalized(read(1, 'file:///public/a'));
    expect(request.body).toBe(body);
  });

  it('forwards and exposes the canonical URI of a read, leaving every other byte of the body alone', () => {
    const { request } = canonicalized({
      ...read(1, 'FILE://localhost/public/%7e'),
      params: { uri: 'FILE://localhost/public/%7e', _meta: { n: 1.5, s: 'é' } },
    });
    expect(JSON.parse(request.body.forward)).toEqual({
      jsonrpc: '2.0',
      id: 1,
      method: 'resources/read',
      params: { uri: 'file:///public/~', _meta: { n: 1.5, s: 'é' } },
    });
    expect(request.body.messages[0]).toMatchObject({ kind: 'request', params: { uri: 'file:///public/~' } });
  });

  it('rewrites a completion reference and every subscription URI at its place', () => {
    const { request } = canonicalized([
      {
        jsonrpc: '2.0',
        id: 1,
        method: 'completion/complete',
        params: {
          ref: { type: 'ref/resource', uri: 'file:/public/{x}' },
          argument: { name: 'x', value: '' },
        },
      },
      {
        jsonrpc: '2.0',
        id: 2,
        method: 'subscriptions/listen',
        params: { notifications: { resourceSubscriptions: ['file:///public/a', 'FILE:///public/b'] } },
      },
      read(3, 'file:///public/c'),
    ]);
    const [complete, listen, plain] = JSON.parse(request.body.forward) as {
      params: Record<string, unknown>;
    }[];
    expect(complete?.params.ref).toEqual({ type: 'ref/resource', uri: 'file:///public/{x}' });
    expect(listen?.params.notifications).toEqual({
      resourceSubscriptions: ['file:///public/a', 'file:///public/b'],
    });
    expect(plain?.params.uri).toBe('file:///public/c');
    expect(request.body.batch).toBe(true);
  });
});

describe('mirrorCanonicalName', () => {
  it('sets Mcp-Name to the canonical URI of a rewritten read when the client sent one', () => {
    const { request, decisions } = canonicalized(read(1, 'FILE:///public/a'));
    const headers: Record<string, string> = { 'mcp-name': 'FILE:///public/a' };
    mirrorCanonicalName(headers, request.body, decisions);
    expect(headers['mcp-name']).toBe('file:///public/a');
  });

  it('adds no header the client did not send, and leaves an unchanged read alone', () => {
    const changed = canonicalized(read(1, 'FILE:///public/a'));
    const none: Record<string, string> = {};
    mirrorCanonicalName(none, changed.request.body, changed.decisions);
    expect(none).toEqual({});
    const same = canonicalized(read(1, 'file:///public/a'));
    const sent: Record<string, string> = { 'mcp-name': '=?base64?ZmlsZTovLy9wdWJsaWMvYQ==?=' };
    mirrorCanonicalName(sent, same.request.body, same.decisions);
    expect(sent['mcp-name']).toBe('=?base64?ZmlsZTovLy9wdWJsaWMvYQ==?=');
  });
});
