import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readServerEvents, type ServerEvent } from '../../../../src/upstream/federation/events.js';

async function read(
  chunks: readonly string[],
  max = 1024,
): Promise<{ events: ServerEvent[]; tooLong: boolean }> {
  const events: ServerEvent[] = [];
  let tooLong = false;
  const body = Readable.from(chunks.map((chunk) => Buffer.from(chunk)));
  readServerEvents(
    body,
    max,
    (event) => events.push(event),
    () => {
      tooLong = true;
    },
  );
  await new Promise((resolve) => body.once('end', resolve));
  return { events, tooLong };
}

describe('readServerEvents', () => {
  it('gives each dispatched event with the last id, across chunks and line ends; a priming event’s id counts', async () => {
    const { events } = await read([
      'id: p1\ndata:\n\n',
      'id: e1\r\ndata: {"a":',
      '1}\r\n\r\n',
      'data: {"b":2}\n\n',
    ]);
    expect(events).toEqual([
      { data: '{"a":1}', lastId: 'e1' },
      { data: '{"b":2}', lastId: 'e1' },
    ]);
  });

  it('joins data lines, ignores an id holding a NUL, and stops at an event past the limit', async () => {
    const { events } = await read(['id: ok\n\nid: bad\0id\ndata: a\ndata: b\n\n']);
    expect(events).toEqual([{ data: 'a\nb', lastId: 'ok' }]);
    const long = await read([`data: ${'x'.repeat(100)}\n\ndata: after\n\n`], 50);
    expect(long.tooLong).toBe(true);
    expect(long.events).toEqual([]);
  });
});
