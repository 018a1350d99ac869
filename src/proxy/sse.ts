import { Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/**
 * Passes an SSE stream through event by event, handing each event's `data` to `rewrite`: when it
 * returns a string, that event goes out with the new data (its `id:`/`event:` lines kept); when it
 * returns undefined, the event's original bytes go out untouched. Bytes are held only until the end
 * of the event they belong to, so nothing is buffered beyond one event.
 */
export function createSseRewriter(rewrite: (data: string) => string | undefined): Transform {
  let pending = '';
  // A multi-byte character may straddle two chunks: decode across them.
  const decoder = new StringDecoder('utf8');
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      pending += decoder.write(chunk);
      let out = '';
      for (;;) {
        const end = eventEnd(pending);
        if (end === -1) break;
        out += rewriteEvent(pending.slice(0, end), rewrite);
        pending = pending.slice(end);
      }
      done(null, out === '' ? undefined : out);
    },
    flush(done) {
      pending += decoder.end();
      done(null, pending === '' ? undefined : pending);
    },
  });
}

/** A line end followed by an empty line; CRLF, LF and CR may be mixed (the SSE grammar). */
const EVENT_END = /(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)/;

/** The index just past the blank line that ends the first complete event, or -1. */
function eventEnd(text: string): number {
  const match = EVENT_END.exec(text);
  if (match === null) return -1;
  const end = match.index + match[0].length;
  // A CR that ends the buffer may be the first half of a CRLF still in flight: wait for it.
  return end === text.length && text.endsWith('\r') ? -1 : end;
}

function rewriteEvent(event: string, rewrite: (data: string) => string | undefined): string {
  const lines = event.split(/\r\n|\n|\r/);
  // `data` alone is a data field with an empty value.
  const isData = (line: string) => line === 'data' || line.startsWith('data:');
  const data = lines.filter(isData).map((line) => line.slice(line[5] === ' ' ? 6 : 5));
  if (data.length === 0) return event;
  const replaced = rewrite(data.join('\n'));
  if (replaced === undefined) return event;
  const kept = lines.filter((line) => line !== '' && !isData(line));
  return `${[...kept, ...replaced.split('\n').map((line) => `data: ${line}`)].join('\n')}\n\n`;
}
