import { describe, expect, it } from 'vitest';
import { diffPins, drifted, renderDiff } from '../../../src/integrity/pin-diff.js';
import { PIN_FORMAT, PinSet, parsePins, pinsOf, serializePins } from '../../../src/integrity/pins.js';

const NONE = new Set<string>();
const tool = (name: string, description = 'd', extra: Record<string, unknown> = {}) => ({
  kind: 'tool' as const,
  server: 'a',
  definition: { name, description, inputSchema: { type: 'object' }, ...extra },
});

describe('pin files', () => {
  it('round-trip: written sorted and stable, read back to the same pins', () => {
    const { pins } = pinsOf(
      [tool('b'), tool('a'), { kind: 'prompt', server: undefined, definition: { name: 'p' } }],
      NONE,
    );
    const text = serializePins('/mcp', pins);
    expect(serializePins('/mcp', [...pins].reverse())).toBe(text);
    const read = parsePins(text, NONE);
    expect(read).toBeInstanceOf(PinSet);
    expect((read as PinSet).get('tool', 'a', 'a')?.hash).toBe(pins.find((p) => p.name === 'a')?.hash);
    expect((read as PinSet).get('prompt', undefined, 'p')).toBeDefined();
    // Keyed by server and name: the same name on another server is another pin.
    expect((read as PinSet).get('tool', 'b', 'a')).toBeUndefined();
    expect(JSON.parse(text).tools.map((t: { name: string }) => t.name)).toEqual(['a', 'b']);
  });

  it('refuse another format, malformed entries, a hand-edited definition and duplicates', () => {
    const { pins } = pinsOf([tool('a')], NONE);
    const file = JSON.parse(serializePins('/mcp', pins));
    const problem = (value: unknown) =>
      (parsePins(JSON.stringify(value), NONE) as { problem?: string }).problem;
    expect(problem({ ...file, format: 'other/1' })).toContain(PIN_FORMAT);
    expect(parsePins('{', NONE)).toMatchObject({ problem: expect.stringContaining('not JSON') });
    expect(
      problem({
        ...file,
        tools: [{ ...file.tools[0], definition: { ...file.tools[0].definition, description: 'x' } }],
      }),
    ).toContain('hash does not match');
    expect(problem({ ...file, tools: [{ ...file.tools[0], name: 'other' }] })).toContain('name differs');
    expect(problem({ ...file, tools: [file.tools[0], file.tools[0]] })).toContain('pinned twice');
    expect(problem({ ...file, tools: {} })).toContain('must be an array');
  });

  it('pin neither copy of a name listed twice', () => {
    const { pins, unpinnable } = pinsOf([tool('twice', 'a'), tool('ok'), tool('twice', 'b')], NONE);
    expect(pins.map((p) => p.name)).toEqual(['ok']);
    expect(unpinnable).toEqual(['tool a/twice: listed more than once']);
  });

  it('leave out what cannot be pinned, saying why', () => {
    const { pins, unpinnable } = pinsOf([tool('ok'), tool('bad', '\ud800')], NONE);
    expect(pins.map((p) => p.name)).toEqual(['ok']);
    expect(unpinnable).toEqual(['tool a/bad: definition is not valid Unicode JSON']);
  });
});

describe('pin diffs', () => {
  it('name what was added, removed and changed, with text diffs of description and schema', () => {
    const pinned = new PinSet(
      pinsOf([tool('keep'), tool('gone'), tool('edit', 'line one\nline two')], NONE).pins,
    );
    const listed = pinsOf(
      [
        tool('keep'),
        tool('new'),
        tool('edit', 'line one\nline 2', { inputSchema: { type: 'object', required: ['x'] } }),
      ],
      NONE,
    ).pins;
    const diff = diffPins(pinned, listed);
    expect(drifted(diff)).toBe(true);
    expect(diff.added.map((p) => p.name)).toEqual(['new']);
    expect(diff.removed.map((p) => p.name)).toEqual(['gone']);
    expect(diff.changed.map((c) => c.pinned.name)).toEqual(['edit']);
    const text = renderDiff(diff);
    expect(text).toMatch(/^\+ tool a\/new {2}sha256:/m);
    expect(text).toMatch(/^- tool a\/gone {2}sha256:/m);
    expect(text).toMatch(/^~ tool a\/edit {2}sha256:\w+ → sha256:\w+$/m);
    expect(text).toContain('    -line two');
    expect(text).toContain('    +line 2');
    expect(text).toContain('    +    "required": [');
    expect(drifted(diffPins(new PinSet(listed), listed))).toBe(false);
    expect(renderDiff(diffPins(new PinSet(listed), listed))).toBe('');
  });
});
