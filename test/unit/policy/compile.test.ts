import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { compilePolicy, compileTable } from '../../../src/policy/compile.js';

describe('compileTable: which entry a name falls under', () => {
  it('returns undefined for a name the table does not list', () => {
    const table = compileTable('tools', { read_file: 'files:read' });
    expect(table.lookup('write_file')).toBeUndefined();
    expect(table.lookup('')).toBeUndefined();
  });

  it('lets an exact name win over a pattern that also matches, wherever it is written', () => {
    const table = compileTable('tools', {
      'read_*': 'files:read',
      read_secret: 'files:admin',
      '**': 'anything',
    });
    expect(table.lookup('read_secret')).toEqual({ scopes: ['files:admin'], rule: 'tools.read_secret' });
    expect(table.lookup('read_file')?.rule).toBe('tools."read_*"');
  });

  it('picks the pattern with the longest literal prefix, not the one written first', () => {
    const table = compileTable('tools', {
      '*': 'any',
      'files_*': 'files',
      'files_admin_*': 'admin',
      'f*': 'f',
    });
    expect(table.lookup('files_admin_delete')?.scopes).toEqual(['admin']);
    expect(table.lookup('files_read')?.scopes).toEqual(['files']);
    expect(table.lookup('fetch')?.scopes).toEqual(['f']);
    expect(table.lookup('other')?.scopes).toEqual(['any']);
  });

  it('counts the literal prefix only up to the first wildcard, not the literal text after it', () => {
    const table = compileTable('tools', { 'a*_very_long_literal_suffix': 'suffix', 'ab*': 'prefix' });
    expect(table.lookup('abc_very_long_literal_suffix')?.scopes).toEqual(['prefix']);
    expect(table.lookup('a_very_long_literal_suffix')?.scopes).toEqual(['suffix']);
  });

  it('breaks a tie between equally long literal prefixes by the order written', () => {
    const first = compileTable('tools', { 'list_*_v1': 'first', 'list_**': 'second' });
    expect(first.lookup('list_files_v1')?.scopes).toEqual(['first']);
    expect(first.lookup('list_files_v2')?.scopes).toEqual(['second']);
    const swapped = compileTable('tools', { 'list_**': 'second', 'list_*_v1': 'first' });
    expect(swapped.lookup('list_files_v1')?.scopes).toEqual(['second']);
  });

  it('falls back to a shorter-prefix pattern when the longer one does not match', () => {
    const table = compileTable('resources', {
      'file:///public/*.txt': 'txt',
      'file:///**': 'all-files',
    });
    expect(table.lookup('file:///public/a.txt')?.scopes).toEqual(['txt']);
    expect(table.lookup('file:///public/a.md')?.scopes).toEqual(['all-files']);
  });

  it('does not let a single * cross a /', () => {
    const table = compileTable('resources', { 'file:///public/*': 'files:read' });
    expect(table.lookup('file:///public/report.txt')).toBeDefined();
    expect(table.lookup('file:///public/')).toBeDefined();
    expect(table.lookup('file:///public/nested/report.txt')).toBeUndefined();
    expect(table.lookup('file:///public')).toBeUndefined();
  });

  it('lets ** cross any number of /', () => {
    const table = compileTable('resources', { 'file:///public/**': 'files:read' });
    expect(table.lookup('file:///public/report.txt')).toBeDefined();
    expect(table.lookup('file:///public/a/b/c/report.txt')).toBeDefined();
    expect(table.lookup('file:///public/')).toBeDefined();
    expect(table.lookup('file:///private/report.txt')).toBeUndefined();
    expect(table.lookup('file:///publicity/report.txt')).toBeUndefined();
  });

  it('anchors a pattern at both ends', () => {
    const table = compileTable('tools', { 'read_*': 'files:read' });
    expect(table.lookup('x_read_file')).toBeUndefined();
    const suffix = compileTable('tools', { '*_file': 'files:read' });
    expect(suffix.lookup('read_file_now')).toBeUndefined();
    expect(suffix.lookup('read_file')).toBeDefined();
  });

  it('matches a * in the middle of a name and several wildcards in one pattern', () => {
    const table = compileTable('resources', { 'db://*/tables/*': 'db:read' });
    expect(table.lookup('db://prod/tables/users')).toBeDefined();
    expect(table.lookup('db://prod/eu/tables/users')).toBeUndefined();
    expect(table.lookup('db://prod/tables/users/rows')).toBeUndefined();
  });

  it.each([
    ['a.b', 'aXb'],
    ['a+b', 'aab'],
    ['a?b', 'ab'],
    ['(a|b)', 'a'],
    ['[ab]', 'a'],
    ['a{2}', 'aa'],
    ['^a$', 'a'],
    ['a\\d', 'a1'],
  ])('treats regular-expression metacharacters in the exact name %j literally', (name, lookalike) => {
    const table = compileTable('tools', { [name]: 's' });
    expect(table.lookup(name)).toBeDefined();
    expect(table.lookup(lookalike)).toBeUndefined();
  });

  it.each([
    ['files.*', 'files.read', 'filesXread'],
    ['a+b_*', 'a+b_x', 'aab_x'],
    ['(x|y)*', '(x|y)z', 'x'],
    ['[ab]*', '[ab]c', 'ac'],
    ['a{2}*', 'a{2}', 'aa'],
    ['$^*', '$^x', ''],
    ['a\\d*', 'a\\dz', 'a1z'],
    ['**.txt?', 'dir/a.txt?', 'dir/aXtxt'],
  ])(
    'treats regular-expression metacharacters around wildcards in %j literally',
    (glob, matches, lookalike) => {
      const table = compileTable('tools', { [glob]: 's' });
      expect(table.lookup(matches)).toBeDefined();
      expect(table.lookup(lookalike)).toBeUndefined();
    },
  );

  it('matches non-ASCII literals and wildcards over them', () => {
    const table = compileTable('prompts', { 'résumé_*': 's', '😀*': 'emoji' });
    expect(table.lookup('résumé_short')?.scopes).toEqual(['s']);
    expect(table.lookup('resume_short')).toBeUndefined();
    expect(table.lookup('😀😀')?.scopes).toEqual(['emoji']);
  });

  it('requires every scope of a list, and keeps a single scope as a one-element list', () => {
    const table = compileTable('tools', {
      delete_file: ['files:write', 'files:admin'],
      read_file: 'files:read',
    });
    expect(table.lookup('delete_file')?.scopes).toEqual(['files:write', 'files:admin']);
    expect(table.lookup('read_file')?.scopes).toEqual(['files:read']);
  });

  it('does not share the scope list with the policy it was compiled from', () => {
    const scopes = ['files:write'];
    const table = compileTable('tools', { write_file: scopes });
    scopes.push('added-later');
    expect(table.lookup('write_file')?.scopes).toEqual(['files:write']);
    expect(Object.isFrozen(table.lookup('write_file')?.scopes)).toBe(true);
  });

  it('names the entry in `rule` by section and name, quoting names that are not plain', () => {
    const table = compileTable('resources', {
      'file:///public/**': 'files:read',
      'docs/readme.md': 'docs:read',
      'two words': 'x',
    });
    expect(table.lookup('file:///public/a')?.rule).toBe('resources."file:///public/**"');
    expect(table.lookup('docs/readme.md')?.rule).toBe('resources.docs/readme.md');
    expect(table.lookup('two words')?.rule).toBe('resources."two words"');
    expect(compileTable('methods', { 'tasks/get': 'x' }).lookup('tasks/get')?.rule).toBe('methods.tasks/get');
    expect(compileTable('prompts', { summarize: 'x' }).lookup('summarize')?.rule).toBe('prompts.summarize');
  });
});

