import { describe, expect, it } from 'vitest';
import { serversProblems } from '../../../../src/upstream/federation/servers.js';

describe('serversProblems', () => {
  it('accepts servers with distinct prefixes and patterns', () => {
    expect(serversProblems({ files: { resources: ['file:///**'] }, github: {} })).toEqual([]);
    expect(serversProblems({ only: { prefix: '' } })).toEqual([]);
  });

  it('refuses no server, a bad name, clashing prefixes and a pattern two servers declare', () => {
    expect(serversProblems({})).toEqual(['servers: must name at least one server']);
    expect(serversProblems({ Files: {} })).toEqual([
      'servers.Files: a server name must match ^[a-z][a-z0-9-]{0,31}$',
    ]);
    expect(serversProblems({ a: { prefix: 'x_' }, b: { prefix: 'x_y' } })).toHaveLength(1);
    expect(serversProblems({ a: { resources: ['file:///**'] }, b: { resources: ['file:///**'] } })).toEqual([
      'servers.b.resources: "file:///**" is declared by servers.a too',
    ]);
  });
});
