import { afterEach, describe, expect, it, vi } from 'vitest';
import { type Refusal, refuse } from '../../../../src/errors.js';
import { Call, type CallOptions, MAX_BUFFERED_BYTES } from '../../../../src/upstream/stdio/call.js';
import type { UpstreamAnswer } from '../../../../src/upstream/upstream.js';
import { answerOf, read, refusalOf } from '../../../support/settled.js';

const OWNER = { identity: 'alice', session: undefined };

/** A call and everything it told its caller. */
function makeCall(over: Partial<CallOptions> = {}) {
  const settled: (UpstreamAnswer | Refusal)[] = [];
  const done: Call[] = [];
  const timeouts: Call[] = [];
  const pressure: boolean[] = [];
  const call = new Call({
    owner: OWNER,
    acceptsStream: true,
    takesServerRequests: true,
    batch: false,
    ids: [1],
    headers: { 'mcp-session-id': 's1' },
    firstMessageMs: 10_000,
    settle: (answer) => settled.push(answer),
    onDone: (c) => done.push(c),
    onTimeout: (c) => timeouts.push(c),
    onPressure: (_, blocked) => pressure.push(blocked),
    ...over,
  });
  return { call, settled, done, timeouts, pressure };
}

/** The `data:` of each SSE event, parsed. */
function events(text: string): unknown[] {
  return text
    .split('\n\n')
    .filter((block) => block !== '')
    .map((block) => {
      const [event, data, ...rest] = block.split('\n');
      expect(event).toBe('event: message');
      expect(rest).toEqual([]);
      return JSON.parse((data as string).replace(/^data: /, '')) as unknown;
    });
}

const result = (value: unknown) => ({ jsonrpc: '2.0', id: 77, result: value });

afterEach(() => {
  vi.useRealTimers();
});

