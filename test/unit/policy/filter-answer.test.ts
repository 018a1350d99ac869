/** `filterListAnswer`: reading an upstream's answer to list requests, which the gateway must filter or refuse. */
import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/auth/identity.js';
import { type CompiledPolicy, compileTable } from '../../../src/policy/compile.js';
import { ANY_LIST, filterListAnswer } from '../../../src/policy/filter.js';

const policy: CompiledPolicy = {
  tools: compileTable('tools', { echo: 'notes:read', drop_database: 'db:admin' }),
  resources: compileTable('resources', {}),
  prompts: compileTable('prompts', {}),
  methods: compileTable('methods', {}),
  defaultEffect: 'deny',
  mode: 'enforce',
};
const reader: Identity = {
  key: 'apiKey:r',
  subject: 'r',
  methods: ['apiKey'],
  scopes: new Set(['notes:read']),
};
const lists: ReadonlyMap<string | number, string> = new Map([[1, 'tools/list']]);
const TOOLS = { tools: [{ name: 'echo' }, { name: 'drop_database' }] };
const FILTERED = { tools: [{ name: 'echo' }] };
const filter = (text: string, ids = lists) => filterListAnswer(text, ids, policy, reader, 64);

describe('filterListAnswer', () => {
  it('filters the answer to a list request, by id', () => {
    const out = filter(JSON.stringify({ jsonrpc: '2.0', id: 1, result: TOOLS }));
    expect(JSON.parse(out as string)).toEqual({ jsonrpc: '2.0', id: 1, result: FILTERED });
  });

  // The TypeScript SDK matches answers by Number(id): an id of the wrong type is still the answer.
  it('filters a list-shaped result whose id does not match any list request exactly', () => {
    const out = filter(JSON.stringify({ jsonrpc: '2.0', id: '1', result: TOOLS }));
    expect(JSON.parse(out as string)).toEqual({ jsonrpc: '2.0', id: '1', result: FILTERED });
  });

  it('filters every list result of a batch answer', () => {
    const batch = [
      { jsonrpc: '2.0', id: 1, result: TOOLS },
      { jsonrpc: '2.0', id: 2, result: { content: [] } },
      { jsonrpc: '2.0', id: 1, result: TOOLS },
    ];
    expect(JSON.parse(filter(JSON.stringify(batch)) as string)).toEqual([
      { jsonrpc: '2.0', id: 1, result: FILTERED },
      batch[1],
      { jsonrpc: '2.0', id: 1, result: FILTERED },
    ]);
  });

  // Go's encoding/json (and any case-insensitive decoder) reads `Result` as `result`, `Tools` as
  // `tools`, `reſources` as `resources`: such an answer cannot be filtered, so it is refused.
  it.each([
    ['a result key in another case', { jsonrpc: '2.0', id: 1, Result: TOOLS }],
    ['both spellings of result', { jsonrpc: '2.0', id: 1, result: FILTERED, RESULT: TOOLS }],
    ['a list field in another case', { jsonrpc: '2.0', id: 1, result: { Tools: TOOLS.tools } }],
    ['a list field folded from U+017F', { jsonrpc: '2.0', id: 2, result: { reſources: [{ uri: 'x:y' }] } }],
    ['both spellings of a list field', { jsonrpc: '2.0', id: 1, result: { tools: [], TOOLS: TOOLS.tools } }],
  ])('refuses an answer spelling %s', (_what, answer) => {
    expect(filter(JSON.stringify(answer))).toEqual({ unreadable: 'ambiguous' });
  });

  it('hides a list item carrying its name key twice in different cases', () => {
    const answer = {
      jsonrpc: '2.0',
      id: 1,
      result: { tools: [{ name: 'echo' }, { name: 'echo', NAME: 'drop_database' }] },
    };
    expect(JSON.parse(filter(JSON.stringify(answer)) as string)).toEqual({
      jsonrpc: '2.0',
      id: 1,
      result: FILTERED,
    });
  });

  it('filters every list field a result carries, not only the one its method names', () => {
    const withPrompts: CompiledPolicy = {
      ...policy,
      prompts: compileTable('prompts', { greet: 'notes:read', admin_prompt: 'db:admin' }),
    };
    const answer = {
      jsonrpc: '2.0',
      id: 7,
      result: { tools: TOOLS.tools, prompts: [{ name: 'greet' }, { name: 'admin_prompt' }] },
    };
    for (const ids of [lists, ANY_LIST, new Map([[7, 'tools/list']])]) {
      const out = filterListAnswer(JSON.stringify(answer), ids, withPrompts, reader, 64);
      expect(JSON.parse(out as string).result).toEqual({
        tools: FILTERED.tools,
        prompts: [{ name: 'greet' }],
      });
    }
  });

  it('leaves errors, notifications and blank priming data alone', () => {
    expect(filter('{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"x"}}')).toBeUndefined();
    expect(filter('{"jsonrpc":"2.0","method":"notifications/message","params":{}}')).toBeUndefined();
    expect(filter('')).toBeUndefined();
    expect(filter(' \n')).toBeUndefined();
  });

  it('refuses to read an answer nested deeper than the limit, before parsing it', () => {
    const deep = `{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","x":${'['.repeat(8000)}${']'.repeat(8000)}}]}}`;
    expect(filter(deep)).toEqual({ unreadable: 'too_deep' });
    expect(filter(deep, ANY_LIST)).toEqual({ unreadable: 'too_deep' });
  });

  // A lenient client (NaN accepted, first duplicate key kept) could read a list the gateway did not.
  it.each([
    '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"drop_database"}]},"n":NaN}',
    '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"drop_database"}]}} trailing',
    "{'jsonrpc':'2.0','id':1,'result':{'tools':[{'name':'drop_database'}]}}",
  ])('refuses text JSON.parse cannot read rather than relay it: %s', (text) => {
    expect(filter(text)).toEqual({ unreadable: 'not_json' });
  });

  it('relays its own serialization: a duplicate result key collapses to the one it filtered', () => {
    const text =
      '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"drop_database"}]},"result":{"tools":[]}}';
    expect(JSON.parse(filter(text) as string)).toEqual({ jsonrpc: '2.0', id: 1, result: { tools: [] } });
  });
});
