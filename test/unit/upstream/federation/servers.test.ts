import { describe, expect, it } from 'vitest';
import { serversProblems } from '../../../../src/upstream/federation/servers.js';

describe('serversProblems', () => {
  it('accepts servers with distinct prefixes and patterns', () => {
    expect(serversProblems({ files: { resources: ['file:///**'] }, github: {} })).toEqual([]);
    expect(serversProblems({ only: { prefix: '' } })).toEqual([]);
  });

  it('refuses no server, a bad name, clashing prefixes and patterns of two servers that overlap', () => {
    expect(serversProblems({})).toEqual(['servers: must name at least one server']);
    expect(serversProblems({ Files: {} })).toEqual([
      'servers.Files: a server name must match ^[a-z][a-z0-9-]{0,31}$',
    ]);
    expect(serversProblems({ a: { prefix: 'x_' }, b: { prefix: 'x_y' } })).toHaveLength(1);
    expect(serversProblems({ a: { resources: ['file:///**'] }, b: { resources: ['file:///**'] } })).toEqual([
      `servers.b.resources: "file:///**" overlaps servers.a's "file:///**" (a URI both match would have two owners)`,
    ]);
    expect(
      serversProblems({ a: { resources: ['file:///**'] }, b: { resources: ['file:///srv/*'] } }),
    ).toHaveLength(1);
    expect(
      serversProblems({ a: { resources: ['file:///a/*'] }, b: { resources: ['file:///b/**'] } }),
    ).toEqual([]);
  });
});
