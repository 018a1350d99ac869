import { Readable, type Transform } from 'node:stream';
import { createSseRewriter } from '../proxy/sse.js';
import type { UpstreamAnswer } from './upstream.js';

/**
 * Answers an upstream makes itself (a stdio process's, a federation's merged list): the same
 * status, headers and byte stream as an HTTP upstream's, so the relay reads them unchanged.
 */

/** A body already whole, as a byte stream like any upstream's. */
export function bufferBody(text: string): Readable {
  const body = new Readable({ read: () => undefined });
  if (text.length > 0) body.push(Buffer.from(text));
  body.push(null);
  return body;
}

/** An answer whose JSON the gateway already has (or an empty body): status, headers, bytes. */
export function jsonAnswer(
  status: number,
  message: Readonly<Record<string, unknown>> | undefined,
  headers: Record<string, string>,
): UpstreamAnswer {
  const text = message === undefined ? '' : JSON.stringify(message);
  return {
    status,
    headers:
      message === undefined
        ? headers
        : {
            ...headers,
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(text)),
          },
    body: bufferBody(text),
  };
}

/**
 * An upstream's body passed through `transform` (a rewriter, a check), the two tied both ways: the
 * body failing fails the transform (the relay sees it), and the transform ending early — the
 * client gone, the answer cut — stops the body (its upstream request is aborted). `pipe` alone
 * does neither.
 */
export function through(body: Readable, transform: Transform): Readable {
  body.once('error', (err) => transform.destroy(err));
  transform.once('close', () => {
    if (!body.destroyed && !body.readableEnded) body.destroy();
  });
  return body.pipe(transform);
}

type Message = Readonly<Record<string, unknown>>;

/**
 * An event's data with each JSON-RPC message in it (each of a batch) passed through `rewrite`:
 * the new data when `rewrite` replaced any, undefined — the event goes as it came — when it
 * replaced none or the data is not JSON (the relay deals with that as with any answer).
 */
export function rewriteMessages(data: string, rewrite: (message: Message) => Message): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  let changed = false;
  const one = (message: unknown): unknown => {
    if (typeof message !== 'object' || message === null || Array.isArray(message)) return message;
    const rewritten = rewrite(message as Message);
    if (rewritten !== message) changed = true;
    return rewritten;
  };
  const out = Array.isArray(value) ? value.map(one) : one(value);
  return changed ? JSON.stringify(out) : undefined;
}

/** An SSE body with each event's messages passed through `rewrite` ({@link rewriteMessages}). */
export function rewrittenEvents(
  body: Readable,
  rewrite: (message: Message) => Message,
  maxEventLength: number,
): Readable {
  return through(
    body,
    createSseRewriter((data) => rewriteMessages(data, rewrite), { maxEventLength }),
  );
}
