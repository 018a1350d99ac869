import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Refusal } from '../../../../src/errors.js';
import { INPUT_WAIT_MS } from '../../../../src/upstream/input-required.js';
import { Call, type CallOptions, type CallOwner } from '../../../../src/upstream/stdio/call.js';
import type { ChildMessage } from '../../../../src/upstream/stdio/child.js';
import { type Attribution, Connection, type Dropped } from '../../../../src/upstream/stdio/connection.js';
import type { UpstreamAnswer } from '../../../../src/upstream/upstream.js';
import { answerOf, read, refusalOf } from '../../../support/settled.js';

const ALICE: CallOwner = { identity: 'alice', session: undefined };
const BOB: CallOwner = { identity: 'bob', session: undefined };
const GONE = 'The client is no longer waiting for this request';
const NO_CLIENT = { code: -32601, message: 'No client can answer this request through the gateway' };

type Written = Record<string, unknown>;

/** A connection whose child is a recorder, and calls wired to it as `upstream.ts` wires them. */
function harness(attribution: Attribution = 'latest') {
  const writes: Written[] = [];
  const broadcasts: ChildMessage[] = [];
  const dropped: [Dropped, string | undefined][] = [];
  const pressure: boolean[] = [];
  const connection = new Connection(
    {
      write: (message) => writes.push(message as Written),
      broadcast: (message) => broadcasts.push(message),
      dropped: (why, method) => dropped.push([why, method]),
      pressure: (blocked) => pressure.push(blocked),
    },
    attribution,
  );
  /** A call begun on the connection; its settled answers are recorded. */
  function open(owner: CallOwner, over: Partial<CallOptions> = {}) {
    const settled: (UpstreamAnswer | Refusal)[] = [];
    const call = new Call({
      owner,
      acceptsStream: true,
      takesServerRequests: true,
      batch: false,
      ids: [1],
      headers: {},
      firstMessageMs: 60_000,
      settle: (answer) => settled.push(answer),
      onDone: (done) => connection.end(done, GONE),
      onTimeout: () => undefined,
      onPressure: (c, blocked) => connection.setBlocked(c, blocked),
      ...over,
    });
    connection.begin(call);
    return { call, settled };
  }
  return { connection, writes, broadcasts, dropped, pressure, open };
}

async function json(settled: readonly (UpstreamAnswer | Refusal)[]): Promise<unknown> {
  return JSON.parse(await read(answerOf(settled).body));
}

/** The SSE events written so far to a stream that is still open, parsed. */
function eventsSoFar(body: Readable): unknown[] {
  const out: unknown[] = [];
  for (let chunk = body.read() as Buffer | null; chunk !== null; chunk = body.read() as Buffer | null)
    for (const block of chunk.toString('utf8').split('\n\n'))
      if (block !== '') out.push(JSON.parse(block.replace(/^event: message\ndata: /, '')));
  return out;
}

const toolsCall = (id: string | number, meta?: Record<string, unknown>) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name: 'echo', arguments: { text: 'hi' }, ...(meta === undefined ? {} : { _meta: meta }) },
});

afterEach(() => {
  vi.useRealTimers();
});

