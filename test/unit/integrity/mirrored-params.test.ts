import { describe, expect, it } from 'vitest';
import { paramDeclarations, paramMismatches } from '../../../src/integrity/mirrored-params.js';

const schema = {
  type: 'object',
  properties: {
    region: { type: 'string', 'x-mcp-header': 'Region' },
    priority: { type: 'integer', 'x-mcp-header': 'Priority' },
    dryRun: { type: 'boolean', 'x-mcp-header': 'Dry-Run' },
    target: { type: 'object', properties: { zone: { type: 'string', 'x-mcp-header': 'Zone' } } },
    note: { type: 'string' },
  },
};
const b64 = (text: string) => `=?base64?${Buffer.from(text, 'utf8').toString('base64')}?=`;

describe('x-mcp-header declarations of a pinned schema', () => {
  it('are read from properties reached through properties alone, nested ones included', () => {
    const declared = paramDeclarations(schema);
    expect(declared).toEqual([
      { path: ['region'], header: 'mcp-param-region', name: 'Region', type: 'string' },
      { path: ['priority'], header: 'mcp-param-priority', name: 'Priority', type: 'integer' },
      { path: ['dryRun'], header: 'mcp-param-dry-run', name: 'Dry-Run', type: 'boolean' },
      { path: ['target', 'zone'], header: 'mcp-param-zone', name: 'Zone', type: 'string' },
    ]);
    // Computed once per pinned schema.
    expect(paramDeclarations(schema)).toBe(declared);
  });

  it('are unusable when an annotation is anywhere else or breaks the rules', () => {
    const invalid = [
      { type: 'object', 'x-mcp-header': 'Root' },
      {
        type: 'object',
        properties: { list: { type: 'array', items: { type: 'string', 'x-mcp-header': 'Item' } } },
      },
      { type: 'object', anyOf: [{ properties: { a: { type: 'string', 'x-mcp-header': 'A' } } }] },
      { type: 'object', $defs: { a: { type: 'string', 'x-mcp-header': 'A' } } },
      { type: 'object', properties: { n: { type: 'number', 'x-mcp-header': 'N' } } },
      { type: 'object', properties: { n: { type: ['string', 'null'], 'x-mcp-header': 'N' } } },
      { type: 'object', properties: { s: { type: 'string', 'x-mcp-header': 'Bad Name' } } },
      { type: 'object', properties: { s: { type: 'string', 'x-mcp-header': '' } } },
      {
        type: 'object',
        properties: {
          a: { type: 'string', 'x-mcp-header': 'Same' },
          b: { type: 'string', 'x-mcp-header': 'SAME' },
        },
      },
    ];
    for (const s of invalid) expect(paramDeclarations(s), JSON.stringify(s)).toHaveProperty('invalid');
  });

  it('are none for a schema that declares none, and for no schema', () => {
    expect(paramDeclarations({ type: 'object', properties: { a: { type: 'string' } } })).toEqual([]);
    expect(paramDeclarations(undefined)).toEqual([]);
    // A key spelled like the annotation inside instance data (a default) is no annotation.
    expect(paramDeclarations({ type: 'object', default: { 'x-mcp-header': 'X' } })).toEqual([]);
  });
});

describe('Mcp-Param headers against the arguments', () => {
  const declared = paramDeclarations(schema) as Exclude<
    ReturnType<typeof paramDeclarations>,
    { invalid: string }
  >;
  const args = { region: 'eu-west-1', priority: 3, dryRun: false, target: { zone: 'Zürich' } };
  const headers = {
    'mcp-param-region': 'eu-west-1',
    'mcp-param-priority': '3',
    'mcp-param-dry-run': 'false',
    'mcp-param-zone': b64('Zürich'),
  };

  it('agree when each mirrors its argument (base64 decoded, integers numerically)', () => {
    expect(paramMismatches(declared, args, headers, true)).toEqual([]);
    expect(paramMismatches(declared, args, { ...headers, 'mcp-param-priority': '3.0' }, true)).toEqual([]);
    expect(paramMismatches(declared, { region: '' }, { 'mcp-param-region': '' }, true)).toEqual([]);
    expect(paramMismatches(declared, { region: '' }, { 'mcp-param-region': b64('') }, true)).toEqual([]);
  });

  it('name each header that disagrees, is missing, or mirrors an argument that is not there — never a value', () => {
    expect(paramMismatches(declared, args, { ...headers, 'mcp-param-region': 'us-east-1' }, true)).toEqual([
      'Mcp-Param-Region',
    ]);
    expect(paramMismatches(declared, args, { ...headers, 'mcp-param-zone': 'Zurich' }, true)).toEqual([
      'Mcp-Param-Zone',
    ]);
    expect(paramMismatches(declared, args, { ...headers, 'mcp-param-priority': '3.5' }, true)).toEqual([
      'Mcp-Param-Priority',
    ]);
    expect(paramMismatches(declared, args, { ...headers, 'mcp-param-dry-run': 'FALSE' }, true)).toEqual([
      'Mcp-Param-Dry-Run',
    ]);
    const { 'mcp-param-region': _, ...withoutRegion } = headers;
    expect(paramMismatches(declared, args, withoutRegion, true)).toEqual(['Mcp-Param-Region (missing)']);
    // Without `required` (a legacy client, or warn) only the headers sent are checked.
    expect(paramMismatches(declared, args, withoutRegion, false)).toEqual([]);
    expect(paramMismatches(declared, { ...args, target: {} }, headers, true)).toEqual([
      'Mcp-Param-Zone (no such argument)',
    ]);
    expect(paramMismatches(declared, { ...args, region: null }, headers, true)).toEqual([
      'Mcp-Param-Region (no such argument)',
    ]);
    // A value of another type than the header can spell, a malformed base64 sentinel, a control character.
    expect(paramMismatches(declared, { ...args, region: ['eu'] }, headers, true)).toEqual([
      'Mcp-Param-Region',
    ]);
    expect(
      paramMismatches(declared, args, { ...headers, 'mcp-param-zone': '=?base64?WsO8cmljaA?=' }, true),
    ).toEqual(['Mcp-Param-Zone']);
    expect(
      paramMismatches(
        declared,
        { ...args, region: 'a\u0001' },
        { ...headers, 'mcp-param-region': 'a\u0001' },
        true,
      ),
    ).toEqual(['Mcp-Param-Region']);
    for (const wrong of paramMismatches(
      declared,
      args,
      { ...headers, 'mcp-param-region': 'secret-value' },
      true,
    ))
      expect(wrong).not.toContain('secret-value');
  });

  it('leave undeclared Mcp-Param headers to the server (the spec: intermediaries forward them)', () => {
    expect(paramMismatches(declared, args, { ...headers, 'mcp-param-other': 'x' }, true)).toEqual([]);
  });
});
