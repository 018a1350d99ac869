import type { ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';

/** Makes a handler safe to register: an exception ends the exchange, never the process. */
export type Guard = <A extends unknown[]>(fn: (...args: A) => void) => (...args: A) => void;

/**
 * `pipe` with a byte cap, checked before each chunk is written. `stream.pipeline` is avoided on
 * purpose: it allocates and aborts an AbortController per call (a DOMException with a stack),
 * which measured as a third of the gateway's CPU per request. Every handler it registers goes
 * through `guard`: they run from the upstream socket's events, where a throw would end the process.
 */
export function relay(
  source: Readable,
  res: ServerResponse,
  cap: number,
  /** Sees every chunk relayed (the audit's answer scanner). */
  tap: { write(chunk: Buffer): void } | undefined,
  onOverflow: () => void,
  guard: Guard,
): void {
  let relayed = 0;
  const onData = guard((chunk: Buffer | string) => {
    relayed += chunk.length;
    if (relayed > cap) {
      source.off('data', onData);
      res.off('drain', onDrain);
      onOverflow();
      return;
    }
    tap?.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    if (!res.write(chunk)) source.pause();
  });
  const onDrain = guard(() => source.resume());
  source.on('data', onData);
  res.on('drain', onDrain);
  source.once(
    'end',
    guard(() => {
      res.off('drain', onDrain);
      if (!res.writableEnded) res.end();
    }),
  );
}

/** Drops an upstream body the gateway will not relay; undici reports the abort as an error event. */
export function discard(body: Readable): void {
  body.once('error', () => undefined);
  body.destroy();
}
