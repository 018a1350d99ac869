/**
 * Raw MCP over HTTP for tests that must send what no SDK client would (forged answers, guessed
 * ids, another identity's session): a legacy POST with an API key, a session opened by hand, and
 * the messages of an answer, JSON or SSE.
 */
import { expect } from 'vitest';
import { sleep } from './wait.js';

export type Message = Record<string, unknown>;

/** The legacy protocol version these requests speak. */
export const LEGACY = '2025-11-25';

/** POSTs `body` as `key`'s, in `session` when given (with its protocol version header). */
export function legacyPost(
  url: string,
  key: string,
  session: string | undefined,
  body: unknown,
  signal?: AbortSignal,
): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${key}`,
      ...(session === undefined ? {} : { 'mcp-session-id': session, 'mcp-protocol-version': LEGACY }),
    },
    body: JSON.stringify(body),
    ...(signal === undefined ? {} : { signal }),
  });
}

/** A legacy session opened by `key` (declaring elicitation); its sealed id. */
export async function openSession(url: string, key: string): Promise<string> {
  const answer = await legacyPost(url, key, undefined, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: {
      protocolVersion: LEGACY,
      capabilities: { elicitation: {} },
      clientInfo: { name: 'raw', version: '1' },
    },
  });
  expect(answer.status).toBe(200);
  await answer.text();
  const session = answer.headers.get('mcp-session-id');
  expect(session).toMatch(/^[A-Za-z0-9_-]{40,}$/);
  return session as string;
}

/** The SSE events of an answer, one by one, as parsed JSON. */
export async function* events(answer: Response): AsyncGenerator<Message> {
  const reader = (answer.body as ReadableStream<Uint8Array>).pipeThrough(new TextDecoderStream()).getReader();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value;
    let end = buffered.indexOf('\n\n');
    while (end !== -1) {
      const data = buffered
        .slice(0, end)
        .split('\n')
        .filter((line) => line.startsWith('data:'))
        .map((line) => line.slice(5).trimStart())
        .join('\n');
      buffered = buffered.slice(end + 2);
      if (data !== '') yield JSON.parse(data) as Message;
      end = buffered.indexOf('\n\n');
    }
  }
}

/** Every message of an answer, JSON or SSE. */
export async function messagesOf(answer: Response): Promise<Message[]> {
  if (answer.headers.get('content-type')?.startsWith('text/event-stream')) {
    const all: Message[] = [];
    for await (const message of events(answer)) all.push(message);
    return all;
  }
  const text = await answer.text();
  if (text === '') return [];
  const value = JSON.parse(text) as Message | Message[];
  return Array.isArray(value) ? value : [value];
}

/** Polls `probe` until it gives a value (not undefined or false), failing after `timeoutMs`. */
export async function until<T>(
  what: string,
  probe: () => T | undefined | false,
  timeoutMs = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
