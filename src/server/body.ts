import type { IncomingMessage } from 'node:http';
import { type Refusal, refuse } from '../errors.js';
import { createJsonBuilder } from '../jsonrpc/json-builder.js';
import { type BuiltJson, createStrictJsonScanner, type ScannedText } from '../jsonrpc/strict-json.js';

/**
 * A body declared shorter than this is parsed at the end by native JSON.parse/JSON.stringify (well
 * under a millisecond, and faster than building it in JavaScript); any other body is built as it
 * arrives. 64 KiB: one socket read, ~1 ms of native parse and stringify.
 */
export const SMALL_BODY_BYTES = 64 * 1024;

/**
 * Reads a request body of at most `limit` bytes as strict UTF-8, decoding and scanning each chunk
 * as it arrives: the strict-JSON scan (depth, duplicate and case-folded keys, numbers) is spread
 * over the reads instead of holding the event loop for the whole body at the end. A body that is
 * not declared small is also parsed and re-serialized chunk by chunk (`json-builder.ts`): at its
 * end only O(1) work is left (issue 13, class 18). A declared or actual size over the limit is
 * refused without reading further (the connection is then closed by the caller).
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  maxDepth: number,
): Promise<ScannedText | BuiltJson | Refusal> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.resolve(refuse('body_too_large'));
  // Node's parser holds the body to its Content-Length: a declared small body is small.
  const builder =
    declared !== undefined && Number(declared) < SMALL_BODY_BYTES ? undefined : createJsonBuilder();
  const scanner = createStrictJsonScanner(builder === undefined ? { maxDepth } : { maxDepth, builder });
  // One decoder per body: `stream` keeps a character split across two chunks. A leading BOM is
  // dropped (`ignoreBOM: false`), as before.
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });
  return new Promise((resolve, reject) => {
    const pieces: string[] = [];
    let size = 0;
    let invalid = false;
    const decode = (chunk: Buffer | undefined): void => {
      if (invalid) return;
      let piece: string;
      try {
        piece = chunk === undefined ? utf8.decode() : utf8.decode(chunk, { stream: true });
      } catch (err) {
        if (!(err instanceof TypeError)) throw err;
        invalid = true; // not UTF-8: read on (the body is bounded) and refuse at the end
        return;
      }
      if (piece === '') return;
      // A built body keeps no copy of the client's text: the value and the forwarded text are it.
      if (builder === undefined) pieces.push(piece);
      scanner.write(piece);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        resolve(refuse('body_too_large'));
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
      if (invalid) {
        resolve(refuse('parse_error'));
        return;
      }
      const problem = scanner.end();
      resolve(
        builder === undefined
          ? { text: pieces.length === 1 ? (pieces[0] as string) : pieces.join(''), problem }
          : { problem, value: builder.value, forward: builder.forward },
      );
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
