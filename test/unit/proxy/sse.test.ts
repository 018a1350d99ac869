import { once } from 'node:events';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createSseRewriter } from '../../../src/proxy/sse.js';

type Rewrite = (data: string) => string | undefined;

const untouched: Rewrite = () => undefined;

/** Writes `chunks` through a rewriter as an upstream would, and returns the bytes the client gets. */
async function through(chunks: readonly (string | Buffer)[], rewrite: Rewrite): Promise<Buffer> {
  const rewriter = createSseRewriter(rewrite);
  const out: Buffer[] = [];
  rewriter.on('data', (chunk: Buffer | string) => out.push(Buffer.from(chunk)));
  const ended = once(rewriter, 'end');
  for (const chunk of chunks) rewriter.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  rewriter.end();
  await ended;
  return Buffer.concat(out);
}

/** Splits `bytes` at the given offsets (any order, duplicates allowed). */
function splitAt(bytes: Buffer, offsets: readonly number[]): Buffer[] {
  const cuts = [...new Set(offsets.map((o) => o % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Buffer[] = [];
  let start = 0;
  for (const cut of cuts) {
    parts.push(bytes.subarray(start, cut));
    start = cut;
  }
  parts.push(bytes.subarray(start));
  return parts;
}

const listAnswer = '{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"read_file"},{"name":"write_file"}]}}';
const filteredAnswer = '{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"read_file"}]}}';
const rewriteList: Rewrite = (data) => (data === listAnswer ? filteredAnswer : undefined);

describe('createSseRewriter: passing events through', () => {
  it('passes a stream it does not rewrite through byte for byte', async () => {
    const stream = [
      ': ping\n\n',
      'id: 1\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/message","params":{"data":"déjà €"}}\n\n',
      'retry: 1000\n\n',
      'id: 2\r\nevent: message\r\ndata: {"a":\r\ndata: 1}\r\n\r\n',
      'data:no-space\n\n',
      'data: cr only\r\r',
      'event: custom\nid: 3\ndata: 日本語 😀\n\n',
    ].join('');
    expect((await through([stream], untouched)).toString()).toBe(stream);
  });

  it('passes comments and events without data through without asking to rewrite them', async () => {
    const seen: string[] = [];
    const stream = ': ping\n\nid: 9\n\nevent: keepalive\n\n:\n\n';
    const out = await through([stream], (data) => {
      seen.push(data);
      return 'never';
    });
    expect(out.toString()).toBe(stream);
    expect(seen).toEqual([]);
  });

  it('rewrites only the event whose data it replaces, leaving the others byte for byte', async () => {
    const before = 'id: 1\nevent: message\ndata: {"jsonrpc":"2.0","method":"notifications/progress"}\n\n';
    const after = ': ping\n\nid: 3\ndata: {"jsonrpc":"2.0","method":"notifications/message"}\n\n';
    const target = `id: 2\nevent: message\ndata: ${listAnswer}\n\n`;
    const out = await through([before + target + after], rewriteList);
    expect(out.toString()).toBe(`${before}id: 2\nevent: message\ndata: ${filteredAnswer}\n\n${after}`);
  });

  it('keeps the id: and event: lines of the rewritten event, in their order', async () => {
    const out = await through([`event: message\nid: evt-42\ndata: ${listAnswer}\n\n`], rewriteList);
    expect(out.toString()).toBe(`event: message\nid: evt-42\ndata: ${filteredAnswer}\n\n`);
  });

  it('joins multi-line data with newlines before handing it over', async () => {
    const seen: string[] = [];
    await through(['data: {"jsonrpc":"2.0",\ndata:"id":1,\ndata:  "result":{}}\n\n'], (data) => {
      seen.push(data);
      return undefined;
    });
    // One leading space is the separator; a second one is data.
    expect(seen).toEqual(['{"jsonrpc":"2.0",\n"id":1,\n "result":{}}']);
  });

  it('writes a multi-line replacement as one data line per line', async () => {
    const out = await through(['id: 5\ndata: x\n\n'], () => 'first\nsecond');
    expect(out.toString()).toBe('id: 5\ndata: first\ndata: second\n\n');
  });

  it('rewrites a CRLF event, keeping its id: and event: lines', async () => {
    const seen: string[] = [];
    const out = await through(['id: 7\r\nevent: message\r\ndata: a\r\ndata: b\r\n\r\n'], (data) => {
      seen.push(data);
      return 'B';
    });
    expect(seen).toEqual(['a\nb']);
    expect(out.toString()).toBe('id: 7\nevent: message\ndata: B\n\n');
  });

  // SSE (HTML §9.2.6): any of CRLF, LF, CR ends a line, so `\n` then `\r\n` is a line then a blank line.
  it('ends an event at a blank line written with a different line ending than the line before', async () => {
    const seen: string[] = [];
    const next = 'data: {"jsonrpc":"2.0","method":"notifications/message"}\n\n';
    const out = await through([`id: 1\ndata: ${listAnswer}\n\r\n${next}`], (data) => {
      seen.push(data);
      return rewriteList(data);
    });
    expect(seen).toEqual([listAnswer, '{"jsonrpc":"2.0","method":"notifications/message"}']);
    expect(out.toString()).toBe(`id: 1\ndata: ${filteredAnswer}\n\n${next}`);
  });

  // SSE: a line `data` without a colon is the field `data` with an empty value.
  it('counts a bare `data` line as an empty data line and does not keep it in a rewritten event', async () => {
    const seen: string[] = [];
    const out = await through(['id: 4\ndata: a\ndata\ndata: b\n\n'], (data) => {
      seen.push(data);
      return 'new';
    });
    expect(seen).toEqual(['a\n\nb']);
    expect(out.toString()).toBe('id: 4\ndata: new\n\n');
  });

  it('hands over an event split across chunks once, whole', async () => {
    const seen: string[] = [];
    const event = `id: 2\nevent: message\ndata: ${listAnswer}\n\n`;
    const out = await through(
      [event.slice(0, 5), event.slice(5, 40), event.slice(40, -1), event.slice(-1)],
      (d) => {
        seen.push(d);
        return rewriteList(d);
      },
    );
    expect(seen).toEqual([listAnswer]);
    expect(out.toString()).toBe(`id: 2\nevent: message\ndata: ${filteredAnswer}\n\n`);
  });

  it('decodes a multi-byte UTF-8 character split across chunks', async () => {
    const text = 'data: {"note":"€😀"}\n\n';
    const bytes = Buffer.from(text);
    const euro = bytes.indexOf(0xe2);
    const emoji = bytes.indexOf(0xf0);
    const seen: string[] = [];
    const out = await through(
      [bytes.subarray(0, euro + 1), bytes.subarray(euro + 1, emoji + 2), bytes.subarray(emoji + 2)],
      (data) => {
        seen.push(data);
        return undefined;
      },
    );
    expect(seen).toEqual(['{"note":"€😀"}']);
    expect(out.equals(bytes)).toBe(true);
  });

  it('flushes trailing partial data at the end of the stream, untouched', async () => {
    const seen: string[] = [];
    const stream = 'data: a\n\ndata: partial €';
    const out = await through([stream], (data) => {
      seen.push(data);
      return undefined;
    });
    expect(out.toString()).toBe(stream);
    expect(seen).toEqual(['a']);
  });

  it('sends each complete event on before the next one has arrived', async () => {
    const rewriter = createSseRewriter(rewriteList);
    const out: string[] = [];
    rewriter.on('data', (chunk: Buffer) => out.push(chunk.toString()));
    const ended = once(rewriter, 'end');
    rewriter.write(Buffer.from(`id: 1\ndata: ${listAnswer}\n\nid: 2\ndata: {"jsonrpc"`));
    await new Promise((resolve) => setImmediate(resolve));
    expect(out.join('')).toBe(`id: 1\ndata: ${filteredAnswer}\n\n`);
    rewriter.end(Buffer.from(':"2.0"}\n\n'));
    await ended;
    expect(out.join('')).toBe(`id: 1\ndata: ${filteredAnswer}\n\nid: 2\ndata: {"jsonrpc":"2.0"}\n\n`);
  });

  it('gives the same bytes however the stream is cut into chunks', async () => {
    const stream = [
      ': ping\r\n\r\n',
      'id: 1\nevent: message\ndata: {"note":"déjà vu €😀"}\n\n',
      `id: 2\r\nevent: message\r\ndata: ${listAnswer}\r\n\r\n`,
      'retry: 500\n\n',
      `event: message\ndata: ${listAnswer}\n\n`,
      'data: 日本語\n\n',
      'data: tail ✓',
    ];
    const expected = Buffer.from(
      [
        stream[0],
        stream[1],
        `id: 2\nevent: message\ndata: ${filteredAnswer}\n\n`,
        stream[3],
        `event: message\ndata: ${filteredAnswer}\n\n`,
        stream[5],
        stream[6],
      ].join(''),
    );
    const bytes = Buffer.from(stream.join(''));
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat(), { maxLength: 12 }), async (offsets) => {
        const out = await through(splitAt(bytes, offsets), rewriteList);
        expect(out.toString()).toBe(expected.toString());
      }),
      { numRuns: 150 },
    );
    const byteByByte = await through(splitAt(bytes, [...bytes.keys()]), rewriteList);
    expect(byteByByte.toString()).toBe(expected.toString());
  });
});
