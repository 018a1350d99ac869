import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/auth/identity.js';
import { isRefusal, REFUSALS, refusalBody } from '../../../src/errors.js';
import { type ParsedBody, parseJsonRpc } from '../../../src/jsonrpc/parse.js';
import { authorize } from '../../../src/policy/authorize.js';
import { type CompiledPolicy, compileTable } from '../../../src/policy/compile.js';

function makePolicy(mode: 'enforce' | 'shadow' = 'enforce'): CompiledPolicy {
  return {
    tools: compileTable('tools', {
      read_file: 'files:read',
      write_file: 'files:write',
      delete_file: ['files:write', 'files:admin'],
    }),
    resources: compileTable('resources', { 'file:///public/**': 'files:read' }),
    prompts: compileTable('prompts', {}),
    methods: compileTable('methods', {}),
    defaultEffect: 'deny',
    mode,
  };
}

const enforce = makePolicy('enforce');
const shadow = makePolicy('shadow');
const reader: Identity = {
  key: 'apiKey:ci-bot',
  subject: 'ci-bot',
  methods: ['apiKey'],
  scopes: new Set(['files:read']),
};
const METADATA = 'https://mcp.example.com/.well-known/oauth-protected-resource/files/mcp';
const legacy = { modern: false, resourceMetadata: METADATA } as const;
const modern = { modern: true, resourceMetadata: METADATA } as const;

/** A body as the parse stage hands it over. */
function body(value: unknown): ParsedBody {
  const parsed = parseJsonRpc(JSON.stringify(value), { allowBatch: true });
  if (isRefusal(parsed)) throw new Error(`fixture does not parse: ${parsed.reason}`);
  return parsed;
}

const call = (id: string | number, name: string) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: {} },
});

describe('authorize: a single message', () => {
  it('returns the decision and no refusal when it is allowed', () => {
    const result = authorize(enforce, body(call(1, 'read_file')), reader, legacy);
    expect(result.refusal).toBeUndefined();
    expect(result.decisions).toEqual([
      {
        effect: 'allow',
        rule: 'tools.read_file',
        required: ['files:read'],
        missing: [],
        target: 'read_file',
      },
    ]);
  });

  it('refuses a missing scope with a 403 challenge naming every required scope, then those the caller holds', () => {
    const result = authorize(enforce, body(call('req-9', 'delete_file')), reader, legacy);
    expect(result.refusal).toEqual({
      kind: 'refusal',
      reason: 'insufficient_scope',
      ids: ['req-9'],
      headers: {
        'www-authenticate': `Bearer error="insufficient_scope", scope="files:write files:admin files:read", resource_metadata="${METADATA}"`,
      },
      data: { requiredScopes: ['files:write', 'files:admin'] },
    });
    expect(REFUSALS.insufficient_scope.status).toBe(403);
    expect(JSON.parse(refusalBody(result.refusal!))).toEqual({
      jsonrpc: '2.0',
      id: 'req-9',
      error: {
        code: -31092,
        message: 'Insufficient scope',
        data: { requiredScopes: ['files:write', 'files:admin'], reason: 'insufficient_scope' },
      },
    });
  });

  it('answers a name no entry lists (default deny) 403 method_denied, with no step-up challenge', () => {
    const result = authorize(enforce, body(call(2, 'format_disk')), reader, modern);
    expect(result.refusal).toEqual({ kind: 'refusal', reason: 'method_denied', ids: [2] });
    expect(JSON.parse(refusalBody(result.refusal!)).error.data).toEqual({ reason: 'method_denied' });
  });

  it('answers a method outside the table on the legacy protocol 403 method_denied, with no challenge', () => {
    const result = authorize(enforce, body({ jsonrpc: '2.0', id: 3, method: 'tasks/get' }), reader, legacy);
    expect(result.refusal).toEqual({ kind: 'refusal', reason: 'method_denied', ids: [3] });
    expect(REFUSALS.method_denied.status).toBe(403);
  });

  it('repeats only the scope tokens a caller holds that RFC 6750 allows in the header, at most 64', () => {
    const odd: Identity = {
      ...reader,
      scopes: new Set(['files:read', 'has"quote', 'back\\slash', 'new\nline', 'x'.repeat(129), 'ok:scope']),
    };
    const result = authorize(enforce, body(call(1, 'write_file')), odd, legacy);
    expect(result.refusal?.headers?.['www-authenticate']).toBe(
      `Bearer error="insufficient_scope", scope="files:write files:read ok:scope", resource_metadata="${METADATA}"`,
    );
    const many: Identity = {
      ...reader,
      scopes: new Set(Array.from({ length: 500 }, (_, i) => `s${String(i).padStart(3, '0')}`)),
    };
    const header = authorize(enforce, body(call(1, 'write_file')), many, legacy).refusal?.headers?.[
      'www-authenticate'
    ];
    expect(/scope="([^"]*)"/.exec(header ?? '')?.[1]?.split(' ')).toHaveLength(65);
  });

  it('leaves resource_metadata out of the step-up challenge of a route without authorization servers', () => {
    const result = authorize(enforce, body(call(1, 'write_file')), reader, {
      modern: false,
      resourceMetadata: undefined,
    });
    expect(result.refusal?.headers).toEqual({
      'www-authenticate': 'Bearer error="insufficient_scope", scope="files:write files:read"',
    });
  });

  it('answers a batch holding a call no scope can grant method_denied, not with a step-up', () => {
    const batch = [call(1, 'write_file'), call(2, 'format_disk')];
    expect(authorize(enforce, body(batch), reader, legacy).refusal).toEqual({
      kind: 'refusal',
      reason: 'method_denied',
      ids: [1, 2],
      batch: true,
    });
  });

  it.each([
    ['method_not_found', { jsonrpc: '2.0', id: 4, method: 'tasks/get' }, modern],
    ['invalid_request', { jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 5 } }, modern],
    [
      'bad_uri',
      { jsonrpc: '2.0', id: 4, method: 'resources/read', params: { uri: 'file:///public/../x' } },
      legacy,
    ],
  ] as const)('answers %s without a challenge or required scopes', (reason, message, opts) => {
    const result = authorize(enforce, body(message), reader, opts);
    expect(result.refusal).toEqual({ kind: 'refusal', reason, ids: [4] });
    expect(JSON.parse(refusalBody(result.refusal!)).error.data).toEqual({ reason });
  });

  it('never sees a request method without an id: the parse stage refuses it (issue 13)', () => {
    const idless = { jsonrpc: '2.0', method: 'tools/call', params: { name: 'write_file' } };
    const parsed = parseJsonRpc(JSON.stringify(idless), { allowBatch: true });
    expect(isRefusal(parsed) && parsed.reason).toBe('invalid_request');
  });
});

