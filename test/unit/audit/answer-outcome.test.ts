/**
 * The answer scanners against their specification — what `JSON.parse` says of the same bytes —
 * for random responses, batches and SSE framings, cut into random chunks (a chunk boundary may
 * fall anywhere: inside a key, an escape, a multi-byte character, a CRLF).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type AnswerOutcome,
  type AnswerScanner,
  createJsonAnswerScanner,
  createSseAnswerScanner,
  MAX_OUTCOMES,
} from '../../../src/audit/answer-outcome.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** What the audit record must say of one parsed message, or undefined when it is no response. */
function expected(message: unknown): AnswerOutcome | undefined {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return undefined;
  const m = message as Record<string, unknown>;
  const error = m.error;
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === 'object' && v !== null && !Array.isArray(v);
  const hasResult = 'result' in m;
  const hasError = isObject(error);
  if (!hasResult && !hasError) return undefined;
  const id = m.id;
  const code = hasError ? error.code : undefined;
  // A string id longer than 256 bytes as written is not kept (the scanner's memory is bounded).
  const kept = typeof id !== 'string' || Buffer.byteLength(JSON.stringify(id)) - 2 <= 256;
  return {
    id: (typeof id === 'string' && kept) || typeof id === 'number' || id === null ? id : undefined,
    isError: hasError || (isObject(m.result) && m.result.isError === true),
    ...(hasError && typeof code === 'number' && Number.isInteger(code) ? { errorCode: code } : {}),
  };
}

function expectedOf(text: string): AnswerOutcome[] {
  const parsed: unknown = JSON.parse(text);
  const list = Array.isArray(parsed) ? parsed : [parsed];
  return list.map(expected).filter((o): o is AnswerOutcome => o !== undefined);
}

function feed(scanner: AnswerScanner, bytes: Buffer, cuts: number[]): AnswerOutcome[] {
  let at = 0;
  for (const cut of [...cuts.map((c) => c % (bytes.length + 1))].sort((a, b) => a - b)) {
    scanner.write(bytes.subarray(at, Math.max(at, cut)));
    at = Math.max(at, cut);
  }
  scanner.write(bytes.subarray(at));
  return scanner.end();
}

const key = fc.oneof(
  fc.constantFrom('id', 'result', 'error', 'isError', 'code', 'content', 'jsonrpc', 'is\\Error'),
  fc.string({ maxLength: 8 }),
);
const scalar: fc.Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -40000, max: 40000 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.string({ maxLength: 20, unit: 'binary' }),
  fc.constantFrom('"', '\\', '\\"', '}', '{"isError":true}', 'data: x\n\n', '€😀'),
  fc.string({ minLength: 250, maxLength: 400 }),
);
const json: fc.Arbitrary<Json> = fc.letrec<{ value: Json }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(key, tie('value'), { maxKeys: 4 }),
  ),
})).value;
const id = fc.oneof(
  fc.integer(),
  fc.string({ maxLength: 12 }),
  fc.constant(null),
  fc.constant('"quoted\\"'),
  fc.string({ minLength: 250, maxLength: 260 }),
);
const result = fc.oneof(
  fc.record({ content: json, isError: fc.oneof(fc.boolean(), json) }, { requiredKeys: ['content'] }),
  json,
);
const error = fc.oneof(
  fc.record(
    { code: fc.oneof(fc.integer({ min: -33000, max: 1000 }), json), message: fc.string(), data: json },
    {
      requiredKeys: ['message'],
    },
  ),
  json,
);
/** Responses, errors, and the messages that are neither (requests, notifications). */
const message: fc.Arbitrary<Json> = fc.oneof(
  fc.record({ jsonrpc: fc.constant('2.0'), id, result }, { requiredKeys: ['result'] }),
  fc.record({ jsonrpc: fc.constant('2.0'), id, error }, { requiredKeys: ['error'] }),
  fc.record({ jsonrpc: fc.constant('2.0'), method: fc.string(), params: json }),
  fc.dictionary(key, json, { maxKeys: 5 }),
);
const cuts = fc.array(fc.nat(), { maxLength: 12 });
const indent = fc.constantFrom(undefined, 1, '\t', ' \r\n ');

