import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { readMemberMessages } from '../../../../src/upstream/federation/answers.js';
import type { UpstreamAnswer } from '../../../../src/upstream/upstream.js';

const answer = (status: number, contentType: string | undefined, ...chunks: string[]): UpstreamAnswer => ({
  status,
  headers: contentType === undefined ? {} : { 'content-type': contentType },
  body: Readable.from(chunks.map((chunk) => Buffer.from(chunk))),
});
const read = (a: UpstreamAnswer, limit = 1_000_000) => readMemberMessages(a, limit, 64);

describe('readMemberMessages', () => {
  it('reads a JSON answer, one message or a batch', async () => {
    expect(
      await read(answer(200, 'application/json', '{"jsonrpc":"2.0","id":1,', '"result":{"tools":[]}}')),
    ).toEqual([{ jsonrpc: '2.0', id: 1, result: { tools: [] } }]);
    expect(
      await read(
        answer(
          200,
          'application/json',
          '[{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","id":2,"result":{}}]',
        ),
      ),
    ).toHaveLength(2);
  });

  it('reads every dispatched event of an SSE answer, split anywhere, CRLF or LF, multi-line data joined', async () => {
    const sse = answer(
      200,
      'text/event-stream',
      ': comment\r\nevent: message\r\nid: 7\r\ndata: {"jsonrpc":"2.0","method":"notifications/progress",',
      '"params":{"progress":1}}\r\n\r\ndata: {"jsonrpc":"2.0",\ndata: "id":1,"result":{}}\n\ndata: {"unterminated":true}',
    );
    expect(await read(sse)).toEqual([
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1 } },
      { jsonrpc: '2.0', id: 1, result: {} },
    ]);
  });

  it('says why it could not read: a status, a size over the limit, a body that is not strict JSON', async () => {
    expect(await read(answer(202, undefined))).toEqual([]);
    expect(await read(answer(500, 'application/json', '{}'))).toBe('status');
    expect(await read(answer(200, 'text/plain', 'hello'))).toBe('not_json');
    expect(await read(answer(200, 'application/json', '{"a":"', 'x'.repeat(100), '"}'), 50)).toBe(
      'too_large',
    );
    expect(await read(answer(200, 'application/json', '{"a":1,"a":2}'))).toBe('not_json');
    expect(await read(answer(200, 'application/json', '[1]'))).toBe('not_json');
    expect(await readMemberMessages(answer(200, 'application/json', '[[[[1]]]]'), 1000, 2)).toBe('not_json');
  });
});
