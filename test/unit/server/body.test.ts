import { PassThrough, Readable } from 'node:stream';
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
