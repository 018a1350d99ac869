/**
 * The Exchange finishes exactly once, whatever races: a refusal then the client's close, the
 * client's close then a late answer, an answer stream that fails. Real sockets; every finish is
 * counted, and every reservation must be given back exactly once.
 */
import { once } from 'node:events';
import { connect } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { Cancellation } from '../../src/cancellation.js';
import { refuse } from '../../src/errors.js';
import type { Authenticated } from '../../src/exchange.js';
import { type ExchangeServer, sleep, startExchangeServer, testRouter } from '../support/exchange.js';

const route = testRouter().routes[0]!;
let server: ExchangeServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** A release that counts how often it is called. */
function counted(): { release: () => void; readonly calls: number } {
  const counter = {
    calls: 0,
    release: () => {
      counter.calls++;
    },
  };
  return counter;
}

/** Sends a POST over a raw socket and closes it after `ms`, before any answer. */
async function postThenLeave(url: string, ms: number): Promise<void> {
  const { port, hostname } = new URL(url);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  socket.write(
    `POST /mcp HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}`,
  );
  await sleep(ms);
  socket.destroy();
}

describe('Exchange.finish', () => {
  it('runs once for a refusal, not again when the response then closes', async () => {
    const slot = counted();
    server = await startExchangeServer(route, (exchange) => {
      exchange.requestSlot = slot.release;
      exchange.refuse(refuse('method_denied'));
      exchange.refuse(refuse('internal')); // a second refusal is no answer and no record
    });
    const answer = await fetch(server.url, { method: 'POST', body: '{}' });
    expect(answer.status).toBe(403);
    await sleep(50);
    expect(server.finished).toHaveLength(1);
    expect(server.finished[0]).toMatchObject({ status: 403, reason: 'method_denied', decision: 'deny' });
    expect(slot.calls).toBe(1);
  });

  it('runs once as 499 when the client leaves first, and a late answer changes nothing', async () => {
    const slot = counted();
    const stream = counted();
    let exchange: Authenticated | undefined;
    let aborted = false;
    server = await startExchangeServer(route, (ex) => {
      exchange = ex;
      ex.requestSlot = slot.release;
      ex.listenSlot = stream.release;
      ex.allowed = true;
      ex.upstreamStatus = 200;
      ex.cancellation = new Cancellation();
      ex.cancellation.onCancel(() => {
        aborted = true;
      });
      ex.answerBody = new PassThrough();
    });
    const finished = server.nextFinish();
    await postThenLeave(server.url, 50);
    const first = await finished;
    expect(first).toMatchObject({ status: 499, decision: 'allow', upstreamStatus: 200 });
    expect(aborted, 'the upstream request is aborted').toBe(true);
    expect(exchange?.answerBody?.destroyed, 'the answer stream is dropped').toBe(true);
    // The upstream's answer arrives after the client left: neither a refusal nor a finish counts.
    exchange?.refuse(refuse('upstream_unreachable'));
    exchange?.finish();
    await sleep(20);
    expect(server.finished).toHaveLength(1);
    expect(slot.calls).toBe(1);
    expect(stream.calls).toBe(1);
  });

  it('records a client that left before it was allowed as an error, not an allowed call', async () => {
    server = await startExchangeServer(route, () => undefined);
    const finished = server.nextFinish();
    await postThenLeave(server.url, 50);
    expect(await finished).toMatchObject({ status: 499, decision: 'error', reason: undefined });
  });

  it('runs once with the status sent when the answer stream fails after its headers', async () => {
    const slot = counted();
    const body = new PassThrough();
    server = await startExchangeServer(route, (exchange) => {
      exchange.requestSlot = slot.release;
      exchange.allowed = true;
      exchange.answerBody = body;
      exchange.res.writeHead(200, { 'content-type': 'application/json' });
      exchange.res.write('{"jsonrpc":"2.0",');
      body.once('error', () => {
        exchange.upstreamError = 'stream_ended';
        exchange.res.destroy();
      });
    });
    const finished = server.nextFinish();
    const answer = await fetch(server.url, { method: 'POST', body: '{}' });
    expect(answer.status).toBe(200);
    body.destroy(new Error('upstream reset'));
    await expect(answer.text()).rejects.toThrow();
    expect(await finished).toMatchObject({ status: 200, decision: 'allow', upstreamError: 'stream_ended' });
    await sleep(20);
    expect(server.finished).toHaveLength(1);
    expect(slot.calls).toBe(1);
  });

  it('answers a refusal with the ids of the parsed body when the refusal names none', async () => {
    server = await startExchangeServer(route, (exchange) => {
      exchange.body = {
        batch: false,
        forward: '',
        messages: [{ kind: 'request', id: 42, method: 'tools/call', params: { name: 'x' } }],
      };
      exchange.refuse(refuse('upstream_timeout'));
    });
    const answer = await fetch(server.url, { method: 'POST', body: '{}' });
    expect(answer.status).toBe(504);
    expect(await answer.json()).toMatchObject({ id: 42, error: { data: { reason: 'upstream_timeout' } } });
  });

  it('ends an unrecorded answer (metadata, preflight) with no audit facts handed on', async () => {
    server = await startExchangeServer(route, (exchange) => {
      exchange.res.writeHead(204).end();
      exchange.finishUnrecorded('OPTIONS /mcp');
    });
    const answer = await fetch(server.url, { method: 'POST', body: '{}' });
    expect(answer.status).toBe(204);
    await sleep(20);
    expect(server.finished).toHaveLength(0);
  });
});