describe('Connection: ids', () => {
  it('forwards each request under a gateway id of its own and restores the client’s on the answer', async () => {
    const { connection, writes, open } = harness();
    const a = open(ALICE, { ids: ['same'] });
    const b = open(BOB, { ids: ['same'] });
    connection.forward(a.call, toolsCall('same'));
    connection.forward(b.call, toolsCall('same'));
    expect(writes).toEqual([
      { ...toolsCall('same'), id: 1 },
      { ...toolsCall('same'), id: 2 },
    ]);
    connection.receive({ jsonrpc: '2.0', id: 2, result: { for: 'bob' } });
    connection.receive({ jsonrpc: '2.0', id: 1, result: { for: 'alice' } });
    expect(await json(a.settled)).toEqual({ jsonrpc: '2.0', id: 'same', result: { for: 'alice' } });
    expect(await json(b.settled)).toEqual({ jsonrpc: '2.0', id: 'same', result: { for: 'bob' } });
    expect(connection.inFlight).toBe(0);
  });

  it('drops an answer whose id it never sent, or that is neither result nor error', () => {
    const { connection, dropped, open } = harness();
    const a = open(ALICE);
    connection.forward(a.call, toolsCall(1));
    connection.receive({ jsonrpc: '2.0', id: 99, result: {} });
    connection.receive({ jsonrpc: '2.0', id: '1', result: {} });
    connection.receive({ jsonrpc: '2.0', id: 1 });
    expect(dropped).toEqual([
      ['unknown_response', undefined],
      ['unknown_response', undefined],
      ['unknown_response', undefined],
    ]);
    expect(a.settled).toEqual([]);
  });

  it('answers its own requests (ask) and sends its own notifications', async () => {
    const { connection, writes } = harness();
    const answer = connection.ask('server/discover', { x: 1 });
    connection.notify('notifications/initialized');
    connection.notify('notifications/roots/list_changed', { a: 1 });
    expect(writes).toEqual([
      { jsonrpc: '2.0', id: 1, method: 'server/discover', params: { x: 1 } },
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      { jsonrpc: '2.0', method: 'notifications/roots/list_changed', params: { a: 1 } },
    ]);
    connection.receive({ jsonrpc: '2.0', id: 1, result: { ok: 1 } });
    await expect(answer).resolves.toEqual({ jsonrpc: '2.0', id: 1, result: { ok: 1 } });
  });
});

describe('Connection: progress', () => {
  it('replaces a progress token with the gateway id and restores it on each notification', () => {
    const { connection, writes, open } = harness();
    const a = open(ALICE, { ids: [7] });
    connection.forward(a.call, toolsCall(7, { progressToken: 'alice-token', other: 'kept' }));
    expect(writes[0]).toEqual({
      ...toolsCall(7),
      id: 1,
      params: { name: 'echo', arguments: { text: 'hi' }, _meta: { progressToken: 1, other: 'kept' } },
    });
    connection.receive({
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 1, progress: 5, total: 10 },
    });
    expect(eventsSoFar(answerOf(a.settled).body)).toEqual([
      {
        jsonrpc: '2.0',
        method: 'notifications/progress',
        params: { progressToken: 'alice-token', progress: 5, total: 10 },
      },
    ]);
  });

  it('drops progress for a token no call in flight has', () => {
    const { connection, dropped, open } = harness();
    const a = open(ALICE);
    connection.forward(a.call, toolsCall(1));
    connection.receive({
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 2, progress: 1 },
    });
    connection.receive({
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 'alice-token', progress: 1 },
    });
    expect(dropped).toEqual([
      ['unattributed_notification', 'notifications/progress'],
      ['unattributed_notification', 'notifications/progress'],
    ]);
    expect(a.settled).toEqual([]);
  });

  it('delivers progress to the request’s own call, not the identity’s latest', () => {
    const { connection, open } = harness();
    const first = open(ALICE, { ids: ['f'] });
    const second = open(ALICE, { ids: ['s'] });
    connection.forward(first.call, toolsCall('f', { progressToken: 'pf' }));
    connection.forward(second.call, toolsCall('s'));
    connection.receive({
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 1, progress: 1 },
    });
    expect(second.settled).toEqual([]);
    expect(eventsSoFar(answerOf(first.settled).body)).toEqual([
      { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'pf', progress: 1 } },
    ]);
  });
});

