import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { howToRead, readAnswer } from '../../../src/proxy/answer.js';

describe('howToRead: an answer the gateway must filter', () => {
  it.each([
    [200, 'json', undefined, 'read-json'],
    [200, 'sse', undefined, 'rewrite-sse'],
    [200, 'sse', 'identity', 'rewrite-sse'],
    [200, 'other', undefined, 'refuse'],
    [201, 'json', undefined, 'refuse'],
    [202, 'sse', undefined, 'refuse'],
    [204, 'other', undefined, 'refuse'],
    [200, 'json', 'gzip', 'refuse'],
    [200, 'sse', 'br', 'refuse'],
    [500, 'json', 'gzip', 'refuse'],
    [200, 'json', ['identity', 'gzip'], 'refuse'],
    [404, 'json', undefined, 'read-json'],
    [500, 'other', undefined, 'relay'],
    [405, 'other', undefined, 'relay'],
  ] as const)('status %i, %s body, Content-Encoding %j → %s', (status, kind, encoding, how) => {
    expect(howToRead(status, kind, encoding as string | string[] | undefined)).toBe(how);
  });
});

describe('readAnswer', () => {
  it('reads UTF-8 text whole, refuses more than the limit or bytes that are not UTF-8', async () => {
    expect(await readAnswer(Readable.from([Buffer.from('{"a":'), Buffer.from('"é"}')]), 100)).toBe(
      '{"a":"é"}',
    );
    expect(await readAnswer(Readable.from([Buffer.alloc(60), Buffer.alloc(60)]), 100)).toEqual({
      unreadable: 'too_large',
    });
    expect(await readAnswer(Readable.from([Buffer.from([0x7b, 0xff, 0x7d])]), 100)).toEqual({
      unreadable: 'not_json',
    });
  });
});
