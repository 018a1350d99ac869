import type { Readable } from 'node:stream';
import type { BodyKind } from './media-type.js';
import type { UnreadableReason } from './sse.js';

/**
 * Reading an upstream answer the gateway must filter (a list answer, a GET stream): how, and
 * what becomes of one it cannot read. Never relayed as it came: an unfiltered list is exactly
 * what a hostile or careless upstream would slip past the policy.
 */

/**
 * How an answer the gateway must filter is read: a JSON body whole, an SSE stream event by event —
 * or refused, when it cannot be filtered: any 2xx but 200 (an answer to a request is 200), an
 * unknown media type on a 200, a `Content-Encoding` (the gateway asks for `identity`; bytes it
 * cannot decode it cannot filter). An error status with a body that is neither JSON nor SSE (an
 * HTML error page) carries no JSON-RPC answer a client would read: it goes as it came.
 */
export function howToRead(
  status: number,
  kind: BodyKind,
  encoding: string | string[] | undefined,
): 'read-json' | 'rewrite-sse' | 'relay' | 'refuse' {
  if (
    encoding !== undefined &&
    !(typeof encoding === 'string' && encoding.trim().toLowerCase() === 'identity')
  )
    return 'refuse';
  if (status >= 200 && status < 300 && status !== 200) return 'refuse';
  if (kind === 'json') return 'read-json';
  if (kind === 'sse') return 'rewrite-sse';
  return status === 200 ? 'refuse' : 'relay';
}

/** The refusal for an answer the gateway had to read and could not. */
export function unreadableRefusal(reason: UnreadableReason): 'response_too_large' | 'upstream_rejected' {
  return reason === 'too_large' ? 'response_too_large' : 'upstream_rejected';
}

export function upstreamErrorKind(reason: UnreadableReason): string {
  return reason === 'too_large' ? 'too_large' : 'bad_answer';
}

/** An answer read whole: its text, or why it could not be read. */
export type ReadAnswer = string | { readonly unreadable: 'too_large' | 'not_json' };

/** Reads an upstream answer whole, up to `limit` bytes; text that is not UTF-8 is not JSON. */
export async function readAnswer(body: Readable, limit: number): Promise<ReadAnswer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      body.destroy();
      return { unreadable: 'too_large' };
    }
    chunks.push(chunk);
  }
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks, size));
  } catch (err) {
    if (err instanceof TypeError) return { unreadable: 'not_json' };
    throw err;
  }
}