describe('Call', () => {
  it('answers with a JSON body once its one id is answered, the id restored to the client’s', async () => {
    const { call, settled, done } = makeCall({ ids: ['req-a'] });
    expect(settled).toEqual([]);
    call.answer('req-a', result({ ok: true }));
    const answer = answerOf(settled);
    expect(answer.status).toBe(200);
    const body = '{"jsonrpc":"2.0","id":"req-a","result":{"ok":true}}';
    expect(answer.headers).toEqual({
      'mcp-session-id': 's1',
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    });
    expect(await read(answer.body)).toBe(body);
    expect(done).toEqual([call]);
    expect(call.finished).toBe(true);
  });

  it('waits for every id of a batch and answers an array in the order they were answered', async () => {
    const { call, settled } = makeCall({ ids: [1, 2, 3], batch: true });
    call.answer(2, result('two'));
    call.answer(1, result('one'));
    expect(settled).toEqual([]);
    expect([...call.openIds()]).toEqual([3]);
    call.answer(3, result('three'));
    const answer = answerOf(settled);
    expect(JSON.parse(await read(answer.body))).toEqual([
      { jsonrpc: '2.0', id: 2, result: 'two' },
      { jsonrpc: '2.0', id: 1, result: 'one' },
      { jsonrpc: '2.0', id: 3, result: 'three' },
    ]);
  });

  it('answers a one-element batch with an array, a non-batch with the object alone', async () => {
    const batch = makeCall({ ids: [5], batch: true });
    batch.call.answer(5, result(1));
    expect(JSON.parse(await read(answerOf(batch.settled).body))).toEqual([
      { jsonrpc: '2.0', id: 5, result: 1 },
    ]);
    const single = makeCall({ ids: [5] });
    single.call.answer(5, result(1));
    expect(JSON.parse(await read(answerOf(single.settled).body))).toEqual({
      jsonrpc: '2.0',
      id: 5,
      result: 1,
    });
  });

  it('ignores an answer for an id it does not wait for, or a second answer for the same id', async () => {
    const { call, settled } = makeCall({ ids: [1, 2], batch: true });
    call.answer(9, result('stranger'));
    call.answer(1, result('first'));
    call.answer(1, result('again'));
    expect(settled).toEqual([]);
    call.answer(2, result('second'));
    expect(JSON.parse(await read(answerOf(settled).body))).toEqual([
      { jsonrpc: '2.0', id: 1, result: 'first' },
      { jsonrpc: '2.0', id: 2, result: 'second' },
    ]);
    call.answer(2, result('late'));
    expect(settled).toHaveLength(1);
  });

  it('starts an SSE answer at the first notification, answers buffered before it going first', async () => {
    const { call, settled } = makeCall({ ids: [1, 2], batch: true });
    call.answer(1, result('early'));
    expect(settled).toEqual([]);
    const progress = {
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 't', progress: 1 },
    };
    expect(call.deliver(progress)).toBe(true);
    const answer = answerOf(settled);
    expect(answer.status).toBe(200);
    expect(answer.headers).toEqual({
      'mcp-session-id': 's1',
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
    });
    call.answer(2, result('late'));
    expect(call.finished).toBe(true);
    expect(events(await read(answer.body))).toEqual([
      { jsonrpc: '2.0', id: 1, result: 'early' },
      progress,
      { jsonrpc: '2.0', id: 2, result: 'late' },
    ]);
  });

  it('delivers nothing to a client that takes no stream, and nothing once it is over', async () => {
    const json = makeCall({ acceptsStream: false, takesServerRequests: false });
    expect(json.call.acceptsStream).toBe(false);
    expect(json.call.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: {} })).toBe(false);
    expect(json.settled).toEqual([]);
    json.call.answer(1, result('x'));
    expect(answerOf(json.settled).headers['content-type']).toBe('application/json');

    const over = makeCall();
    over.call.answer(1, result('x'));
    expect(over.call.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: {} })).toBe(false);
    expect(await read(answerOf(over.settled).body)).toBe('{"jsonrpc":"2.0","id":1,"result":"x"}');
  });

  it('fails before the stream began with the refusal, naming every id of the call, and ends once', () => {
    const { call, settled, done } = makeCall({ ids: [1, 2, 3], batch: true });
    call.fail();
    const refusal = refusalOf(settled);
    expect(refusal.reason).toBe('upstream_unreachable');
    expect([...refusal.ids].sort()).toEqual([1, 2, 3]);
    expect(refusal.batch).toBe(true);
    expect(done).toEqual([call]);
    call.fail();
    call.answer(1, result('late'));
    expect(settled).toHaveLength(1);
    expect(done).toHaveLength(1);
  });

  it('keeps the answers a batch already has when the server fails: only the open ids get errors', async () => {
    const { call, settled, done } = makeCall({ ids: [1, 2, 3], batch: true });
    call.answer(2, result('kept'));
    call.fail();
    const answer = answerOf(settled);
    expect(answer.status).toBe(200);
    const body = JSON.parse(await read(answer.body)) as {
      id: number;
      result?: unknown;
      error?: { code: number; data: { reason: string } };
    }[];
    expect(body.map((m) => [m.id, m.result === undefined ? m.error?.code : 'result'])).toEqual([
      [2, 'result'],
      [1, -31095],
      [3, -31095],
    ]);
    expect(body[1]?.error?.data.reason).toBe('upstream_unreachable');
    expect(done).toEqual([call]);
  });

  it('fails with the refusal it is given (response_too_large)', () => {
    const { call, settled } = makeCall({ ids: ['a'] });
    call.fail(refuse('response_too_large'));
    const refusal = refusalOf(settled);
    expect(refusal.reason).toBe('response_too_large');
    expect(refusal.ids).toEqual(['a']);
    expect(refusal.batch).toBe(false);
  });

  it('fails after the stream began with one -31095 error event per open id, then ends the stream', async () => {
    const { call, settled, done } = makeCall({ ids: [1, 2, 3], batch: true });
    call.answer(1, result('one'));
    call.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'hi' } });
    call.fail();
    expect(done).toEqual([call]);
    const gone = { code: -31095, message: 'Upstream unreachable', data: { reason: 'upstream_unreachable' } };
    expect(events(await read(answerOf(settled).body))).toEqual([
      { jsonrpc: '2.0', id: 1, result: 'one' },
      { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'hi' } },
      { jsonrpc: '2.0', id: 2, error: gone },
      { jsonrpc: '2.0', id: 3, error: gone },
    ]);
  });

  it('times out without a first message: onTimeout, then upstream_timeout for the open ids', () => {
    vi.useFakeTimers();
    const { call, settled, done, timeouts } = makeCall({ ids: [1, 2], batch: true, firstMessageMs: 300 });
    vi.advanceTimersByTime(299);
    expect(settled).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(timeouts).toEqual([call]);
    expect(done).toEqual([call]);
    const refusal = refusalOf(settled);
    expect(refusal.reason).toBe('upstream_timeout');
    expect(refusal.ids).toEqual([1, 2]);
    expect(refusal.batch).toBe(true);
    call.answer(1, result('late'));
    expect(settled).toHaveLength(1);
  });

  it('does not time out once a first answer or notification came', () => {
    vi.useFakeTimers();
    const answered = makeCall({ ids: [1, 2], batch: true, firstMessageMs: 100 });
    answered.call.answer(1, result('one'));
    vi.advanceTimersByTime(10_000);
    expect(answered.timeouts).toEqual([]);
    expect(answered.settled).toEqual([]);

    const notified = makeCall({ firstMessageMs: 100 });
    notified.call.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: {} });
    vi.advanceTimersByTime(10_000);
    expect(notified.timeouts).toEqual([]);
    expect(notified.call.finished).toBe(false);
  });

  it('abandoned: ends once, its stream destroyed, nothing settled or sent afterwards', () => {
    const before = makeCall();
    before.call.abandon();
    expect(before.done).toEqual([before.call]);
    expect(before.call.finished).toBe(true);
    before.call.answer(1, result('late'));
    before.call.fail();
    before.call.abandon();
    expect(before.settled).toEqual([]);
    expect(before.done).toHaveLength(1);

    const streaming = makeCall();
    streaming.call.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: {} });
    const body = answerOf(streaming.settled).body;
    streaming.call.abandon();
    expect(body.destroyed).toBe(true);
    expect(streaming.done).toEqual([streaming.call]);
  });

  it('adapts each answer before it goes out (a modern client of a legacy process), never notifications', async () => {
    const seen: unknown[] = [];
    const { call, settled } = makeCall({
      ids: ['x'],
      adapt: (id, message) => {
        seen.push(id);
        return { ...message, result: { adapted: message.result } };
      },
    });
    const note = { jsonrpc: '2.0', method: 'notifications/message', params: { data: 1 } };
    call.deliver(note);
    call.answer('x', { jsonrpc: '2.0', id: 4, result: 'raw' });
    expect(seen).toEqual(['x']);
    expect(events(await read(answerOf(settled).body))).toEqual([
      note,
      { jsonrpc: '2.0', id: 'x', result: { adapted: 'raw' } },
    ]);
  });

  it('reports a client that stops reading (onPressure true) and takes the stream again (false)', async () => {
    const { call, settled, pressure } = makeCall();
    const big = 'x'.repeat(400 * 1024);
    call.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: { data: big } });
    call.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: { data: big } });
    expect(pressure).toEqual([]);
    call.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: { data: big } });
    expect(pressure).toEqual([true]);
    call.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: { data: big } });
    expect(pressure).toEqual([true]);
    const body = answerOf(settled).body;
    while (body.read() !== null);
    await new Promise((resolve) => setImmediate(resolve));
    expect(pressure).toEqual([true, false]);
    call.answer(1, result('end'));
    expect(call.finished).toBe(true);
  });

  it(`cuts off a client that leaves more than ${MAX_BUFFERED_BYTES} bytes unread`, async () => {
    const { call, settled, done, pressure } = makeCall();
    const chunk = 'y'.repeat(1024 * 1024);
    let sent = 0;
    while (!call.finished && sent < 20) {
      call.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: { data: chunk } });
      sent++;
    }
    expect(call.finished).toBe(true);
    // Eight events of just over 1 MiB are buffered (> 8 MiB); the ninth is refused and cuts it off.
    expect(sent).toBe(9);
    expect(done).toEqual([call]);
    // Finishing unblocks: whoever held the child's output back lets it go.
    expect(pressure).toEqual([true, false]);
    const body = answerOf(settled).body;
    expect(body.destroyed).toBe(true);
    expect(call.deliver({ jsonrpc: '2.0', method: 'notifications/message', params: {} })).toBe(false);
    await expect(read(body)).rejects.toThrow('the client does not read its stream');
  });

  it('exposes what server requests it may take', () => {
    const inputs = new Set(['elicitation']);
    const { call } = makeCall({ takesServerRequests: false, inputCapabilities: inputs });
    expect(call.takesServerRequests).toBe(false);
    expect(call.inputCapabilities).toBe(inputs);
    expect(call.owner).toEqual(OWNER);
  });
});