describe('Connection: cancellation', () => {
  it('passes a client’s cancellation to the child in the gateway id, only for its own request', () => {
    const { connection, writes, open } = harness();
    const a = open(ALICE, { ids: ['x'] });
    const b = open(BOB, { ids: ['x'] });
    connection.forward(a.call, toolsCall('x'));
    connection.forward(b.call, toolsCall('x'));
    writes.length = 0;
    const cancel = (requestId: unknown) => ({
      jsonrpc: '2.0',
      method: 'notifications/cancelled',
      params: { requestId, reason: 'no longer needed' },
    });
    connection.cancelFor({ identity: 'mallory', session: undefined }, cancel('x'));
    connection.cancelFor({ identity: 'bob', session: 'another-session' }, cancel('x'));
    connection.cancelFor(BOB, cancel('y'));
    expect(writes).toEqual([]);
    connection.cancelFor(BOB, cancel('x'));
    expect(writes).toEqual([cancel(2)]);
    connection.cancelFor(BOB, cancel('x'));
    expect(writes).toHaveLength(1);
  });

  it('cancels on the child the requests still open when their call ends early', () => {
    const { connection, writes, open } = harness();
    const a = open(ALICE, { ids: [1, 2], batch: true });
    connection.forward(a.call, toolsCall(1));
    connection.forward(a.call, toolsCall(2));
    connection.receive({ jsonrpc: '2.0', id: 1, result: {} });
    writes.length = 0;
    a.call.abandon();
    expect(writes).toEqual([
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 2, reason: GONE } },
    ]);
    expect(connection.inFlight).toBe(0);
    connection.receive({ jsonrpc: '2.0', id: 2, result: {} });
    expect(a.settled).toEqual([]);
  });

  it('sends no cancellation when a call ends without a reason', () => {
    const { connection, writes, open } = harness();
    const a = open(ALICE, { onDone: () => undefined });
    connection.forward(a.call, toolsCall(1));
    writes.length = 0;
    connection.end(a.call, undefined);
    expect(writes).toEqual([]);
    expect(connection.inFlight).toBe(0);
  });

  it('tells the client, in its id, that the child gave up a server request it was sent', () => {
    const { connection, dropped, open } = harness();
    const a = open(ALICE);
    connection.forward(a.call, toolsCall(1));
    connection.receive({ jsonrpc: '2.0', id: 'srv-9', method: 'sampling/createMessage', params: {} });
    connection.receive({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'srv-9' } });
    connection.receive({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'srv-9' } });
    expect(eventsSoFar(answerOf(a.settled).body)).toEqual([
      { jsonrpc: '2.0', id: 'portcullis-1', method: 'sampling/createMessage', params: {} },
      { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'portcullis-1' } },
    ]);
    expect(dropped).toEqual([['unattributed_notification', 'notifications/cancelled']]);
  });
});

describe('Connection: server requests', () => {
  it('hands a server request to its client under a gateway key; only that owner’s answer reaches the child', () => {
    const { connection, writes, open } = harness();
    const a = open({ identity: 'alice', session: 's1' });
    connection.forward(a.call, toolsCall(1));
    connection.receive({
      jsonrpc: '2.0',
      id: 42,
      method: 'elicitation/create',
      params: { message: 'name?' },
    });
    expect(eventsSoFar(answerOf(a.settled).body)).toEqual([
      { jsonrpc: '2.0', id: 'portcullis-1', method: 'elicitation/create', params: { message: 'name?' } },
    ]);
    writes.length = 0;
    const reply = { jsonrpc: '2.0', id: 'portcullis-1', result: { action: 'accept' } };
    expect(connection.answerHeld(BOB, reply)).toBe(false);
    expect(connection.answerHeld({ identity: 'alice', session: 's2' }, reply)).toBe(false);
    expect(
      connection.answerHeld({ identity: 'alice', session: 's1' }, { ...reply, id: 'portcullis-2' }),
    ).toBe(false);
    expect(writes).toEqual([]);
    expect(connection.answerHeld({ identity: 'alice', session: 's1' }, reply)).toBe(true);
    expect(writes).toEqual([{ jsonrpc: '2.0', id: 42, result: { action: 'accept' } }]);
    expect(connection.answerHeld({ identity: 'alice', session: 's1' }, reply)).toBe(false);
  });

  it('forgets the server requests of a call that ended: a late answer matches nothing', () => {
    const { connection, writes, open } = harness();
    const a = open(ALICE);
    connection.forward(a.call, toolsCall(1));
    connection.receive({ jsonrpc: '2.0', id: 42, method: 'sampling/createMessage', params: {} });
    connection.receive({ jsonrpc: '2.0', id: 1, result: {} });
    writes.length = 0;
    expect(connection.answerHeld(ALICE, { jsonrpc: '2.0', id: 'portcullis-1', result: {} })).toBe(false);
    expect(writes).toEqual([]);
  });

  it('answers the child’s ping itself', () => {
    const { connection, writes, dropped, open } = harness();
    const a = open(ALICE);
    connection.forward(a.call, toolsCall(1));
    writes.length = 0;
    connection.receive({ jsonrpc: '2.0', id: 'p1', method: 'ping' });
    expect(writes).toEqual([{ jsonrpc: '2.0', id: 'p1', result: {} }]);
    expect(a.settled).toEqual([]);
    expect(dropped).toEqual([]);
  });

  it('answers a server request no client can take with an error, and drops it', () => {
    const idle = harness();
    idle.connection.receive({ jsonrpc: '2.0', id: 3, method: 'roots/list' });
    expect(idle.writes).toEqual([{ jsonrpc: '2.0', id: 3, error: NO_CLIENT }]);
    expect(idle.dropped).toEqual([['unattributed_request', 'roots/list']]);

    // A JSON-only client (no SSE) takes no server requests.
    const jsonOnly = harness();
    const a = jsonOnly.open(ALICE, { acceptsStream: false, takesServerRequests: false });
    jsonOnly.connection.forward(a.call, toolsCall(1));
    jsonOnly.writes.length = 0;
    jsonOnly.connection.receive({ jsonrpc: '2.0', id: 4, method: 'sampling/createMessage', params: {} });
    expect(jsonOnly.writes).toEqual([{ jsonrpc: '2.0', id: 4, error: NO_CLIENT }]);
    expect(jsonOnly.dropped).toEqual([['unattributed_request', 'sampling/createMessage']]);
    expect(a.settled).toEqual([]);
  });

  it('broadcasts list_changed and resources/updated rather than attributing them', () => {
    const { connection, broadcasts, open } = harness();
    const a = open(ALICE);
    connection.forward(a.call, toolsCall(1));
    const changed = { jsonrpc: '2.0', method: 'notifications/tools/list_changed' };
    const updated = {
      jsonrpc: '2.0',
      method: 'notifications/resources/updated',
      params: { uri: 'file:///a' },
    };
    connection.receive(changed);
    connection.receive(updated);
    expect(broadcasts).toEqual([changed, updated]);
    expect(a.settled).toEqual([]);
  });
});

