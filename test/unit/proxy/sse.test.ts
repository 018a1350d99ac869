import { once } from 'node:events';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  createSseFramer,
  createSseRewriter,
  DROP_EVENT,
  type RewriteResult,
  UnreadableEventError,
} from '../../../src/proxy/sse.js';

type Rewrite = (data: string) => RewriteResult;
const OPTIONS = { maxEventLength: 16_000_000 };

const untouched: Rewrite = () => undefined;

/** Writes `chunks` through a rewriter as an upstream would, and returns the bytes the client gets. */
async function through(chunks: readonly (string | Buffer)[], rewrite: Rewrite): Promise<Buffer> {
  const rewriter = createSseRewriter(rewrite, OPTIONS);
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

  // WHATWG: at the end of the stream an incomplete event is discarded, not dispatched.
  it('discards an unterminated final event, never relaying its bytes', async () => {
    const seen: string[] = [];
    for (const tail of [
      'data: partial €',
      `data: ${listAnswer}\n`,
      `data: ${listAnswer}\r`,
      `data: ${listAnswer}\r\n`,
    ]) {
      seen.length = 0;
      const out = await through([`data: a\n\n${tail}`], (data) => {
        seen.push(data);
        return rewriteList(data);
      });
      expect(out.toString(), JSON.stringify(tail)).toBe('data: a\n\n');
      expect(seen).toEqual(['a']);
    }
  });

  // The bypass: a lone CR as the very last byte completed the blank line, but the rewriter
  // waited for an LF that never came and flushed the event unfiltered.
  it('rewrites an event whose blank line is a lone CR at the very end of the stream', async () => {
    for (const chunks of [
      [`data: ${listAnswer}\r\r`],
      [`data: ${listAnswer}\r`, '\r'],
      [`data: ${listAnswer}\n\r`],
    ]) {
      const out = await through(chunks, rewriteList);
      expect(out.toString()).toBe(`data: ${filteredAnswer}\n\n`);
    }
  });

  it('sends a rewritten event as soon as a lone CR ends it, without waiting for a possible LF', async () => {
    const rewriter = createSseRewriter(rewriteList, OPTIONS);
    const out: string[] = [];
    rewriter.on('data', (chunk: Buffer) => out.push(chunk.toString()));
    rewriter.write(Buffer.from(`data: ${listAnswer}\r\r`));
    await new Promise((resolve) => setImmediate(resolve));
    expect(out.join('')).toBe(`data: ${filteredAnswer}\n\n`);
    // The LF completing that CRLF belongs to the rewritten event: not a second blank line.
    rewriter.end(Buffer.from('\ndata: next\n\n'));
    await once(rewriter, 'end');
    expect(out.join('')).toBe(`data: ${filteredAnswer}\n\ndata: next\n\n`);
  });

  it('strips a leading BOM from the first field name, as EventSource does', async () => {
    const out = await through([`\uFEFFdata: ${listAnswer}\n\n`], rewriteList);
    expect(out.toString()).toBe(`data: ${filteredAnswer}\n\n`);
  });

  it('sends each complete event on before the next one has arrived', async () => {
    const rewriter = createSseRewriter(rewriteList, OPTIONS);
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
      `data: ${listAnswer}\r\r`,
    ];
    const expected = Buffer.from(
      [
        stream[0],
        stream[1],
        `id: 2\nevent: message\ndata: ${filteredAnswer}\n\n`,
        stream[3],
        `event: message\ndata: ${filteredAnswer}\n\n`,
        stream[5],
        `data: ${filteredAnswer}\n\n`,
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

/**
 * A reference WHATWG EventSource parser (HTML §9.2.6), written from the standard for this test:
 * the data of every event it would dispatch, in order.
 */
function dispatched(bytes: Buffer): string[] {
  let text = new TextDecoder('utf-8').decode(bytes); // replaces invalid sequences, strips one BOM
  const events: string[] = [];
  let buffer = '';
  let i = 0;
  while (i < text.length) {
    let end = i;
    while (end < text.length && text[end] !== '\r' && text[end] !== '\n') end++;
    if (end === text.length) break; // an incomplete line at the end is discarded
    const line = text.slice(i, end);
    i = text[end] === '\r' && text[end + 1] === '\n' ? end + 2 : end + 1;
    if (line === '') {
      if (buffer !== '') events.push(buffer.endsWith('\n') ? buffer.slice(0, -1) : buffer);
      buffer = '';
      continue;
    }
    if (line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') buffer += `${value}\n`;
  }
  text = '';
  return events;
}

/** Streams built from the pieces an upstream (or an attacker) might send, every line ending mixed. */
const terminator = fc.constantFrom('\n', '\r', '\r\n');
const sseLine = fc.oneof(
  fc.constant('data'),
  fc.constant('data:'),
  fc.stringMatching(/^[a-z {}":,[\]\u00e9\u20ac]{0,12}$/).map((v) => `data: ${v}`),
  fc.stringMatching(/^[a-z {}"]{0,8}$/).map((v) => `data:${v}`),
  fc.constant(`data: ${listAnswer}`),
  fc.constant(': comment'),
  fc.constant('id: 7'),
  fc.constant('event: message'),
  fc.constant('retry: 10'),
  fc.constant('dat: x'),
  fc.constant('data : x'),
  fc.constant(''),
);
const sseStream = fc
  .tuple(
    fc.boolean(),
    fc.array(fc.tuple(sseLine, terminator), { maxLength: 14 }),
    fc.oneof(fc.constant(''), fc.constant('data: unterminated'), fc.constant('data: x\r')),
  )
  .map(([bom, lines, tail]) => `${bom ? '\uFEFF' : ''}${lines.map(([l, t]) => l + t).join('')}${tail}`);

/** A rewrite that visibly changes some events and keeps others: data that starts with `{` is replaced. */
const mark: Rewrite = (data) => (data.startsWith('{') ? `R${data.length}` : undefined);
const expectMarked = (data: string) => (data.startsWith('{') ? `R${data.length}` : data);

describe('createSseRewriter against a reference EventSource parser', () => {
  it('hands rewrite exactly the events an EventSource dispatches, in order', async () => {
    await fc.assert(
      fc.asyncProperty(sseStream, async (stream) => {
        const seen: string[] = [];
        await through([stream], (data) => {
          seen.push(data);
          return undefined;
        });
        expect(seen).toEqual(dispatched(Buffer.from(stream)));
      }),
      { numRuns: 400 },
    );
  });

  it('produces a stream whose dispatched events are the input’s, rewritten, whatever the chunking', async () => {
    await fc.assert(
      fc.asyncProperty(sseStream, fc.array(fc.nat(), { maxLength: 8 }), async (stream, offsets) => {
        const bytes = Buffer.from(stream);
        const whole = await through([bytes], mark);
        const chunked = await through(splitAt(bytes, offsets), mark);
        expect(chunked.toString()).toBe(whole.toString());
        expect(dispatched(whole)).toEqual(dispatched(bytes).map(expectMarked));
      }),
      { numRuns: 400 },
    );
  });

  it('relays untouched streams byte for byte, up to the last complete event', async () => {
    await fc.assert(
      fc.asyncProperty(sseStream, async (stream) => {
        const out = (await through([stream], untouched)).toString();
        expect(stream.startsWith(out)).toBe(true);
        expect(dispatched(Buffer.from(out))).toEqual(dispatched(Buffer.from(stream)));
      }),
      { numRuns: 300 },
    );
  });
});

/** A rewrite that drops every event whose data starts with `{`, and keeps the others as they came. */
const dropObjects: Rewrite = (data) => (data.startsWith('{') ? DROP_EVENT : undefined);

describe('createSseRewriter: dropping whole events', () => {
  it('sends none of a dropped event’s bytes (id:, event:, data) and the others byte for byte', async () => {
    const kept = 'id: 1\nevent: message\ndata: keep\n\n';
    const dropped = 'id: 2\nevent: message\ndata: {"drop":true}\n\n';
    const after = ': ping\n\ndata: also kept\n\n';
    const out = await through([kept + dropped + after], dropObjects);
    expect(out.toString()).toBe(kept + after);
  });

  it('drops an event split across chunks, held bytes and all, and keeps the stream going', async () => {
    const out = await through(
      ['data: before\n\nid: 9\ndata: {"a":', '1}\ndata: x\n', '\ndata: after\n\n'],
      dropObjects,
    );
    expect(out.toString()).toBe('data: before\n\ndata: after\n\n');
  });

  it('swallows the LF completing a CR that ended a dropped event in the previous chunk', async () => {
    const out = await through(['data: {}\r\n\r', '\ndata: next\r\n\r\n'], dropObjects);
    expect(out.toString()).toBe('data: next\r\n\r\n');
    const dispatchedOut = dispatched(out);
    expect(dispatchedOut).toEqual(['next']);
  });

  it('leaves exactly the events an EventSource dispatches minus the dropped ones, whatever the chunking', async () => {
    await fc.assert(
      fc.asyncProperty(sseStream, fc.array(fc.nat(), { maxLength: 8 }), async (stream, offsets) => {
        const bytes = Buffer.from(stream);
        const whole = await through([bytes], dropObjects);
        const chunked = await through(splitAt(bytes, offsets), dropObjects);
        expect(chunked.toString()).toBe(whole.toString());
        expect(dispatched(whole)).toEqual(dispatched(bytes).filter((data) => !data.startsWith('{')));
      }),
      { numRuns: 400 },
    );
  });
});

describe('createSseRewriter: what it will not hold or cannot read', () => {
  /** Feeds `chunks` and resolves with the error the stream failed with (or undefined) and what it sent. */
  async function failure(chunks: readonly string[], rewrite: Rewrite, maxEventLength = 1000) {
    const rewriter = createSseRewriter(rewrite, { maxEventLength });
    const out: string[] = [];
    rewriter.on('data', (chunk: Buffer) => out.push(chunk.toString()));
    const settled = new Promise<Error | undefined>((resolve) => {
      rewriter.once('error', resolve);
      rewriter.once('end', () => resolve(undefined));
    });
    for (const chunk of chunks) rewriter.write(Buffer.from(chunk));
    rewriter.end();
    return { error: await settled, out: out.join('') };
  }

  it('fails with too_large when one event outgrows the limit, having sent the events before it', async () => {
    const { error, out } = await failure(
      ['data: a\n\n', 'data: ', 'x'.repeat(600), 'y'.repeat(600)],
      untouched,
    );
    expect(error).toBeInstanceOf(UnreadableEventError);
    expect((error as UnreadableEventError).reason).toBe('too_large');
    expect(out).toBe('data: a\n\n');
  });

  it('fails with the reason rewrite gives for data it cannot read', async () => {
    const { error, out } = await failure(['data: [[[\n\n'], () => ({ unreadable: 'too_deep' }));
    expect((error as UnreadableEventError).reason).toBe('too_deep');
    expect(out).toBe('');
  });

  it('turns an exception in rewrite into a stream error, never a throw into the writer', async () => {
    const boom = new RangeError('Maximum call stack size exceeded');
    const { error } = await failure(['data: x\n\n'], () => {
      throw boom;
    });
    expect(error).toBe(boom);
  });

  it('scans a large event in many chunks in linear time', async () => {
    const started = performance.now();
    const chunk = 'x'.repeat(1024);
    const chunks = ['data: ', ...Array.from({ length: 4096 }, () => chunk), '\n\n'];
    const seen: number[] = [];
    await through(chunks, (data) => {
      seen.push(data.length);
      return undefined;
    });
    expect(seen).toEqual([4096 * 1024]);
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe('createSseFramer: the one framer', () => {
  /** What the framer reports for `chunks`, as text. */
  function framed(chunks: readonly Buffer[]): string[] {
    const seen: string[] = [];
    let line = '';
    const framer = createSseFramer({
      dataLine: () => {
        line += '<data>';
      },
      data: (bytes, start, end) => {
        line += bytes.subarray(start, end).toString('latin1');
      },
      other: (bytes, start, end) => {
        line += bytes.subarray(start, end).toString('latin1');
      },
      lineEnd: (kind, terminator) => {
        seen.push(`${kind}:${line}${JSON.stringify(terminator)}`);
        line = '';
      },
      lfAfterCr: () => seen.push('lf'),
    });
    for (const chunk of chunks) framer.write(chunk);
    return seen;
  }

  it('finds data lines by their exact field name, one space after the colon being syntax', () => {
    expect(framed([Buffer.from('data: a\ndata:  b\ndata\nDatA: c\ndatum: d\n: note\n\n')])).toEqual([
      'data:<data>a"\\n"',
      'data:<data> b"\\n"',
      'data:<data>"\\n"',
      'other:DatA: c"\\n"',
      'other:datum: d"\\n"',
      'other:: note"\\n"',
      'blank:"\\n"',
    ]);
  });

  it('ends a line at a CR that ends a chunk, and reports the LF opening the next one apart', () => {
    expect(framed([Buffer.from('da'), Buffer.from('ta: x\r'), Buffer.from('\n\r\n')])).toEqual([
      'data:<data>x"\\r"',
      'lf',
      'blank:"\\r\\n"',
    ]);
  });

  it('skips a leading BOM, even split across chunks, and keeps a BOM cut short as field bytes', () => {
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    expect(framed([bom.subarray(0, 2), Buffer.concat([bom.subarray(2), Buffer.from('data: a\n')])])).toEqual([
      'data:<data>a"\\n"',
    ]);
    expect(framed([Buffer.from([0xef, 0xbb, 0x64]), Buffer.from('ata: a\n')])).toEqual([
      `other:${Buffer.from([0xef, 0xbb]).toString('latin1')}data: a"\\n"`,
    ]);
  });
});