describe('compilePolicy: a route from the policy file', () => {
  const config = parseConfig(`
identities:
  anonymous: { scopes: [] }
routes:
  - route: /files/mcp
    resource: https://mcp.example.com/files/mcp
    upstream: http://127.0.0.1:8080/mcp
    authentication: { methods: [anonymous] }
    mode: shadow
    default: allow
    tools:
      read_file: files:read
      "list_*": files:read
      delete_file: [files:write, files:admin]
    resources: { "file:///public/**": files:read }
    prompts: { summarize: files:read }
    methods: { "files/reindex": files:read }
  - route: /defaults/mcp
    resource: https://mcp.example.com/defaults/mcp
    upstream: http://127.0.0.1:8080/mcp
    authentication: { methods: [anonymous] }
`);

  it('compiles each table and carries mode and default', () => {
    const policy = compilePolicy(config.routes[0]!);
    expect(policy.mode).toBe('shadow');
    expect(policy.defaultEffect).toBe('allow');
    expect(policy.tools.lookup('delete_file')).toEqual({
      scopes: ['files:write', 'files:admin'],
      rule: 'tools.delete_file',
    });
    expect(policy.tools.lookup('list_dirs')?.rule).toBe('tools."list_*"');
    expect(policy.resources.lookup('file:///public/a/b')?.rule).toBe('resources."file:///public/**"');
    expect(policy.prompts.lookup('summarize')?.scopes).toEqual(['files:read']);
    expect(policy.methods.lookup('files/reindex')?.rule).toBe('methods.files/reindex');
    // Sections are separate: a tool name is not a prompt.
    expect(policy.prompts.lookup('read_file')).toBeUndefined();
  });

  it('defaults to enforce and deny with empty tables', () => {
    const policy = compilePolicy(config.routes[1]!);
    expect(policy.mode).toBe('enforce');
    expect(policy.defaultEffect).toBe('deny');
    expect(policy.tools.lookup('read_file')).toBeUndefined();
    expect(policy.methods.lookup('files/reindex')).toBeUndefined();
  });
});