describe('Connection: attribution', () => {
  const message = { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'x' } };

  it('latest: a message without a token goes to the most recently started call', () => {
    const { connection, open } = harness('latest');
    const first = open(ALICE, { ids: ['f'] });
    const second = open(ALICE, { ids: ['s'] });
    connection.forward(first.call, toolsCall('f'));
    connection.forward(second.call, toolsCall('s'));
    connection.receive(message);
    expect(first.settled).toEqual([]);
    expect(eventsSoFar(answerOf(second.settled).body)).toEqual([message]);
  });

  it('latest: once the latest call is over, the one before it gets the next message', () => {
    const { connection, open } = harness('latest');
    const first = open(ALICE, { ids: ['f'] });
    const second = open(ALICE, { ids: ['s'] });
    connection.forward(first.call, toolsCall('f'));
    connection.forward(second.call, toolsCall('s'));
    connection.receive({ jsonrpc: '2.0', id: 2, result: {} });
    connection.receive(message);
    expect(eventsSoFar(answerOf(first.settled).body)).toEqual([message]);
  });

  it('latest with no call in flight: dropped and counted', () => {
    const { connection, dropped } = harness('latest');
    connection.receive(message);
    expect(dropped).toEqual([['unattributed_notification', 'notifications/message']]);
  });

  it('latest, a client that takes no stream: undeliverable, counted', () => {
    const { connection, dropped, open } = harness('latest');
    const a = open(ALICE, { acceptsStream: false, takesServerRequests: false });
    connection.forward(a.call, toolsCall(1));
    connection.receive(message);
    expect(dropped).toEqual([['undeliverable_notification', 'notifications/message']]);
    expect(a.settled).toEqual([]);
  });

  it('only (shared): even with exactly one call in flight the message is nobody’s (it may be about earlier work of another identity)', () => {
    const { connection, writes, dropped, open } = harness('only');
    const a = open(ALICE);
    connection.forward(a.call, toolsCall(1));
    writes.length = 0;
    connection.receive(message);
    connection.receive({ jsonrpc: '2.0', id: 'r', method: 'elicitation/create', params: {} });
    expect(a.settled).toEqual([]);
    expect(dropped).toEqual([
      ['unattributed_notification', 'notifications/message'],
      ['unattributed_request', 'elicitation/create'],
    ]);
    expect(writes).toEqual([{ jsonrpc: '2.0', id: 'r', error: NO_CLIENT }]);
  });

  it('only (shared): with two calls in flight nothing is attributed — notifications dropped, requests refused', () => {
    const { connection, writes, dropped, open } = harness('only');
    const a = open(ALICE);
    const b = open(BOB);
    connection.forward(a.call, toolsCall(1));
    connection.forward(b.call, toolsCall(1));
    writes.length = 0;
    connection.receive(message);
    connection.receive({ jsonrpc: '2.0', id: 'r', method: 'elicitation/create', params: {} });
    expect(dropped).toEqual([
      ['unattributed_notification', 'notifications/message'],
      ['unattributed_request', 'elicitation/create'],
    ]);
    expect(writes).toEqual([{ jsonrpc: '2.0', id: 'r', error: NO_CLIENT }]);
    expect(a.settled).toEqual([]);
    expect(b.settled).toEqual([]);
  });

  it('only (shared): with no call in flight a server request (roots/list) is refused', () => {
    const { connection, writes, dropped } = harness('only');
    connection.receive({ jsonrpc: '2.0', id: 8, method: 'roots/list' });
    expect(writes).toEqual([{ jsonrpc: '2.0', id: 8, error: NO_CLIENT }]);
    expect(dropped).toEqual([['unattributed_request', 'roots/list']]);
  });
});

