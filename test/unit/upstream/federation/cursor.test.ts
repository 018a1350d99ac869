import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createSealer } from '../../../../src/proxy/seal.js';
import {
  CURSOR_TTL_MS,
  openCursor,
  sealCursor,
  sealFittingCursor,
} from '../../../../src/upstream/federation/cursor.js';

const sealer = createSealer([randomBytes(32).toString('base64')]);
const scope = { route: '/mcp', method: 'tools/list', identity: 'apiKey:alice' };

describe('composite cursors', () => {
  it('carry every server’s cursor, for the same route, method and identity', () => {
    const cursor = sealCursor(sealer, scope, { files: 'page-2', github: null }, 1000) as string;
    expect(openCursor(sealer, scope, cursor, 2000)).toEqual({ files: 'page-2', github: null });
  });

  it('do not open for another identity, route or method, after expiry, or altered', () => {
    const cursor = sealCursor(sealer, scope, { files: 'p' }, 1000) as string;
    expect(openCursor(sealer, { ...scope, identity: 'apiKey:bob' }, cursor, 2000)).toBeUndefined();
    expect(openCursor(sealer, { ...scope, route: '/other' }, cursor, 2000)).toBeUndefined();
    expect(openCursor(sealer, { ...scope, method: 'prompts/list' }, cursor, 2000)).toBeUndefined();
    expect(openCursor(sealer, scope, cursor, 1000 + CURSOR_TTL_MS + 1)).toBeUndefined();
    expect(openCursor(sealer, scope, `${cursor.slice(0, -2)}AA`, 2000)).toBeUndefined();
    expect(openCursor(createSealer(undefined), scope, cursor, 2000)).toBeUndefined();
  });

  it('are not given when every server has finished, or when they would be too long', () => {
    expect(sealCursor(sealer, scope, { files: null, github: null })).toBeUndefined();
    expect(sealCursor(sealer, scope, { files: 'x'.repeat(10_000) })).toBeUndefined();
    expect(openCursor(sealer, scope, 'A'.repeat(9000))).toBeUndefined();
  });

  it('leave out the longest server cursors until they fit, never the others', () => {
    const fitted = sealFittingCursor(sealer, scope, {
      files: 'page-2',
      greedy: 'x'.repeat(20_000),
      wide: 'y'.repeat(7_000),
      done: null,
    });
    expect(fitted.dropped).toEqual(['greedy', 'wide']);
    expect(openCursor(sealer, scope, fitted.cursor as string)).toEqual({
      files: 'page-2',
      greedy: null,
      wide: null,
      done: null,
    });
    expect(sealFittingCursor(sealer, scope, { greedy: 'x'.repeat(20_000) })).toEqual({
      cursor: undefined,
      dropped: ['greedy'],
    });
    expect(sealFittingCursor(sealer, scope, { done: null })).toEqual({ cursor: undefined, dropped: [] });
  });
});
