import { Readable, type Transform } from 'node:stream';
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
