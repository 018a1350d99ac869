import { Transform } from 'node:stream';

/**
 * Why an SSE event that had to be read could not be: its data nests deeper than
 * `limits.maxJsonDepth`, is not JSON, or the event grew past the size the gateway holds.
 */
export type UnreadableReason = 'too_deep' | 'too_large' | 'not_json' | 'ambiguous';

/** The event is not relayed at all (see {@link createSseRewriter}). */
export interface DropEvent {
  readonly drop: true;
}

/** What `rewrite` answers to mean "drop this event": one frozen value, nothing allocated per event. */
export const DROP_EVENT: DropEvent = Object.freeze({ drop: true });

/**
 * What `rewrite` may answer for an event's data: new data, `undefined` (send it as it came),
 * {@link DROP_EVENT} (send nothing of it), or a refusal to read it.
 */
export type RewriteResult = string | undefined | DropEvent | { readonly unreadable: UnreadableReason };

/** The stream's error when an event could not be read: the exchange ends with a JSON-RPC error event. */
export class UnreadableEventError extends Error {
  constructor(readonly reason: UnreadableReason) {
    super(`SSE event not readable: ${reason}`);
    this.name = 'UnreadableEventError';
  }
}

export interface SseRewriterOptions {
  /** Largest event (in bytes) held while it is read; past it the stream fails. */
  readonly maxEventLength: number;
}

/**
 * Passes an SSE stream through event by event, handing the data of every event a WHATWG
 * `EventSource` would dispatch to `rewrite`: a string replaces the event's data (its other lines —
 * `id:`, `event:`, comments — kept in order), `undefined` sends the event's bytes as they came,
 * {@link DROP_EVENT} sends none of its bytes — its `id:` and `retry:` lines go with it: an `id:`
 * alone would still be an event to parsers that dispatch empty data, and a client that resumes
 * from an earlier id is only replayed the same event, dropped again. The stream goes on.
 * Events are found by {@link createSseFramer}, the one framer; an upstream could otherwise end an
 * event in a way the rewriter missed and have it relayed unfiltered. Each line is decoded as UTF-8
 * (invalid bytes replaced, as an `EventSource` decodes them) only when its event is handed over.
 *
 * At the end of the stream an unterminated event is discarded, as an `EventSource` discards it:
 * relaying its bytes would hand any parser that does dispatch it an unfiltered list.
 *
 * Linear: each chunk is framed once; only the current event's bytes are held (slices of the chunks,
 * not copies), and an event longer than `maxEventLength` bytes fails the stream with
 * {@link UnreadableEventError} rather than growing without bound. An error thrown by `rewrite`
 * fails the stream too (it must never escape into the upstream socket's event handler). Events
 * passed through go out as slices of the chunks they came in.
 */
export function createSseRewriter(
  rewrite: (data: string) => RewriteResult,
  options: SseRewriterOptions,
): Transform {
  const events = createSseEventRewriter(rewrite, options);
  return new Transform({
    transform(received: Buffer, _encoding, done) {
      let out: Buffer | undefined;
      try {
        out = events.write(received);
      } catch (err) {
        return done(err as Error);
      }
      done(null, out);
    },
  });
}

/** {@link createSseRewriter}'s work without a stream around it: chunk in, bytes to send out. */
export interface SseEventRewriter {
  /**
   * The bytes to send on for `chunk` (`undefined`: none yet), as slices of it where events pass
   * unchanged. Throws {@link UnreadableEventError} (or what `rewrite` threw); from then on every
   * chunk gives nothing. Whatever it still holds at the end of the stream is an unterminated event:
   * it is never sent, as an `EventSource` discards it.
   */
  write(chunk: Buffer): Buffer | undefined;
}

/**
 * The rewriter itself, called in line by its owner (the answer relay) rather than piped: a
 * `Transform` and its `pipe` cost more per answer than framing and reading the events do (measured
 * on SSE call answers), and every SSE answer is rewritten since updates are checked at delivery.
 */
