import type { Readable } from 'node:stream';
import { createSseFramer } from '../../proxy/sse.js';

/** One event of a server's SSE stream, as an `EventSource` would dispatch it. */
export interface ServerEvent {
  readonly data: string;
  /** The stream's last event id after this event (its own `id:`, else the one before). */
  readonly lastId: string | undefined;
}

/**
 * Reads a server's SSE stream event by event through the one framer (`proxy/sse.ts`): the data of
 * each event an `EventSource` would dispatch, with the last event id as it would keep it (an `id`
 * field sets it, one holding a NUL is ignored) — what a merged stream needs to resume that server
 * where it left off. An event longer than `maxEventLength` bytes ends the stream (`onTooLong`).
 */
export function readServerEvents(
  body: Readable,
  maxEventLength: number,
  onEvent: (event: ServerEvent) => void,
  onTooLong: () => void,
): void {
  let lastId: string | undefined;
  let data: Buffer[] | undefined;
  let dataLines: Buffer[][] = [];
  let other: Buffer[] = [];
  let size = 0;
  let tooLong = false;
  const framer = createSseFramer({
    dataLine() {
      data = [];
      dataLines.push(data);
    },
    data(bytes, start, end) {
      size += end - start;
      data?.push(Buffer.from(bytes.subarray(start, end)));
    },
    other(bytes, start, end) {
      size += end - start;
      other.push(Buffer.from(bytes.subarray(start, end)));
    },
    lineEnd(kind) {
      if (size > maxEventLength && !tooLong) {
        tooLong = true;
        onTooLong();
      }
      if (kind === 'other') {
        const line = Buffer.concat(other).toString('utf8');
        if (line.startsWith('id:')) {
          const value = line.slice(line.startsWith('id: ') ? 4 : 3);
          if (!value.includes('\0')) lastId = value;
        }
      }
      other = [];
      data = undefined;
      if (kind !== 'blank') return;
      const text = dataLines.map((pieces) => Buffer.concat(pieces).toString('utf8')).join('\n');
      // Empty data is not dispatched (a priming event: its id still counts for resuming).
      if (text !== '' && !tooLong) onEvent({ data: text, lastId });
      dataLines = [];
      size = 0;
    },
    lfAfterCr() {},
  });
  body.on('data', (chunk: Buffer) => {
    if (!tooLong) framer.write(chunk);
  });
}
