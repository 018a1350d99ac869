import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/auth/identity.js';
import { type CompiledPolicy, compileTable } from '../../../src/policy/compile.js';
import { filterListResult, isFilteredList } from '../../../src/policy/filter.js';

type Table = Record<string, string | string[]>;

function makePolicy(
  tables: { tools?: Table; resources?: Table; prompts?: Table } = {},
  defaultEffect: 'deny' | 'allow' = 'deny',
): CompiledPolicy {
  return {
    tools: compileTable('tools', tables.tools ?? {}),
    resources: compileTable('resources', tables.resources ?? {}),
    prompts: compileTable('prompts', tables.prompts ?? {}),
    methods: compileTable('methods', {}),
    defaultEffect,
    mode: 'enforce',
  };
}

function identity(...scopes: string[]): Identity {
  return {
    key: 'jwt:https://idp.example.com/|alice',
    subject: 'alice',
    methods: ['jwt'],
    scopes: new Set(scopes),
  };
}

const reader = identity('files:read');

const policy = makePolicy({
  tools: {
    read_file: 'files:read',
    'list_*': 'files:read',
    write_file: 'files:write',
    delete_file: ['files:read', 'files:admin'],
  },
  resources: { 'file:///public/**': 'files:read', 'file:///secret/**': 'files:admin' },
  prompts: { summarize: 'files:read', draft: 'files:write' },
});

const names = (result: unknown, field: string, key: string): unknown[] =>
  ((result as Record<string, Record<string, unknown>[]>)[field] ?? []).map((item) => item[key]);

describe('isFilteredList', () => {
  it.each(['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list'])('filters %s', (m) => {
    expect(isFilteredList(m)).toBe(true);
  });

  it.each(['tools/call', 'initialize', 'roots/list', 'tasks/list', 'completion/complete'])(
    'leaves %s alone',
    (m) => {
      expect(isFilteredList(m)).toBe(false);
    },
  );
});

