import { createSseFramer } from '../proxy/sse.js';

/**
 * The MCP-level outcome of an answer — did the tool say it failed (`isError: true`), or was the
 * answer a JSON-RPC error, and with which code — read from the bytes as they are relayed, in
 * constant memory: an HTTP 200 can carry either, and the audit record must say which
 * (DESIGN.md step 10). Nothing is held back from the client and nothing is parsed whole: the
 * scanner follows JSON structure byte by byte (all structural characters are ASCII, so UTF-8 needs
 * no decoding) and skips string contents with `indexOf`, keeping only the few short tokens it needs.
 */

/** What one JSON-RPC response said. */
export interface AnswerOutcome {
  readonly id: string | number | null | undefined;
  /** The tool reported failure (`result.isError: true`) or the answer is a JSON-RPC error. */
  readonly isError: boolean;
  /** The JSON-RPC error code, when the answer is an error. */
  readonly errorCode?: number;
}

/** Feeds answer bytes in; `end()` says what the responses in them said. */
export interface AnswerScanner {
  write(chunk: Buffer): void;
  end(): AnswerOutcome[];
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COLON = 0x3a;
const COMMA = 0x2c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const LF = 0x0a;
const CR = 0x0d;
const SPACE = 0x20;
const TAB = 0x09;
/** Longer strings are never a key or id the scanner needs. */
const MAX_TOKEN = 256;
/**
 * Responses remembered per answer. A request carries at most 256 messages (a 2025-03-26 batch),
 * so more responses than this are the upstream's garbage: an SSE event with 300 000 of them must
 * cost the audit nothing (spreading them into one array overflowed the call stack and killed the
 * process).
 */
export const MAX_OUTCOMES = 1024;

interface Draft {
  id: string | number | null | undefined;
  result: boolean;
  error: boolean;
  isError: boolean;
  errorCode: number | undefined;
}

/**
 * A JSON text holding one JSON-RPC response or an array of them (a 2025-03-26 batch answer).
 * Invalid JSON never throws: it yields whatever responses were complete.
 */
export function createJsonAnswerScanner(): AnswerScanner {
  let depth = 0;
  /** Depth of the response objects: 1, or 2 inside a batch array; 0 until the first byte. */
  let base = 0;
  let inString = false;
  let escaped = false;
  /** Bytes of the current string or scalar while they may matter, else undefined. */
  let token: number[] | undefined;
  let scalar: number[] | undefined;
  let afterColon = false;
  let lastString: string | undefined;
  /** The key being read at the response level, and one level below it. */
  let outerKey: string | undefined;
  let innerKey: string | undefined;
  let draft: Draft | undefined;
  const done: AnswerOutcome[] = [];

  const relevant = () => depth === base || depth === base + 1;

  function finishScalar(): void {
    if (scalar === undefined) return;
    // `scalar` holds at most MAX_TOKEN ASCII bytes; latin1 maps each byte to its own code point.
    const text = asciiText(scalar) ?? Buffer.from(scalar).toString('latin1');
    scalar = undefined;
    assign(text === 'true' ? true : text === 'false' ? false : text === 'null' ? null : Number(text));
  }

  /** A scalar or string value at the response level or one below it. */
  function assign(value: string | number | boolean | null): void {
    if (draft === undefined) return;
    if (depth === base && outerKey === 'result') draft.result = true;
    else if (depth === base && outerKey === 'id') {
      if (
        typeof value === 'string' ||
        value === null ||
        (typeof value === 'number' && Number.isFinite(value))
      )
        draft.id = value;
    } else if (depth === base + 1 && outerKey === 'result' && innerKey === 'isError') {
      draft.isError = value === true;
    } else if (depth === base + 1 && outerKey === 'error' && innerKey === 'code') {
      if (typeof value === 'number' && Number.isInteger(value)) draft.errorCode = value;
    }
  }

  function finishString(): void {
    const bytes = token;
    token = undefined;
    if (bytes === undefined) {
      lastString = undefined;
      afterColon = false;
      return;
    }
    const raw = asciiText(bytes) ?? Buffer.from(bytes).toString('utf8');
    let text: string | undefined = raw;
    if (raw.includes('\\')) {
      try {
        text = JSON.parse(`"${raw}"`) as string;
      } catch {
        text = undefined;
      }
    }
    if (afterColon) {
      afterColon = false;
      if (text !== undefined) assign(text);
      lastString = undefined;
    } else lastString = text;
  }

  function write(chunk: Buffer): void {
    const length = chunk.length;
    let i = 0;
    // The next backslash at or after `i`, found once per stretch: skipping many short strings
    // must not rescan the chunk for each.
    let slash = -1;
    while (i < length) {
      if (inString) {
        if (token === undefined) {
          // Skip what the scanner does not keep: jump to the next quote, minding escapes.
          if (escaped) {
            escaped = false;
            i++;
            continue;
          }
          const quote = chunk.indexOf(QUOTE, i);
          const end = quote === -1 ? length : quote;
          if (slash !== length && slash < i) {
            slash = chunk.indexOf(BACKSLASH, i);
            if (slash === -1) slash = length;
          }
          if (slash < end) {
            escaped = true;
            i = slash + 1;
            continue;
          }
          if (quote === -1) return;
          inString = false;
          i = quote + 1;
          finishString();
          continue;
        }
        const byte = chunk[i] as number;
        i++;
        if (escaped) escaped = false;
        else if (byte === BACKSLASH) escaped = true;
        else if (byte === QUOTE) {
          inString = false;
          finishString();
          continue;
        }
        token.push(byte);
        if (token.length > MAX_TOKEN) token = undefined;
        continue;
      }
      const byte = chunk[i] as number;
      i++;
      switch (byte) {
        case QUOTE:
          finishScalar();
          inString = true;
          // A string result counts however long it is (its text is never kept).
          if (afterColon && depth === base && outerKey === 'result' && draft !== undefined)
            draft.result = true;
          token = relevant() ? [] : undefined;
          // A string nobody keeps still ends a pending `key:` (its value is skipped).
          if (token === undefined && afterColon) afterColon = false;
          break;
        case OPEN_OBJECT:
        case OPEN_ARRAY:
          finishScalar();
          afterColon = false;
          depth++;
          if (depth === 1) base = byte === OPEN_ARRAY ? 2 : 1;
          if (depth === base && byte === OPEN_OBJECT) {
            draft = { id: undefined, result: false, error: false, isError: false, errorCode: undefined };
            outerKey = undefined;
          } else if (depth === base + 1) {
            innerKey = undefined;
            if (draft !== undefined && outerKey === 'error' && byte === OPEN_OBJECT) draft.error = true;
            if (draft !== undefined && outerKey === 'result') draft.result = true;
          }
          break;
        case CLOSE_OBJECT:
        case CLOSE_ARRAY:
          finishScalar();
          afterColon = false;
          if (depth === base && byte === CLOSE_OBJECT && draft !== undefined) {
            if ((draft.result || draft.error) && done.length < MAX_OUTCOMES) {
              done.push({
                id: draft.id,
                isError: draft.error || draft.isError,
                ...(draft.error && draft.errorCode !== undefined ? { errorCode: draft.errorCode } : {}),
              });
            }
            draft = undefined;
          }
          if (depth > 0) depth--;
          break;
        case COLON:
          finishScalar();
          if (depth === base) outerKey = lastString;
          else if (depth === base + 1) innerKey = lastString;
          lastString = undefined;
          afterColon = true;
          break;
        case COMMA:
          finishScalar();
          afterColon = false;
          break;
        case SPACE:
        case TAB:
        case LF:
        case CR:
          finishScalar();
          break;
        default:
          // A literal (number, true, false, null): kept only where it may matter.
          if (afterColon && relevant()) {
            scalar ??= [];
            if (scalar.length < MAX_TOKEN) scalar.push(byte);
          }
      }
    }
  }

  return {
    write,
    end() {
      finishScalar();
      return done;
    },
  };
}

/**
 * A `text/event-stream` answer, framed by the one SSE framer (`proxy/sse.ts`) exactly as a client
 * frames it: each event's `data` (lines joined by a newline, JSON whitespace) goes through its own
 * JSON scanner, fed as the bytes arrive. An event cut off before its blank line still counts at
 * the end of the stream: the client saw what it said.
 */
export function createSseAnswerScanner(): AnswerScanner {
  const outcomes: AnswerOutcome[] = [];
  let event: AnswerScanner | undefined;
  /** A data line already in this event: the next one is joined by a newline. */
  let hadData = false;

  function endEvent(): void {
    if (event !== undefined) {
      // One at a time: an event may hold any number of responses (never spread them as arguments).
      for (const outcome of event.end()) {
        if (outcomes.length >= MAX_OUTCOMES) break;
        outcomes.push(outcome);
      }
    }
    event = undefined;
    hadData = false;
  }

  const framer = createSseFramer({
    dataLine() {
      event ??= createJsonAnswerScanner();
      if (hadData) event.write(NEWLINE);
      hadData = true;
    },
    data(bytes, start, end) {
      event?.write(bytes.subarray(start, end));
    },
    other: () => undefined,
    lineEnd(kind) {
      if (kind === 'blank') endEvent();
    },
    lfAfterCr: () => undefined,
  });

  return {
    write: (chunk) => framer.write(chunk),
    end() {
      endEvent();
      return outcomes;
    },
  };
}

const NEWLINE = Buffer.from('\n');

/**
 * The text of a short token when every byte is ASCII, without a Buffer per token (keys and ids
 * are nearly always ASCII: a Buffer each was most of the scanner's cost); else undefined.
 * Tokens hold at most MAX_TOKEN bytes, so the argument list stays small.
 */
function asciiText(bytes: readonly number[]): string | undefined {
  for (const b of bytes) if (b >= 0x80) return undefined;
  return String.fromCharCode.apply(null, bytes as number[]);
}
