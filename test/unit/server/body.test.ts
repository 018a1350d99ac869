import { PassThrough, Readable } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readCapped } from '../../../src/server/body.js';

async function read(chunks: readonly Buffer[], limit: number): Promise<{ read: string; text: string }> {
  let text = '';
  const read = await readCapped(Readable.from(chunks), limit, (piece) => {
    text += piece;
  });
  return { read, text };
}

describe('readCapped: the one capped reader', () => {
  it('decodes a character split across chunks, and drops a leading BOM', async () => {
    const bytes = Buffer.from('\uFEFF{"a":"é€"}');
    expect(await read([bytes.subarray(0, 9), bytes.subarray(9, 11), bytes.subarray(11)], 100)).toEqual({
      read: 'read',
      text: '{"a":"é€"}',
    });
  });

  it('a BOM after the first chunk is text, and one split across the first chunks is dropped', async () => {
    const bom = Buffer.from('\uFEFF');
    expect(await read([Buffer.from('{"a":'), bom, Buffer.from('1}')], 100)).toEqual({
      read: 'read',
      text: '{"a":\uFEFF1}',
    });
    expect(await read([bom.subarray(0, 1), bom.subarray(1), Buffer.from('{}')], 100)).toEqual({
      read: 'read',
      text: '{}',
    });
  });

  it('reads what one strict UTF-8 decoding of the whole body reads, however it is chunked', async () => {
    // Bytes from valid text (BOM, surrogate pairs, 2-3-4 byte characters) and arbitrary bytes
    // (overlongs, lone surrogates, truncated sequences), cut at arbitrary points.
    const bytes = fc.oneof(
      fc
        .string({ unit: 'binary' })
        .map((text) => Buffer.from(`${text.length % 3 === 0 ? '\uFEFF' : ''}${text}`)),
      fc.uint8Array({ maxLength: 40 }).map((array) => Buffer.from(array)),
    );
    await fc.assert(
      fc.asyncProperty(bytes, fc.array(fc.nat(), { maxLength: 6 }), async (body, cuts) => {
        const points = [...new Set(cuts.map((cut) => cut % (body.length + 1)))].sort((a, b) => a - b);
        const chunks: Buffer[] = [];
        let at = 0;
        for (const point of [...points, body.length]) {
          if (point > at) chunks.push(body.subarray(at, point));
          at = Math.max(at, point);
        }
        let expected: { read: string; text: string };
        try {
          expected = { read: 'read', text: new TextDecoder('utf-8', { fatal: true }).decode(body) };
        } catch {
          expected = { read: 'not_utf8', text: '' };
        }
        const actual = await read(chunks, 1_000);
        expect(actual.read).toBe(expected.read);
        if (expected.read === 'read') expect(actual.text).toBe(expected.text);
      }),
      { numRuns: 2_000 },
    );
  });

  it('stops at the cap, and says when the bytes are not UTF-8', async () => {
    expect((await read([Buffer.alloc(60), Buffer.alloc(60)], 100)).read).toBe('too_large');
    expect((await read([Buffer.from([0x7b, 0xff, 0x7d])], 100)).read).toBe('not_utf8');
  });

  it('rejects a stream that fails or closes before its end', async () => {
    const failing = new PassThrough();
    const pending = readCapped(failing, 100, () => undefined);
    failing.write('{');
    failing.destroy(new Error('reset'));
    await expect(pending).rejects.toThrow('reset');
    const closing = new PassThrough();
    const closed = readCapped(closing, 100, () => undefined);
    closing.destroy();
    await expect(closed).rejects.toThrow();
  });
});
