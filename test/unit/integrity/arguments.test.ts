import { describe, expect, it } from 'vitest';
import {
  promptArgumentProblems,
  schemaProblem,
  toolArgumentProblems,
} from '../../../src/integrity/arguments.js';

const tool = (inputSchema: unknown) => ({ name: 't', inputSchema });

describe('tool arguments against the pinned schema', () => {
  it('checks every pattern of a schema with its own expression (two patterns never share one)', () => {
    const d = tool({
      type: 'object',
      properties: { a: { type: 'string', pattern: '^a+$' }, b: { type: 'string', pattern: '^b+$' } },
    });
    expect(toolArgumentProblems(d, { a: 'aa', b: 'bb' }, true)).toEqual([]);
    expect(toolArgumentProblems(d, { a: 'aa', b: 'aa' }, true)).toEqual(['/b: pattern']);
    expect(toolArgumentProblems(d, { a: 'bb', b: 'bb' }, true)).toEqual(['/a: pattern']);
  });

  it('runs patterns in linear time', () => {
    const d = tool({ type: 'object', properties: { tag: { type: 'string', pattern: '^(a+)+$' } } });
    const started = performance.now();
    expect(toolArgumentProblems(d, { tag: `${'a'.repeat(100_000)}!` }, true)).toEqual(['/tag: pattern']);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('names paths, keywords and property names, never values; strict refuses undeclared arguments', () => {
    const d = tool({ type: 'object', properties: { n: { type: 'integer', maximum: 3 } }, required: ['n'] });
    expect(toolArgumentProblems(d, { n: 99 }, true)).toEqual(['/n: maximum']);
    expect(toolArgumentProblems(d, {}, true)).toEqual(['/: required (n)']);
    expect(toolArgumentProblems(d, { n: 1, x: 'secret' }, true)).toEqual([
      '/x: not declared by the tool (additionalProperties)',
    ]);
    expect(toolArgumentProblems(d, { n: 1, x: 'secret' }, false)).toEqual([]);
    // A schema that speaks of additionalProperties decides for itself.
    const open = tool({ type: 'object', properties: { n: {} }, additionalProperties: true });
    expect(toolArgumentProblems(open, { n: 1, x: 2 }, true)).toEqual([]);
  });

  it('reads draft-07 schemas as draft-07, others as 2020-12', () => {
    const d7 = tool({
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      properties: { a: { type: 'string' } },
      additionalProperties: false,
    });
    expect(toolArgumentProblems(d7, { a: 1 }, true)).toEqual(['/a: type']);
    const d2020 = tool({
      type: 'object',
      properties: { l: { type: 'array', prefixItems: [{ type: 'string' }] } },
    });
    expect(toolArgumentProblems(d2020, { l: [1] }, true)).toEqual(['/l/0: type']);
  });

  it('finds a schema it cannot use unusable — a remote $ref, a pattern outside RE2, no schema — and never passes its calls', () => {
    const remote = tool({ type: 'object', properties: { a: { $ref: 'https://example.com/a.json' } } });
    expect(toolArgumentProblems(remote, { a: 1 }, true)[0]).toMatch(/cannot be used/);
    const lookahead = tool({ type: 'object', properties: { a: { type: 'string', pattern: '^(?=x)' } } });
    expect(toolArgumentProblems(lookahead, { a: 'x' }, true)[0]).toMatch(/cannot be used/);
    expect(toolArgumentProblems({ name: 't' }, {}, true)).toEqual(['no inputSchema']);
    expect(schemaProblem(lookahead)).toMatch(/cannot be used/);
    expect(schemaProblem(tool({ type: 'object' }))).toBeUndefined();
    // A $ref inside the schema resolves.
    const local = tool({
      type: 'object',
      $defs: { s: { type: 'string' } },
      properties: { a: { $ref: '#/$defs/s' } },
    });
    expect(toolArgumentProblems(local, { a: 1 }, true)).toEqual(['/a: type']);
  });
});

describe('tool arguments, hostile sizes', () => {
  it('name at most a few problems, and never throw, on a huge invalid array or a recursive schema', () => {
    const d = tool({ type: 'object', properties: { tags: { type: 'array', items: { type: 'string' } } } });
    const problems = toolArgumentProblems(d, { tags: Array.from({ length: 200_000 }, () => 1) }, true);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems.length).toBeLessThanOrEqual(20);
    let nested: unknown = 'leaf';
    for (let i = 0; i < 40; i++) nested = [nested];
    const recursive = tool({
      anyOf: [
        { type: 'array', items: { $ref: '#' } },
        { type: 'array', items: { $ref: '#' } },
      ],
    });
    expect(toolArgumentProblems(recursive, nested, false)[0]).toMatch(/refers back to itself/);
    // A union of named definitions, as schema generators write them, is usable.
    const union = tool({
      type: 'object',
      $defs: { a: { type: 'string' }, b: { type: 'number' } },
      properties: { v: { anyOf: [{ $ref: '#/$defs/a' }, { $ref: '#/$defs/b' }] } },
    });
    expect(toolArgumentProblems(union, { v: 'x' }, true)).toEqual([]);
    expect(toolArgumentProblems(union, { v: true }, true)).not.toEqual([]);
  });
});

describe('prompt arguments against the pinned definition', () => {
  it('takes declared names only, requires the required ones, and strings only', () => {
    const d = { name: 'p', arguments: [{ name: 'topic', required: true }, { name: 'tone' }] };
    expect(promptArgumentProblems(d, { topic: 'x', tone: 'y' })).toEqual([]);
    expect(promptArgumentProblems(d, { tone: 'y' })).toEqual(['topic: required']);
    expect(promptArgumentProblems(d, { topic: 'x', other: 'z' })).toEqual([
      'other: not declared by the prompt',
    ]);
    expect(promptArgumentProblems(d, { topic: 3 })).toEqual(['topic: must be a string']);
  });
});