describe('Connection: input_required (a modern client of a legacy process)', () => {
  /** A modern client's call: it takes no server requests, but elicitation as `input_required`. */
  const modern = (ids: (string | number)[] = ['m1']) => ({
    ids,
    acceptsStream: true,
    takesServerRequests: false,
    inputCapabilities: new Set(['elicitation']),
  });
  const elicit = { jsonrpc: '2.0', id: 'srv-1', method: 'elicitation/create', params: { message: 'name?' } };

  function parked() {
    const h = harness();
    const first = h.open(ALICE, modern());
    h.connection.forward(first.call, toolsCall('m1', { progressToken: 'pt' }));
    h.connection.receive(elicit);
    return { ...h, first };
  }

  async function requestStateOf(settled: readonly (UpstreamAnswer | Refusal)[]): Promise<string> {
    const body = (await json(settled)) as { result: { requestState: string } };
    return body.result.requestState;
  }

  it('answers the call input_required with the server’s request and a random requestState, keeping the request running', async () => {
    const { connection, writes, first } = parked();
    const body = (await json(first.settled)) as { id: unknown; result: Record<string, unknown> };
    expect(body.id).toBe('m1');
    expect(body.result.resultType).toBe('input_required');
    expect(body.result.inputRequests).toEqual({
      'portcullis-1': { method: 'elicitation/create', params: { message: 'name?' } },
    });
    expect(body.result.requestState).toMatch(/^[A-Za-z0-9_-]{43}$/);
    // The call is over, but its request was not cancelled on the child: it waits for the retry.
    expect(first.call.finished).toBe(true);
    expect(connection.inFlight).toBe(0);
    expect(writes.filter((w) => w.method === 'notifications/cancelled')).toEqual([]);
  });

  it('reports the parked request’s progress under the retry’s own token after it resumes', async () => {
    const { connection, open, first } = parked();
    const state = await requestStateOf(first.settled);
    const retry = open(ALICE, modern(['m2']));
    expect(
      connection.resume(retry.call, 'm2', state, { 'portcullis-1': { action: 'accept' } }, 'fresh-token'),
    ).toBe(true);
    // The child reports progress under the gateway's id of the parked request (1).
    connection.receive({
      jsonrpc: '2.0',
      method: 'notifications/progress',
      params: { progressToken: 1, progress: 1 },
    });
    connection.receive({ jsonrpc: '2.0', id: 1, result: { content: [] } });
    expect(eventsSoFar(answerOf(retry.settled).body)).toEqual([
      {
        jsonrpc: '2.0',
        method: 'notifications/progress',
        params: { progressToken: 'fresh-token', progress: 1 },
      },
      { jsonrpc: '2.0', id: 'm2', result: { content: [] } },
    ]);
  });

  it('resumes: the retry’s answer goes to the parked server request, the request’s answer to the retry', async () => {
    const { connection, writes, open, first } = parked();
    const state = await requestStateOf(first.settled);
    const retry = open(ALICE, modern(['m2']));
    writes.length = 0;
    expect(
      connection.resume(
        retry.call,
        'm2',
        state,
        {
          'portcullis-1': { action: 'accept', content: { n: 'A' } },
        },
        undefined,
      ),
    ).toBe(true);
    expect(writes).toEqual([
      { jsonrpc: '2.0', id: 'srv-1', result: { action: 'accept', content: { n: 'A' } } },
    ]);
    connection.receive({ jsonrpc: '2.0', id: 1, result: { content: [] } });
    expect(await json(retry.settled)).toEqual({ jsonrpc: '2.0', id: 'm2', result: { content: [] } });
    // The state is spent.
    const again = open(ALICE, modern(['m3']));
    expect(
      connection.resume(again.call, 'm3', state, { 'portcullis-1': { action: 'accept' } }, undefined),
    ).toBe(false);
  });

  it('delivers on resume an answer the parked request gave before the retry came', async () => {
    const { connection, open, first, dropped } = parked();
    const state = await requestStateOf(first.settled);
    connection.receive({ jsonrpc: '2.0', id: 1, result: { content: ['finished anyway'] } });
    expect(dropped).toEqual([]);
    const retry = open(ALICE, modern(['m2']));
    expect(
      connection.resume(retry.call, 'm2', state, { 'portcullis-1': { action: 'decline' } }, undefined),
    ).toBe(true);
    expect(await json(retry.settled)).toEqual({
      jsonrpc: '2.0',
      id: 'm2',
      result: { content: ['finished anyway'] },
    });
  });

  it('refuses a retry from another owner, without its inputResponses key, or with an unknown state', async () => {
    const { connection, writes, open, first } = parked();
    const state = await requestStateOf(first.settled);
    writes.length = 0;
    const bob = open(BOB, modern(['b']));
    expect(connection.resume(bob.call, 'b', state, { 'portcullis-1': { action: 'accept' } }, undefined)).toBe(
      false,
    );
    const sessioned = open({ identity: 'alice', session: 'other' }, modern(['s']));
    expect(
      connection.resume(sessioned.call, 's', state, { 'portcullis-1': { action: 'accept' } }, undefined),
    ).toBe(false);
    const retry = open(ALICE, modern(['m2']));
    expect(connection.resume(retry.call, 'm2', state, undefined, undefined)).toBe(false);
    expect(
      connection.resume(retry.call, 'm2', state, { 'portcullis-2': { action: 'accept' } }, undefined),
    ).toBe(false);
    expect(connection.resume(retry.call, 'm2', state, { 'portcullis-1': 'accept' }, undefined)).toBe(false);
    expect(
      connection.resume(retry.call, 'm2', `${state}x`, { 'portcullis-1': { action: 'accept' } }, undefined),
    ).toBe(false);
    expect(connection.resume(retry.call, 'm2', 42, { 'portcullis-1': { action: 'accept' } }, undefined)).toBe(
      false,
    );
    expect(writes).toEqual([]);
    // The owner's proper retry still works after all of those.
    expect(
      connection.resume(retry.call, 'm2', state, { 'portcullis-1': { action: 'accept' } }, undefined),
    ).toBe(true);
  });

  it('parks only a call with exactly one request on the process: a batch’s server request is refused', () => {
    const { connection, writes, dropped, open } = harness();
    const a = open(ALICE, modern(['a', 'b']));
    connection.forward(a.call, toolsCall('a'));
    connection.forward(a.call, toolsCall('b'));
    writes.length = 0;
    connection.receive(elicit);
    expect(writes).toEqual([{ jsonrpc: '2.0', id: 'srv-1', error: NO_CLIENT }]);
    expect(dropped).toEqual([['unattributed_request', 'elicitation/create']]);
    expect(a.settled).toEqual([]);
  });

  it('does not park a request for a capability the client did not declare', () => {
    const { connection, writes, open } = harness();
    const a = open(ALICE, modern());
    connection.forward(a.call, toolsCall('m1'));
    writes.length = 0;
    connection.receive({ jsonrpc: '2.0', id: 's', method: 'sampling/createMessage', params: {} });
    expect(writes).toEqual([{ jsonrpc: '2.0', id: 's', error: NO_CLIENT }]);
    expect(a.settled).toEqual([]);
  });

  it('expires: no retry within INPUT_WAIT_MS → the server request is answered with an error and the call cancelled', async () => {
    vi.useFakeTimers();
    const { connection, writes, open, first } = parked();
    const state = await requestStateOf(first.settled);
    writes.length = 0;
    vi.advanceTimersByTime(INPUT_WAIT_MS - 1);
    expect(writes).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(writes).toEqual([
      { jsonrpc: '2.0', id: 'srv-1', error: NO_CLIENT },
      {
        jsonrpc: '2.0',
        method: 'notifications/cancelled',
        params: { requestId: 1, reason: 'The client did not retry in time' },
      },
    ]);
    const retry = open(ALICE, modern(['m2']));
    expect(
      connection.resume(retry.call, 'm2', state, { 'portcullis-1': { action: 'accept' } }, undefined),
    ).toBe(false);
  });

  it('a resumed request does not expire', async () => {
    vi.useFakeTimers();
    const { connection, writes, open, first } = parked();
    const state = await requestStateOf(first.settled);
    const retry = open(ALICE, { ...modern(['m2']), firstMessageMs: INPUT_WAIT_MS * 10 });
    expect(
      connection.resume(retry.call, 'm2', state, { 'portcullis-1': { action: 'accept' } }, undefined),
    ).toBe(true);
    writes.length = 0;
    vi.advanceTimersByTime(INPUT_WAIT_MS * 2);
    expect(writes).toEqual([]);
  });
});

