/** The legacy question's stream on a real HTTP response (unit: no gateway around it). */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpenQuestions } from '../../../src/confirm/questions.js';
import { isRefusal } from '../../../src/errors.js';
import type { Authorized } from '../../../src/exchange.js';
import { createConcurrency } from '../../../src/ratelimit/concurrency.js';
import { askInSession } from '../../../src/server/confirm-session.js';

const asker = { identity: 'apiKey:alice', route: '/mcp', session: 'up-1' };

describe('askInSession', () => {
  const questions = createOpenQuestions();
  const concurrency = createConcurrency({
    maxConcurrentPerIdentity: 1,
    maxStreamsPerIdentity: 4,
    maxConcurrentTotal: 8,
  });
  const outcomes: unknown[] = [];
  let server: Server;
  let url = '';

  beforeAll(async () => {
    server = createServer((req, res) => {
      const exchange = {
        req,
        res,
        route: { path: '/mcp' },
        session: { upstreamId: 'up-1' },
        identity: { key: 'apiKey:alice' },
        requestId: 'r-1',
        finished: false,
        requestSlot: concurrency.request('apiKey:alice'),
      } as unknown as Authorized;
      void askInSession(
        { questions, concurrency, timeoutMs: 5_000, heartbeatMs: 50 },
        exchange,
        { method: 'elicitation/create', params: { message: 'Confirm?' } },
        () => undefined,
      ).then((outcome) => {
        outcomes.push(isRefusal(outcome) ? outcome.reason : 'forward');
        res.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => {
    server.close();
  });

  it('asks first, says it is alive while it waits, gives its request slot back, and forwards on the yes', async () => {
    const answer = await fetch(url);
    expect(answer.headers.get('content-type')).toBe('text/event-stream');
    expect(answer.headers.get('content-security-policy')).toContain('sandbox');
    const reader = (answer.body as ReadableStream<Uint8Array>).getReader();
    let text = '';
    while (!text.includes(': waiting for confirmation')) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    const question = JSON.parse(/data: (.*)\n/.exec(text)?.[1] ?? '{}') as { id: string; method: string };
    expect(question.method).toBe('elicitation/create');
    expect(text).toContain(': waiting for confirmation\n\n');
    // maxConcurrentPerIdentity is 1: the waiting call does not hold it.
    const other = concurrency.request('apiKey:alice');
    expect(other).toBeDefined();
    other?.();
    expect(await questions.answer(question.id, asker, 'yes')).toBe(true);
    while (!(await reader.read()).done) {
      // to the end of the stream
    }
    expect(outcomes).toEqual(['forward']);
  });
});
