import { Transform } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';

/**
 * Why an SSE event that had to be read could not be: its data nests deeper than
 * `limits.maxJsonDepth`, is not JSON, or the event grew past the size the gateway holds.
 */
export type UnreadableReason = 'too_deep' | 'too_large' | 'not_json' | 'ambiguous';

/** What `rewrite` may answer for an event's data: new data, `undefined` (send it as it came), or a refusal to read it. */
export type RewriteResult = string | undefined | { readonly unreadable: UnreadableReason };

/** The stream's error when an event could not be read: the exchange ends with a JSON-RPC error event. */
export class UnreadableEventError extends Error {
  constructor(readonly reason: UnreadableReason) {
    super(`SSE event not readable: ${reason}`);
    this.name = 'UnreadableEventError';
  }
}

export interface SseRewriterOptions {
  /** Largest event (in UTF-16 code units of its text) held while it is read; past it the stream fails. */
  readonly maxEventLength: number;
}

const LF = 0x0a;
const BOM = '\uFEFF';

/**
 * Passes an SSE stream through event by event, handing the data of every event a WHATWG
 * `EventSource` would dispatch to `rewrite`: a string replaces the event's data (its other lines —
 * `id:`, `event:`, comments — kept in order), `undefined` sends the event's bytes as they came.
 *
 * Events are found exactly as the HTML standard (§9.2.6) finds them, since a client dispatches
 * what its parser sees, not what ours thought: a line ends at CRLF, LF or a lone CR — a CR is a
 * line end the moment it arrives, even as the stream's last byte, and an LF right after it is
 * only its second half — and a blank line dispatches an event when it has at least one `data`
 * field; a leading BOM is not part of the first field name. An upstream could otherwise end an
 * event in a way the rewriter missed and have it relayed unfiltered.
 *
 * At the end of the stream an unterminated event is discarded, as an `EventSource` discards it:
 * relaying its bytes would hand any parser that does dispatch it an unfiltered list.
 *
 * Linear: each chunk is scanned once from where the last one stopped; only the current line and
 * the current event are held, and an event longer than `maxEventLength` fails the stream with
 * {@link UnreadableEventError} rather than growing without bound. An error thrown by `rewrite`
 * fails the stream too (it must never escape into the upstream socket's event handler).
 */
export function createSseRewriter(
  rewrite: (data: string) => RewriteResult,
  { maxEventLength }: SseRewriterOptions,
): Transform {
  // A multi-byte character may straddle two chunks: decode across them.
  const decoder = new StringDecoder('utf8');
  /** The current line so far, without its terminator. */
  let line = '';
  /** The current event's text as received, terminators included, up to the current line. */
  let raw = '';
  /** Its non-data lines (kept in a rewritten event) and its data values. */
  let kept: string[] = [];
  let data: string[] = [];
  /** The last character seen was a CR: an LF right after it is that CR's second half. */
  let afterCr = false;
  /** Where the LF completing a CRLF goes: into the event being read, out as it came, or nowhere. */
  let crTail: 'event' | 'out' | 'drop' = 'out';
  let firstLine = true;
  let failed = false;

  /** A complete line, ended by `terminator`; returns the text to send now. */
  function endLine(terminator: string): string {
    const received = line;
    line = '';
    let content = received;
    if (firstLine) {
      firstLine = false;
      if (content.startsWith(BOM)) content = content.slice(1);
    }
    if (content === '') {
      // A blank line: dispatch (when there is data), then the next event starts.
      const event = raw + received + terminator;
      const values = data;
      const others = kept;
      raw = '';
      kept = [];
      data = [];
      if (values.length === 0) {
        crTail = 'out';
        return event;
      }
      const replaced = rewrite(values.join('\n'));
      if (replaced === undefined) {
        crTail = 'out';
        return event;
      }
      if (typeof replaced !== 'string') throw new UnreadableEventError(replaced.unreadable);
      crTail = 'drop';
      let out = '';
      for (const other of others) out += `${other}\n`;
      for (const value of replaced.split(/\r\n|\r|\n/)) out += `data: ${value}\n`;
      return `${out}\n`;
    }
    raw += received + terminator;
    crTail = 'event';
    // `field:value`, `field: value` (one space is syntax), `field` alone (empty value), `:comment`.
    const colon = content.indexOf(':');
    const field = colon === -1 ? content : content.slice(0, colon);
    if (field === 'data') {
      let value = colon === -1 ? '' : content.slice(colon + 1);
      if (value.charCodeAt(0) === 0x20) value = value.slice(1);
      data.push(value);
    } else kept.push(content);
    return '';
  }

  /** Scans `text` once, line end by line end; returns the text to send now. */
  function scan(text: string): string {
    let out = '';
    let i = 0;
    const length = text.length;
    if (afterCr && length > 0) {
      afterCr = false;
      if (text.charCodeAt(0) === LF) {
        if (crTail === 'event') raw += '\n';
        else if (crTail === 'out') out += '\n';
        i = 1;
      }
    }
    let nextCr = -2;
    let nextLf = -2;
    while (i < length) {
      if (nextCr !== -1 && nextCr < i) nextCr = text.indexOf('\r', i);
      if (nextLf !== -1 && nextLf < i) nextLf = text.indexOf('\n', i);
      const end = nextCr === -1 ? nextLf : nextLf === -1 ? nextCr : Math.min(nextCr, nextLf);
      if (end === -1) {
        line += text.slice(i);
        break;
      }
      line += text.slice(i, end);
      if (text.charCodeAt(end) === LF) {
        out += endLine('\n');
        i = end + 1;
      } else if (end + 1 < length) {
        const crlf = text.charCodeAt(end + 1) === LF;
        out += endLine(crlf ? '\r\n' : '\r');
        i = end + (crlf ? 2 : 1);
      } else {
        // A CR as the chunk's last character ends its line now; an LF opening the next chunk is its tail.
        out += endLine('\r');
        afterCr = true;
        i = end + 1;
      }
    }
    if (raw.length + line.length > maxEventLength) throw new UnreadableEventError('too_large');
    return out;
  }

  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      if (failed) return done();
      let out: string;
      try {
        out = scan(decoder.write(chunk));
      } catch (err) {
        failed = true;
        return done(err as Error);
      }
      done(null, out === '' ? undefined : out);
    },
    flush(done) {
      if (failed) return done();
      let out: string;
      try {
        out = scan(decoder.end());
      } catch (err) {
        failed = true;
        return done(err as Error);
      }
      // Whatever is left is an unterminated event: discarded, as an EventSource discards it.
      raw = '';
      line = '';
      done(null, out === '' ? undefined : out);
    },
  });
}