describe('Connection: an answer too large to read', () => {
  function twoCalls() {
    const h = harness();
    const a = h.open(ALICE);
    const b = h.open(ALICE, { ids: ['b'] });
    h.connection.forward(a.call, toolsCall(1));
    h.connection.forward(b.call, toolsCall('b'));
    return { ...h, a, b };
  }

  it('fails the call its head names ({"jsonrpc":"2.0","id":N,…) with response_too_large', () => {
    const { connection, a, b } = twoCalls();
    connection.tooLarge({
      head: '{"jsonrpc":"2.0","id":2,"result":{"content":[{"type":"text","text":"aaaa',
      tail: 'aaaa"}]}}',
    });
    expect(a.settled).toEqual([]);
    const refusal = refusalOf(b.settled);
    expect(refusal.reason).toBe('response_too_large');
    expect(refusal.ids).toEqual(['b']);
    // Its answer is no longer awaited.
    connection.receive({ jsonrpc: '2.0', id: 2, result: {} });
    expect(b.settled).toHaveLength(1);
  });

  it('fails the call its tail names (…,"id":N}) with response_too_large, and tolerates spacing', () => {
    const { connection, a, b } = twoCalls();
    connection.tooLarge({ head: '{"result":{"content":"aaaa', tail: 'aaaa"}, "id" : 1 }\r' });
    expect(refusalOf(a.settled).reason).toBe('response_too_large');
    expect(b.settled).toEqual([]);
  });

  it('accepts the head form without jsonrpc first ({"id":N,…)', () => {
    const { connection, a } = twoCalls();
    connection.tooLarge({ head: ' { "id": 1, "jsonrpc":"2.0","result":"aaa', tail: 'aaa"}' });
    expect(refusalOf(a.settled).reason).toBe('response_too_large');
  });

  it('names nothing from an id nested inside, a string id, an unknown id or no edges', () => {
    const { connection, a, b, writes } = twoCalls();
    connection.tooLarge({ head: '{"jsonrpc":"2.0","result":{"id":1,"x":"aaa', tail: 'aaa","id":2}}' });
    connection.tooLarge({ head: '{"jsonrpc":"2.0","id":"1","result":"aaa', tail: 'aaa"}' });
    connection.tooLarge({ head: '{"jsonrpc":"2.0","id":9,"result":"aaa', tail: 'aaa"}' });
    connection.tooLarge(undefined);
    expect(a.settled).toEqual([]);
    expect(b.settled).toEqual([]);
    expect(writes).toHaveLength(2);
  });

  it('never fails the gateway’s own request (the handshake) that way', async () => {
    const { connection } = harness();
    const answer = connection.ask('initialize', {});
    connection.tooLarge({ head: '{"jsonrpc":"2.0","id":1,"result":"aaa', tail: 'aaa"}' });
    connection.receive({ jsonrpc: '2.0', id: 1, result: { ok: true } });
    await expect(answer).resolves.toEqual({ jsonrpc: '2.0', id: 1, result: { ok: true } });
  });
});

