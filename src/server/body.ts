import { isUtf8 } from 'node:buffer';
import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import { type Refusal, refuse } from '../errors.js';
import { createJsonBuilder } from '../jsonrpc/json-builder.js';
import { type BuiltJson, createStrictJsonScanner, type ScannedText } from '../jsonrpc/strict-json.js';

/**
 * A body declared shorter than this is parsed at the end by native JSON.parse/JSON.stringify (well
 * under a millisecond, and faster than building it in JavaScript); any other body is built as it
 * arrives. 64 KiB: one socket read, ~1 ms of native parse and stringify.
 */
export const SMALL_BODY_BYTES = 64 * 1024;

const BOM = 0xfeff;

/** How a capped read ended: read whole, cut at the cap, or not UTF-8 (read to the end all the same). */
export type CappedRead = 'read' | 'too_large' | 'not_utf8';

/**
 * The one capped reader, for request bodies and upstream answers alike: reads `source` up to
 * `limit` bytes as strict UTF-8, handing each decoded piece to `sink` as it arrives, so no caller
 * holds the raw bytes and a character split across two chunks still decodes. Past `limit` it
 * stops listening at once (`'too_large'`; the caller closes or destroys the source). Bytes that
 * are not UTF-8 are read on to the end (the read is bounded) and reported as `'not_utf8'`; a
 * leading BOM is dropped. A stream that errors or closes before its end rejects.
 */
export function readCapped(
  source: Readable,
  limit: number,
  sink: (piece: string) => void,
): Promise<CappedRead> {
  return new Promise((resolve, reject) => {
    let size = 0;
    let invalid = false;
    let first = true;
    // A streaming decoder keeps a character split across two chunks. It is made only for a read
    // that needs one: a chunk that is whole UTF-8 by itself (every small body, one socket read) is
    // validated and decoded natively, without a decoder's setup per request.
    let utf8: InstanceType<typeof TextDecoder> | undefined;
    const decode = (chunk: Buffer | undefined): void => {
      if (invalid) return;
      let piece: string;
      try {
        if (chunk === undefined) piece = utf8 === undefined ? '' : utf8.decode();
        else if (utf8 === undefined && isUtf8(chunk)) piece = chunk.toString('utf8');
        else {
          // From here on every chunk goes through the decoder, in order. A BOM is dropped only at
          // the start of the text: a decoder made after the first chunk keeps one.
          utf8 ??= new TextDecoder('utf-8', { fatal: true, ignoreBOM: !first });
          piece = utf8.decode(chunk, { stream: true });
        }
      } catch (err) {
        if (!(err instanceof TypeError)) throw err;
        invalid = true; // not UTF-8: read on (the read is bounded) and say so at the end
        return;
      }
      if (first && chunk !== undefined) {
        first = false;
        // The leading BOM the decoder would have dropped, dropped here when there was none.
        if (utf8 === undefined && piece.charCodeAt(0) === BOM) piece = piece.slice(1);
      }
      if (piece !== '') sink(piece);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        resolve('too_large');
        return;
      }
      try {
        decode(chunk);
      } catch (err) {
        cleanup();
        reject(err);
      }
    };
    const onEnd = () => {
      cleanup();
      try {
        decode(undefined);
      } catch (err) {
        reject(err);
        return;
      }
      resolve(invalid ? 'not_utf8' : 'read');
    };
    // An error, or a close before the end (a client or upstream gone): one handler for both.
    const onGone = (err?: Error) => {
      cleanup();
      reject(err ?? new Error('stream closed before its end'));
    };
    const cleanup = () => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onGone);
      source.off('close', onGone);
    };
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onGone);
    source.on('close', onGone);
  });
}

/**
 * Reads a request body of at most `limit` bytes (DESIGN.md step 5) with {@link readCapped},
 * scanning each piece as it arrives: the strict-JSON scan (depth, duplicate and case-folded keys,
 * numbers) is spread over the reads instead of holding the event loop for the whole body at the
 * end. A body that is not declared small is also parsed and re-serialized piece by piece
 * (`json-builder.ts`): at its end only O(1) work is left (issue 13, class 18). A declared or actual
 * size over the limit is refused without reading further (the connection is then closed by the
 * caller).
 */
export async function readBody(
  req: IncomingMessage,
  limit: number,
  maxDepth: number,
): Promise<ScannedText | BuiltJson | Refusal> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return refuse('body_too_large');
  // Node's parser holds the body to its Content-Length: a declared small body is small.
  const builder =
    declared !== undefined && Number(declared) < SMALL_BODY_BYTES ? undefined : createJsonBuilder();
  const scanner = createStrictJsonScanner(builder === undefined ? { maxDepth } : { maxDepth, builder });
  // A built body keeps no copy of the client's text: the value and the forwarded text are it.
  const pieces: string[] = [];
  const read = await readCapped(
    req,
    limit,
    builder === undefined
      ? (piece) => {
          pieces.push(piece);
          scanner.write(piece);
        }
      : (piece) => scanner.write(piece),
  );
  if (read === 'too_large') return refuse('body_too_large');
  if (read === 'not_utf8') return refuse('parse_error');
  const problem = scanner.end();
  return builder === undefined
    ? { text: pieces.length === 1 ? (pieces[0] as string) : pieces.join(''), problem }
    : { problem, value: builder.value, forward: builder.forward };
}
