import { describe, expect, it } from 'vitest';
import { listAnswerOf } from '../../../../src/jsonrpc/methods.js';
import { mergePages } from '../../../../src/upstream/federation/merge.js';
import { ExposedNames, prefixesOf } from '../../../../src/upstream/federation/names.js';

const names = new ExposedNames(prefixesOf({ files: {}, github: {} }));
const tools = listAnswerOf('tools/list');
const resources = listAnswerOf('resources/list');
if (tools === undefined || resources === undefined) throw new Error('the method table lost its lists');

describe('mergePages', () => {
  it('renames tools to their exposed names, in server order, hiding names outside the tool-name rule', () => {
    const merged = mergePages(
      tools,
      [
        { server: 'files', result: { tools: [{ name: 'read', inputSchema: {} }, { name: 'bad name' }] } },
        { server: 'github', result: { tools: [{ name: 'create_issue', description: 'd' }, 'junk'] } },
      ],
      names,
    );
    expect(merged.result.tools).toEqual([
      { name: 'files__read', inputSchema: {} },
      { name: 'github__create_issue', description: 'd' },
    ]);
    expect(merged.next).toEqual({ files: null, github: null });
  });

  it('keeps resource URIs, collects each server’s next cursor, the smallest ttlMs, and public only when all are', () => {
    const merged = mergePages(
      resources,
      [
        {
          server: 'files',
          result: {
            resources: [{ uri: 'file:///a', name: 'a' }],
            nextCursor: 'f2',
            ttlMs: 5000,
            cacheScope: 'public',
          },
        },
        { server: 'github', result: { resources: [{ uri: 'gh://r', name: 'r' }], ttlMs: 1000 } },
      ],
      names,
    );
    expect(merged.result).toEqual({
      resultType: 'complete',
      resources: [
        { uri: 'file:///a', name: 'a' },
        { uri: 'gh://r', name: 'r' },
      ],
      ttlMs: 1000,
      cacheScope: 'private',
    });
    expect(merged.next).toEqual({ files: 'f2', github: null });
    const allPublic = mergePages(
      resources,
      [{ server: 'files', result: { resources: [], cacheScope: 'public', ttlMs: 7 } }],
      names,
    );
    expect(allPublic.result).toMatchObject({ cacheScope: 'public', ttlMs: 7 });
  });
});