describe('Connection: close', () => {
  it('fails every call in flight and answers its own requests with an error', async () => {
    const { connection, open } = harness();
    const a = open(ALICE);
    const b = open(BOB, { ids: ['q'] });
    connection.forward(a.call, toolsCall(1));
    connection.forward(b.call, toolsCall('q'));
    const own = connection.ask('initialize', {});
    connection.close();
    expect(refusalOf(a.settled).reason).toBe('upstream_unreachable');
    expect(refusalOf(b.settled)).toMatchObject({ reason: 'upstream_unreachable', ids: ['q'] });
    await expect(own).resolves.toEqual({
      jsonrpc: '2.0',
      error: { code: -32000, message: 'process exited' },
    });
    expect(connection.inFlight).toBe(0);
  });

  it('after close: a new call fails at once, a new own request is answered with an error', async () => {
    const { connection, writes, open } = harness();
    connection.close();
    const late = open(ALICE);
    expect(refusalOf(late.settled).reason).toBe('upstream_unreachable');
    expect(connection.inFlight).toBe(0);
    await expect(connection.ask('initialize', {})).resolves.toEqual({
      jsonrpc: '2.0',
      id: 1,
      error: { code: -32000, message: 'process exited' },
    });
    expect(writes).toEqual([]);
  });

  it('ends a streaming call with error events, and forgets parked requests', async () => {
    vi.useFakeTimers();
    const { connection, writes, open } = harness();
    const a = open(ALICE, { ids: [1] });
    connection.forward(a.call, toolsCall(1));
    connection.receive({ jsonrpc: '2.0', method: 'notifications/message', params: {} });
    const p = open(BOB, {
      ids: ['m'],
      takesServerRequests: false,
      inputCapabilities: new Set(['elicitation']),
    });
    connection.forward(p.call, toolsCall('m'));
    connection.receive({ jsonrpc: '2.0', id: 's', method: 'elicitation/create', params: {} });
    connection.close();
    const text = await read(answerOf(a.settled).body);
    expect(text).toContain('"id":1,"error":{"code":-31095');
    writes.length = 0;
    vi.advanceTimersByTime(INPUT_WAIT_MS);
    expect(writes).toEqual([]);
  });
});