describe('filterListResult', () => {
  it('keeps the tools the caller may call, by name, whole', () => {
    const readFile = { name: 'read_file', description: 'Read', inputSchema: { type: 'object' } };
    const result = {
      tools: [
        readFile,
        { name: 'write_file', inputSchema: { type: 'object' } },
        { name: 'list_dirs', inputSchema: { type: 'object' } },
        { name: 'delete_file', inputSchema: { type: 'object' } },
        { name: 'format_disk', inputSchema: { type: 'object' } },
      ],
    };
    const filtered = filterListResult('tools/list', result, policy, reader) as typeof result;
    expect(names(filtered, 'tools', 'name')).toEqual(['read_file', 'list_dirs']);
    expect(filtered.tools[0]).toEqual(readFile);
  });

  it('keeps a tool that needs several scopes only when the caller has all of them', () => {
    const result = { tools: [{ name: 'delete_file' }] };
    expect(names(filterListResult('tools/list', result, policy, reader), 'tools', 'name')).toEqual([]);
    const admin = identity('files:read', 'files:admin');
    expect(names(filterListResult('tools/list', result, policy, admin), 'tools', 'name')).toEqual([
      'delete_file',
    ]);
  });

  it('keeps the prompts the caller may get, by name', () => {
    const result = { prompts: [{ name: 'summarize' }, { name: 'draft' }, { name: 'read_file' }] };
    expect(names(filterListResult('prompts/list', result, policy, reader), 'prompts', 'name')).toEqual([
      'summarize',
    ]);
  });

  it('keeps the resources the caller may read, by decoded URI, reporting them as the upstream wrote them', () => {
    const result = {
      resources: [
        { uri: 'file:///public/a.txt', name: 'a' },
        { uri: 'file:///public/a%20b.txt', name: 'a b' },
        { uri: 'file:///%70ublic/c.txt', name: 'c' },
        { uri: 'file:///secret/key', name: 'key' },
        { uri: 'file:///%73ecret/key', name: 'key, encoded' },
        { uri: 'file:///elsewhere', name: 'unlisted' },
      ],
    };
    expect(names(filterListResult('resources/list', result, policy, reader), 'resources', 'uri')).toEqual([
      'file:///public/a.txt',
      'file:///public/a%20b.txt',
      'file:///%70ublic/c.txt',
    ]);
  });

  it('drops resources whose URI policy refuses to decode', () => {
    const result = {
      resources: [
        { uri: 'file:///public/../secret/key' },
        { uri: 'file:///public/%2e%2e/secret/key' },
        { uri: 'file:///public/a%2Fb' },
        { uri: 'file:///public/%zz' },
        { uri: 'file:///public/ok' },
      ],
    };
    const open = makePolicy({ resources: { 'file:///public/**': 'files:read' } }, 'allow');
    expect(names(filterListResult('resources/list', result, open, reader), 'resources', 'uri')).toEqual([
      'file:///public/ok',
    ]);
  });

  it('matches resource templates by uriTemplate as written', () => {
    const result = {
      resourceTemplates: [
        { uriTemplate: 'file:///public/{path}', name: 'public' },
        { uriTemplate: 'file:///secret/{path}', name: 'secret' },
        { uriTemplate: 'file:///other/{path}', name: 'other' },
      ],
    };
    const filtered = filterListResult('resources/templates/list', result, policy, reader);
    expect(names(filtered, 'resourceTemplates', 'uriTemplate')).toEqual(['file:///public/{path}']);
  });

  it('lets unlisted items follow the route default', () => {
    const result = { tools: [{ name: 'read_file' }, { name: 'write_file' }, { name: 'unlisted' }] };
    const deny = makePolicy({ tools: { read_file: 'files:read', write_file: 'files:write' } }, 'deny');
    const allow = makePolicy({ tools: { read_file: 'files:read', write_file: 'files:write' } }, 'allow');
    expect(names(filterListResult('tools/list', result, deny, reader), 'tools', 'name')).toEqual([
      'read_file',
    ]);
    expect(names(filterListResult('tools/list', result, allow, reader), 'tools', 'name')).toEqual([
      'read_file',
      'unlisted',
    ]);
  });

  it('drops items without a string name, and items that are not objects', () => {
    const result = {
      tools: [{ name: 'read_file' }, { title: 'no name' }, { name: 7 }, { name: null }, 'read_file', null, 3],
      prompts: [],
    };
    const open = makePolicy({}, 'allow');
    expect(filterListResult('tools/list', result, open, reader)).toEqual({
      tools: [{ name: 'read_file' }],
      prompts: [],
    });
    expect(
      names(
        filterListResult('resources/list', { resources: [{ name: 'no uri' }] }, open, reader),
        'resources',
        'uri',
      ),
    ).toEqual([]);
  });

  it('keeps every other field of the result: nextCursor, ttlMs, _meta', () => {
    const result = {
      tools: [{ name: 'read_file' }, { name: 'write_file' }],
      nextCursor: 'page-2',
      ttlMs: 60_000,
      cacheScope: 'private',
      _meta: { 'example.com/trace': 'abc' },
    };
    expect(filterListResult('tools/list', result, policy, reader)).toEqual({
      tools: [{ name: 'read_file' }],
      nextCursor: 'page-2',
      ttlMs: 60_000,
      cacheScope: 'private',
      _meta: { 'example.com/trace': 'abc' },
    });
  });

  it('turns a public cache scope private: the list now depends on who asked', () => {
    const result = { prompts: [{ name: 'summarize' }], cacheScope: 'public', ttlMs: 1000 };
    expect(filterListResult('prompts/list', result, policy, reader)).toEqual({
      prompts: [{ name: 'summarize' }],
      cacheScope: 'private',
      ttlMs: 1000,
    });
  });

  it('does not change the result it was given', () => {
    const result = { tools: [{ name: 'read_file' }, { name: 'write_file' }], cacheScope: 'public' };
    const copy = structuredClone(result);
    filterListResult('tools/list', result, policy, reader);
    expect(result).toEqual(copy);
  });

  it('filters only the field of its own method', () => {
    const result = { tools: [{ name: 'write_file' }], prompts: [{ name: 'draft' }] };
    expect(filterListResult('prompts/list', result, policy, reader)).toEqual({
      tools: [{ name: 'write_file' }],
      prompts: [],
    });
  });

  it('returns what it cannot read as it is', () => {
    expect(filterListResult('tools/call', { tools: [{ name: 'x' }] }, policy, reader)).toEqual({
      tools: [{ name: 'x' }],
    });
    expect(filterListResult('tools/list', null, policy, reader)).toBeNull();
    expect(filterListResult('tools/list', 'text', policy, reader)).toBe('text');
    const noList = { tools: 'not a list' };
    expect(filterListResult('tools/list', noList, policy, reader)).toBe(noList);
  });
});