export function createSseEventRewriter(
  rewrite: (data: string) => RewriteResult,
  { maxEventLength }: SseRewriterOptions,
): SseEventRewriter {
  const utf8 = new TextDecoder('utf-8');
  /** The current line's bytes so far (a data value, or another line's text). */
  let line: Buffer[] = [];
  /** The current event's other lines (kept in a rewritten event) and data values. */
  let kept: string[] = [];
  let data: string[] = [];
  /** The current event's bytes from earlier chunks, and how many. */
  let held: Buffer[] = [];
  let heldBytes = 0;
  /** The chunk being framed, where the current event starts in it, and what it sends on. */
  let chunk: Buffer = EMPTY;
  let from = 0;
  let out: Buffer[] = [];
  /** Where the LF completing a CRLF goes: into the event being read, out as it came, or nowhere. */
  let crTail: 'event' | 'out' | 'drop' = 'out';
  let failed = false;

  const lineText = (): string => {
    const text = utf8.decode(line.length === 1 ? (line[0] as Buffer) : Buffer.concat(line));
    line = [];
    return text;
  };
  const piece = (bytes: Buffer, start: number, end: number): void => {
    line.push(bytes.subarray(start, end));
  };
  /** The event ends at `next`: sent as it came, as `replaced`, or not at all (`DROP_EVENT`). */
  const endEvent = (next: number, replaced: string | undefined | DropEvent): void => {
    if (replaced === undefined) {
      for (const part of held) out.push(part);
      out.push(chunk.subarray(from, next));
      crTail = 'out';
    } else if (typeof replaced !== 'string') {
      // Dropped: its bytes so far (held, and this chunk's from `from`) are let go, and the LF
      // completing a CR that ended it belongs to it too.
      crTail = 'drop';
    } else {
      let text = '';
      for (const other of kept) text += `${other}\n`;
      for (const value of replaced.split(/\r\n|\r|\n/)) text += `data: ${value}\n`;
      out.push(Buffer.from(`${text}\n`));
      crTail = 'drop';
    }
    held = [];
    heldBytes = 0;
    kept = [];
    data = [];
    from = next;
  };
  const framer = createSseFramer({
    dataLine: () => undefined,
    data: piece,
    other: piece,
    lineEnd(kind, _terminator, next) {
      if (kind === 'data') data.push(lineText());
      else if (kind === 'other') kept.push(lineText());
      if (kind !== 'blank') {
        crTail = 'event';
        return;
      }
      // A blank line: dispatch (when there is data), then the next event starts.
      if (data.length === 0) return endEvent(next, undefined);
      const replaced = rewrite(data.join('\n'));
      if (replaced !== undefined && typeof replaced !== 'string' && !('drop' in replaced))
        throw new UnreadableEventError(replaced.unreadable);
      endEvent(next, replaced);
    },
    lfAfterCr() {
      if (crTail === 'event') return;
      if (crTail === 'out') out.push(chunk.subarray(0, 1));
      from = 1;
    },
  });

  return {
    write(received) {
      if (failed) return undefined;
      chunk = received;
      from = 0;
      out = [];
      try {
        framer.write(received);
        if (from < received.length) {
          held.push(received.subarray(from));
          heldBytes += received.length - from;
        }
        if (heldBytes > maxEventLength) throw new UnreadableEventError('too_large');
      } catch (err) {
        failed = true;
        held = [];
        line = [];
        throw err;
      } finally {
        chunk = EMPTY;
      }
      return out.length === 0 ? undefined : out.length === 1 ? out[0] : Buffer.concat(out);
    },
  };
}

const EMPTY = Buffer.alloc(0);

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
const SPACE = 0x20;
/** The one field whose value the gateway reads. */
const DATA = Buffer.from('data');
/** A UTF-8 byte order mark: not part of the first field name (HTML §9.2.6). */
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/** What a line turned out to be: a `data` field, any other line (field, comment), or blank (an event's end). */
export type SseLineKind = 'data' | 'other' | 'blank';

/** A line terminator as received; an LF completing a CR that ended a chunk is reported apart. */
export type SseTerminator = '\n' | '\r\n' | '\r';

/**
 * What {@link createSseFramer} reports, in stream order. Byte ranges point into the chunk being
 * framed (or into a constant for a field-name prefix held across chunks): a handler that keeps them
 * past the call must copy or `subarray` them.
 */
export interface SseFrameHandler {
  /** A `data` line starts: its value (possibly empty) follows in `data` calls. */
  dataLine(): void;
  /** Bytes of the current `data` line's value, `bytes[start, end)` (after `data`, the colon and one space). */
  data(bytes: Buffer, start: number, end: number): void;
  /** Bytes of the current other line — field name, colon, value, or a comment — `bytes[start, end)`. */
  other(bytes: Buffer, start: number, end: number): void;
  /**
   * The current line ended; its terminator ends at `next` in the chunk being framed. A `blank`
   * line ends an event (an `EventSource` dispatches it when it had a data line).
   */
  lineEnd(kind: SseLineKind, terminator: SseTerminator, next: number): void;
  /** The chunk opens with the LF completing the CR that ended the previous chunk's last line. */
  lfAfterCr(): void;
}

export interface SseFramer {
  write(chunk: Buffer): void;
}

