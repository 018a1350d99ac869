import { checkStrictJson } from '../../jsonrpc/strict-json.js';
import { bodyKind } from '../../proxy/media-type.js';
import { createSseFramer } from '../../proxy/sse.js';
import { readCapped } from '../../server/body.js';
import type { UpstreamAnswer } from '../upstream.js';

/** A JSON-RPC message a member server answered. */
export type MemberMessage = Readonly<Record<string, unknown>>;

/** Why a member's answer could not be read (the member is left out of a merged list, or fails a call). */
export type Unreadable = 'status' | 'too_large' | 'not_json';

/**
 * A member server's whole answer read into its JSON-RPC messages, as the gateway must read it to
 * merge a list (DESIGN.md "Upstreams" → Federation): a JSON body (one message or a batch), or every
 * event of an SSE body (found by the one framer), each checked as strict JSON within `maxDepth`
 * before it is parsed. At most `limit` bytes are read; a status other than 200 (202: no messages)
 * is not read at all.
 */
export async function readMemberMessages(
  answer: UpstreamAnswer,
  limit: number,
  maxDepth: number,
): Promise<MemberMessage[] | Unreadable> {
  if (answer.status === 202) {
    answer.body.resume();
    return [];
  }
  if (answer.status !== 200) {
    answer.body.destroy();
    return 'status';
  }
  const kind = bodyKind(answer.headers['content-type']);
  if (kind !== 'json' && kind !== 'sse') {
    answer.body.destroy();
    return 'not_json';
  }
  let text = '';
  const read = await readCapped(answer.body, limit, (piece) => {
    text += piece;
  });
  if (read === 'too_large') {
    answer.body.destroy();
    return 'too_large';
  }
  if (read === 'not_utf8') return 'not_json';
  const texts = kind === 'json' ? [text] : eventData(text);
  const messages: MemberMessage[] = [];
  for (const data of texts) {
    if (checkStrictJson(data, { maxDepth }) !== undefined) return 'not_json';
    const value: unknown = JSON.parse(data);
    for (const item of Array.isArray(value) ? value : [value]) {
      if (typeof item !== 'object' || item === null || Array.isArray(item)) return 'not_json';
      messages.push(item as MemberMessage);
    }
  }
  return messages;
}

/** The data of every event an `EventSource` would dispatch from a whole SSE text. */
function eventData(text: string): string[] {
  const events: string[] = [];
  eventFramer((data) => events.push(data)).write(Buffer.from(text, 'utf8'));
  return events;
}

/** A framer handing `onEvent` the data of every event an `EventSource` would dispatch. */
function eventFramer(onEvent: (data: string) => void): ReturnType<typeof createSseFramer> {
  let lines: Buffer[][] = [];
  let current: Buffer[] | undefined;
  return createSseFramer({
    dataLine() {
      current = [];
      lines.push(current);
    },
    data(bytes, start, end) {
      current?.push(bytes.subarray(start, end));
    },
    other() {},
    lineEnd(kind) {
      current = undefined;
      if (kind !== 'blank') return;
      // An event whose data is empty is not dispatched (HTML §9.2.6): a server's priming event
      // (an id and an empty `data:`, sent so a stream can be resumed) carries no message.
      const data = lines.map((pieces) => Buffer.concat(pieces).toString('utf8')).join('\n');
      if (data !== '') onEvent(data);
      lines = [];
    },
    lfAfterCr() {},
  });
}

/**
 * A member server's answer read message by message as it arrives — where the gateway must act on
 * each before the answer ends (a 2025-era server asking a 2026-07-28 caller for input mid-call):
 * the same checks as {@link readMemberMessages}, `limit` counting every byte of the stream. The
 * generator's return value says why it stopped early; undefined when the answer simply ended.
 * Stopping it (`return()`) destroys the body.
 */
export async function* memberMessages(
  answer: UpstreamAnswer,
  limit: number,
  maxDepth: number,
): AsyncGenerator<MemberMessage, Unreadable | undefined, undefined> {
  if (answer.status === 202) {
    answer.body.resume();
    return undefined;
  }
  const kind = bodyKind(answer.headers['content-type']);
  if (answer.status !== 200 || (kind !== 'json' && kind !== 'sse')) {
    answer.body.destroy();
    return answer.status !== 200 ? 'status' : 'not_json';
  }
  if (kind === 'json') {
    const read = await readMemberMessages(answer, limit, maxDepth);
    if (typeof read === 'string') return read;
    yield* read;
    return undefined;
  }
  let pending: string[] = [];
  const framer = eventFramer((data) => pending.push(data));
  let seen = 0;
  try {
    for await (const chunk of answer.body as AsyncIterable<Buffer | string>) {
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      seen += bytes.length;
      if (seen > limit) return 'too_large';
      framer.write(bytes);
      const events = pending;
      pending = [];
      for (const data of events) {
        if (checkStrictJson(data, { maxDepth }) !== undefined) return 'not_json';
        const value: unknown = JSON.parse(data);
        for (const item of Array.isArray(value) ? value : [value]) {
          if (typeof item !== 'object' || item === null || Array.isArray(item)) return 'not_json';
          yield item as MemberMessage;
        }
      }
    }
  } finally {
    if (!answer.body.readableEnded) answer.body.destroy();
  }
  return undefined;
}