describe('authorize: a batch (2025-03-26)', () => {
  const mixed = [
    call(1, 'read_file'),
    { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } },
    call('two', 'write_file'),
    { jsonrpc: '2.0', id: 'srv-1', result: {} },
    call(3, 'read_file'),
  ];

  it('refuses the whole batch for one denied element, with one error per request id', () => {
    const result = authorize(enforce, body(mixed), reader, legacy);
    expect(result.decisions.map((d) => d.effect)).toEqual(['allow', 'allow', 'deny', 'allow', 'allow']);
    expect(result.refusal).toMatchObject({
      kind: 'refusal',
      reason: 'insufficient_scope',
      ids: [1, 'two', 3],
      batch: true,
      // Every scope the batch needs (one step-up serves all of it), then those the caller holds.
      headers: {
        'www-authenticate': `Bearer error="insufficient_scope", scope="files:read files:write", resource_metadata="${METADATA}"`,
      },
      data: { requiredScopes: ['files:write'] },
    });
    const errors = JSON.parse(refusalBody(result.refusal!));
    expect(errors.map((e: { id: unknown }) => e.id)).toEqual([1, 'two', 3]);
    expect(errors.every((e: { error: { code: number } }) => e.error.code === -31092)).toBe(true);
  });

  it('refuses a batch whole with batch: true even when the denial carries no challenge', () => {
    const batch = [
      call(1, 'read_file'),
      { jsonrpc: '2.0', id: 2, method: 'resources/read', params: { uri: 'a\\b' } },
    ];
    expect(authorize(enforce, body(batch), reader, legacy).refusal).toEqual({
      kind: 'refusal',
      reason: 'bad_uri',
      ids: [1, 2],
      batch: true,
    });
  });

  it('forwards a batch whose elements are all allowed', () => {
    const batch = [call(1, 'read_file'), { jsonrpc: '2.0', id: 2, method: 'ping' }];
    const result = authorize(enforce, body(batch), reader, legacy);
    expect(result.refusal).toBeUndefined();
    expect(result.decisions).toHaveLength(2);
  });
});

describe('authorize: shadow mode', () => {
  it('returns every decision, denials included, but refuses nothing', () => {
    const result = authorize(shadow, body(twoCalls()), reader, legacy);
    expect(result.refusal).toBeUndefined();
    expect(result.decisions.map((d) => d.effect)).toEqual(['allow', 'deny']);
    expect(result.decisions[1]).toMatchObject({ reason: 'insufficient_scope', missing: ['files:write'] });
  });

  it('refuses nothing for methods outside the table either', () => {
    const result = authorize(shadow, body({ jsonrpc: '2.0', id: 1, method: 'tasks/get' }), reader, modern);
    expect(result.refusal).toBeUndefined();
    expect(result.decisions[0]?.reason).toBe('method_not_found');
  });

  function twoCalls() {
    return [call(1, 'read_file'), call(2, 'write_file')];
  }
});