describe('Connection: back-pressure', () => {
  it('latest: holds the child’s output back while any call’s client is not reading', () => {
    const { connection, pressure, open } = harness('latest');
    const a = open(ALICE);
    const b = open(ALICE, { ids: ['b'] });
    connection.setBlocked(a.call, true);
    connection.setBlocked(b.call, true);
    expect(pressure).toEqual([true]);
    connection.setBlocked(a.call, false);
    expect(pressure).toEqual([true]);
    connection.setBlocked(b.call, false);
    expect(pressure).toEqual([true, false]);
  });

  it('latest: a call that ends while blocked lets the output go', () => {
    const { connection, pressure, open } = harness('latest');
    const a = open(ALICE);
    connection.setBlocked(a.call, true);
    connection.end(a.call, undefined);
    expect(pressure).toEqual([true, false]);
  });

  it('latest: a real slow reader of a call blocks and unblocks the child', async () => {
    const { connection, pressure, open } = harness('latest');
    const a = open(ALICE);
    connection.forward(a.call, toolsCall(1));
    const big = { jsonrpc: '2.0', method: 'notifications/message', params: { data: 'z'.repeat(600 * 1024) } };
    connection.receive(big);
    connection.receive(big);
    expect(pressure).toEqual([true]);
    const body = answerOf(a.settled).body;
    while (body.read() !== null);
    await new Promise((resolve) => setImmediate(resolve));
    expect(pressure).toEqual([true, false]);
  });

  it('only (shared): never holds the process back for one client', () => {
    const { connection, pressure, open } = harness('only');
    const a = open(ALICE);
    connection.setBlocked(a.call, true);
    connection.setBlocked(a.call, false);
    expect(pressure).toEqual([]);
  });
});
