import { describe, expect, it } from 'vitest';
import { ExposedNames, prefixesOf, prefixProblems } from '../../../../src/upstream/federation/names.js';

describe('prefixes', () => {
  it('default to <server>__ and take a configured one', () => {
    expect([...prefixesOf({ files: {}, github: { prefix: 'gh_' } })]).toEqual([
      ['files', 'files__'],
      ['github', 'gh_'],
    ]);
  });

  it('refuse one that begins another, an empty one beside others, and characters no tool name has', () => {
    expect(
      prefixProblems(
        new Map([
          ['a', 'x_'],
          ['b', 'x_y_'],
        ]),
      ),
    ).toEqual([
      'servers.a.prefix and servers.b.prefix: "x_" and "x_y_" — one begins the other, so a name of one server could fall under the other\'s',
    ]);
    expect(
      prefixProblems(
        new Map([
          ['a', ''],
          ['b', 'b__'],
        ]),
      ),
    ).toContain('servers.a.prefix: must not be empty on a route with more than one server');
    expect(prefixProblems(new Map([['a', 'a/']]))).toEqual([
      'servers.a.prefix: must use only the characters of a tool name (A-Z a-z 0-9 _ . -)',
    ]);
    expect(prefixProblems(new Map([['only', '']]))).toEqual([]);
    expect(
      prefixProblems(
        new Map([
          ['a', 'a__'],
          ['b', 'b__'],
          ['ab', 'ab__'],
        ]),
      ),
    ).toEqual([]);
  });
});

describe('ExposedNames', () => {
  const names = new ExposedNames(prefixesOf({ files: {}, github: {} }));

  it('exposes a server’s name under its prefix, and resolves it back', () => {
    expect(names.expose('github', 'create_issue')).toBe('github__create_issue');
    expect(names.resolve('github__create_issue')).toEqual({ server: 'github', name: 'create_issue' });
    expect(names.resolve('files__read')).toEqual({ server: 'files', name: 'read' });
  });

  it('never lets a server’s name fall under another’s prefix', () => {
    // github publishing "files__read" exposes it as github__files__read: still github's.
    expect(names.expose('github', 'files__read')).toBe('github__files__read');
    expect(names.resolve('github__files__read')).toEqual({ server: 'github', name: 'files__read' });
  });

  it('hides names outside the tool-name rule, and resolves no name it could not have exposed', () => {
    expect(names.expose('files', 'has space')).toBeUndefined();
    expect(names.expose('files', 'x'.repeat(128))).toBeUndefined();
    expect(names.expose('nobody', 'x')).toBeUndefined();
    expect(names.resolve('files__')).toBeUndefined();
    expect(names.resolve('other__x')).toBeUndefined();
    expect(names.resolve('files__has space')).toBeUndefined();
  });
});