/**
 * The one SSE framer of the code base: finds lines, fields and events in a `text/event-stream` as
 * the HTML standard (§9.2.6) finds them, since a client dispatches what its parser sees, not what
 * ours thought. A line ends at CRLF, LF or a lone CR — a CR is a line end the moment it arrives,
 * even as a chunk's last byte, and an LF right after it is only its second half; a blank line ends
 * an event; a leading BOM is not part of the first field name; `data` is the field exactly (`Data`
 * and `data ` are other fields), and one space after its colon is syntax. Used by the answer relay
 * to rewrite list events (`createSseRewriter`) and by the audit to scan answers (`audit/answer-outcome.ts`).
 *
 * Byte-level and streaming: all syntax is ASCII, so UTF-8 needs no decoding here and a character
 * split across chunks is the handler's to join; nothing is held but a few bytes of state (a field
 * name is matched against `data` as it arrives), so a line of any length costs constant memory.
 * Values are found with `indexOf`, not byte by byte.
 */
export function createSseFramer(handler: SseFrameHandler): SseFramer {
  /** Where in the current line: its field name, the one space after `data:`, or the rest of it. */
  let state: 'name' | 'space' | 'data' | 'other' = 'name';
  /** Bytes of the field name so far, all of them a prefix of `data`. */
  let matched = 0;
  /** Bytes of a leading BOM seen so far (0–2); -1 once past it or the stream's first bytes. */
  let bom = 0;
  let afterCr = false;

  /** The field name so far is not `data`: report its bytes as another line's. */
  function other(): void {
    state = 'other';
    if (bom > 0) handler.other(BOM, 0, bom); // a partial BOM is part of the field name
    bom = -1;
    if (matched > 0) handler.other(DATA, 0, matched);
  }

  function endLine(terminator: SseTerminator, next: number): void {
    let kind: SseLineKind;
    if (state === 'name') {
      if (matched === DATA.length) {
        handler.dataLine(); // `data` alone: an empty value
        kind = 'data';
      } else if (matched === 0 && bom <= 0) kind = 'blank';
      else {
        other();
        kind = 'other';
      }
    } else kind = state === 'other' ? 'other' : 'data';
    state = 'name';
    matched = 0;
    bom = -1;
    handler.lineEnd(kind, terminator, next);
  }

  return {
    write(chunk) {
      const length = chunk.length;
      let i = 0;
      let nextCr = -2;
      let nextLf = -2;
      if (afterCr && length > 0) {
        afterCr = false;
        if (chunk[0] === LF) {
          handler.lfAfterCr();
          i = 1;
        }
      }
      while (i < length) {
        const byte = chunk[i] as number;
        if (byte === LF) {
          endLine('\n', i + 1);
          i++;
          continue;
        }
        if (byte === CR) {
          if (i + 1 < length) {
            const crlf = chunk[i + 1] === LF;
            endLine(crlf ? '\r\n' : '\r', i + (crlf ? 2 : 1));
            i += crlf ? 2 : 1;
          } else {
            // A CR as the chunk's last byte ends its line now; an LF opening the next chunk is its tail.
            endLine('\r', i + 1);
            afterCr = true;
            i++;
          }
          continue;
        }
        if (state === 'data' || state === 'other') {
          // Up to the end of the line in one step. The next CR and LF are found once per stretch
          // (-1: none left in this chunk): a chunk of many lines must not be rescanned for each.
          if (nextLf !== -1 && nextLf < i) nextLf = chunk.indexOf(LF, i);
          if (nextCr !== -1 && nextCr < i) nextCr = chunk.indexOf(CR, i);
          const end = nextCr === -1 ? nextLf : nextLf === -1 ? nextCr : Math.min(nextCr, nextLf);
          const stop = end === -1 ? length : end;
          if (state === 'data') handler.data(chunk, i, stop);
          else handler.other(chunk, i, stop);
          i = stop;
          continue;
        }
        if (state === 'space') {
          state = 'data';
          if (byte === SPACE) i++;
          continue;
        }
        // state === 'name'
        if (bom >= 0) {
          if (byte === BOM[bom]) {
            bom++;
            if (bom === BOM.length) bom = -1; // a whole BOM: skipped
            i++;
            continue;
          }
          if (bom > 0) {
            other(); // a BOM cut short: its bytes begin another field's name
            continue;
          }
          bom = -1;
        }
        if (byte === COLON) {
          if (matched === DATA.length) {
            handler.dataLine();
            state = 'space';
          } else {
            other();
            handler.other(chunk, i, i + 1);
          }
          i++;
          continue;
        }
        if (matched < DATA.length && byte === DATA[matched]) {
          matched++;
          i++;
          continue;
        }
        other();
      }
    },
  };
}
