import type { IncomingMessage } from 'node:http';
import { type Refusal, refuse } from '../errors.js';
import type { ScannedText, StrictJsonScanner } from '../jsonrpc/strict-json.js';

/**
 * Reads a request body of at most `limit` bytes as strict UTF-8, decoding and scanning each chunk
 * as it arrives: the strict-JSON scan (depth, duplicate and case-folded keys, numbers) is spread
 * over the reads instead of holding the event loop for the whole body at the end. A declared or
 * actual size over the limit is refused without reading further (the connection is then closed by
 * the caller).
 */
export function readBody(
  req: IncomingMessage,
  limit: number,
  scanner: StrictJsonScanner,
): Promise<ScannedText | Refusal> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.resolve(refuse('body_too_large'));
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
      pieces.push(piece);
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
      resolve({
        text: pieces.length === 1 ? (pieces[0] as string) : pieces.join(''),
        problem: scanner.end(),
      });
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