describe('createJsonAnswerScanner', () => {
  it('says what JSON.parse says of a response or a batch, however the bytes are cut', () => {
    fc.assert(
      fc.property(
        fc.oneof(message, fc.array(message, { maxLength: 4 })),
        indent,
        cuts,
        (value, space, at) => {
          const text = JSON.stringify(value, null, space);
          expect(feed(createJsonAnswerScanner(), Buffer.from(text), at)).toEqual(expectedOf(text));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('reads the cases the audit trail exists for', () => {
    const outcome = (text: string) => feed(createJsonAnswerScanner(), Buffer.from(text), []);
    expect(outcome('{"jsonrpc":"2.0","id":7,"result":{"content":[],"isError":true}}')).toEqual([
      { id: 7, isError: true },
    ]);
    expect(outcome('{"jsonrpc":"2.0","id":"a","error":{"code":-32602,"message":"bad"}}')).toEqual([
      { id: 'a', isError: true, errorCode: -32602 },
    ]);
    // `isError` deeper than the result object is the tool's data, not its verdict.
    expect(
      outcome('{"id":1,"result":{"content":[{"isError":true}],"structuredContent":{"isError":true}}}'),
    ).toEqual([{ id: 1, isError: false }]);
    // Not JSON: nothing complete, and no throw.
    expect(outcome('{"id":1,"result":{"isError":tr')).toEqual([]);
    expect(outcome('<html>')).toEqual([]);
  });

  it('skips a long string in linear time', () => {
    const big = Buffer.from(
      JSON.stringify({ id: 1, result: { content: [{ text: 'x"\\'.repeat(2_000_000) }] } }),
    );
    const scanner = createJsonAnswerScanner();
    for (let at = 0; at < big.length; at += 65_536) scanner.write(big.subarray(at, at + 65_536));
    expect(scanner.end()).toEqual([{ id: 1, isError: false }]);
  });
});

describe('createSseAnswerScanner', () => {
  const lineEnd = fc.constantFrom('\n', '\r\n', '\r');
  const extra = fc.constantFrom(
    '',
    ': keep-alive',
    'event: message',
    'id: 42',
    'retry: 10',
    'datum: {"id":1}',
  );
  it('reads each event of a stream like JSON.parse of its data, whatever the line ends and cuts', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(message, indent, extra), { minLength: 1, maxLength: 4 }),
        lineEnd,
        fc.boolean(),
        cuts,
        (events, eol, spaceAfterColon, at) => {
          let stream = '';
          const want: AnswerOutcome[] = [];
          for (const [value, space, other] of events) {
            const text = JSON.stringify(value, null, space).replace(/\r\n|\r/g, '\n');
            // Each line of the text is its own data line; the reader joins them with a newline.
            const data = text
              .split('\n')
              .map((line) => `data:${spaceAfterColon ? ' ' : ''}${line}`)
              .join(eol);
            stream += `${other === '' ? '' : `${other}${eol}`}${data}${eol}${eol}`;
            want.push(...expectedOf(text));
          }
          expect(feed(createSseAnswerScanner(), Buffer.from(stream), at)).toEqual(want);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it('frames as a client does: a leading BOM is not part of the first field name', () => {
    const text = '\uFEFFdata: {"jsonrpc":"2.0","id":4,"error":{"code":-32601,"message":"no"}}\n\n';
    expect(feed(createSseAnswerScanner(), Buffer.from(text), [2])).toEqual([
      { id: 4, isError: true, errorCode: -32601 },
    ]);
  });

  it('an event cut off before its blank line still counts at the end of the stream', () => {
    const text = 'event: message\ndata: {"jsonrpc":"2.0","id":3,"result":{"isError":true}}\n';
    expect(feed(createSseAnswerScanner(), Buffer.from(text), [])).toEqual([{ id: 3, isError: true }]);
  });

  // The issue: `outcomes.push(...event.end())` overflowed the stack and killed the process.
  it('survives one event holding 300 000 responses, remembering a bounded number of them', () => {
    const response = '{"jsonrpc":"2.0","id":1,"result":{}}';
    const data = `[${Array.from({ length: 300_000 }, () => response).join(',')}]`;
    const scanner = createSseAnswerScanner();
    scanner.write(Buffer.from(`data: ${data}\n\n`));
    const outcomes = scanner.end();
    expect(outcomes).toHaveLength(MAX_OUTCOMES);
    expect(outcomes[0]).toEqual({ id: 1, isError: false });
  });
});

describe('createJsonAnswerScanner bounds', () => {
  it('remembers at most MAX_OUTCOMES responses of a huge batch answer', () => {
    const response = '{"jsonrpc":"2.0","id":"x","error":{"code":-32601,"message":"no"}}';
    const scanner = createJsonAnswerScanner();
    scanner.write(Buffer.from(`[${Array.from({ length: 5000 }, () => response).join(',')}]`));
    expect(scanner.end()).toHaveLength(MAX_OUTCOMES);
  });
});
