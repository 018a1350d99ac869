/**
 * Builds, token by token as the strict-JSON scanner reads a large body, the value `JSON.parse`
 * would give and the text `JSON.stringify` would give of it — so that when the body ends, no
 * O(body) synchronous block is left (issue 13, class 18: a 3.5 MB body held the event loop for
 * 50–190 ms in JSON.parse + JSON.stringify, stalling every other request and `/healthz`).
 *
 * The scanner drives it and has already checked the grammar and the depth; the builder trusts its
 * calls and does O(1) work per token plus native work linear in the token. What it must give is
 * exactly what the native pair gives, because policy reads the value and the upstream reads the
 * text (a property test holds them together, under any chunking):
 * - `__proto__` is an own data property, never a prototype (JSON.parse uses CreateDataProperty);
 * - keys are ordered as V8 orders them: array-index keys ascending first, then insertion order —
 *   in the value by V8 itself, in the text by `Frame.ints`;
 * - numbers are `Number(token)` and spelled `String(value)` (`-0` → `0`, `1E2` → `100`);
 * - strings are decoded by the scanner and escaped by native `JSON.stringify` (well-formed: a lone
 *   surrogate as `\udXXX`), a trailing high surrogate held back so a pair split across two chunks
 *   is never escaped as two lone halves.
 * The text is only meaningful for a body the scanner accepted (a duplicate key, refused, would
 * appear twice in it); the value is always what JSON.parse gives (a refusal reads its ids).
 *
 * Memory stays O(body): the value and the text, as today, but no copy of the client's text. The
 * text is kept as a few long strings per open container (one per chunk, joined when the chunk
 * ends), so a container's close concatenates a bounded number of pieces.
 */

/** A piece longer than this is appended as it is (a rope node), not copied into the chunk's join. */
const LONG_PIECE = 1024;

interface Frame {
  readonly object: boolean;
  readonly container: Record<string, unknown> | unknown[];
  /** The container's text so far, without its brackets: long pieces, then short ones to join. */
  head: string;
  readonly parts: string[];
  /** Members (elements) written to `head`/`parts`: a comma precedes every one but the first. */
  count: number;
  /** Objects: the key of the member being read. */
  key: string;
  /**
   * Objects: members whose key is an array index, as [index, text] — `JSON.stringify` writes them
   * first, ascending, whatever their position in the body. Undefined until one appears (rare).
   */
  ints: [number, string][] | undefined;
  /** Objects: the text of the member being read when its key is an array index, else undefined. */
  intText: string | undefined;
  intIndex: number;
}

export interface JsonBuilder {
  open(object: boolean): void;
  close(): void;
  key(key: string): void;
  /** A whole string value, or its last piece when earlier ones came through {@link stringPiece}. */
  string(chars: string): void;
  /** A piece of a string value still open when a chunk ends. */
  stringPiece(chars: string): void;
  number(token: string): void;
  literal(which: 0 | 1 | 2): void;
  /** A chunk ended: the short pieces of every open container are joined into one. */
  endChunk(): void;
  /** The value (what JSON.parse gives); valid once the scanner accepted the whole text. */
  readonly value: unknown;
  /** The value's JSON.stringify text; valid once the scanner accepted the whole text. */
  readonly forward: string;
}

const LITERAL_VALUES = [true, false, null] as const;
const LITERAL_TEXTS = ['true', 'false', 'null'] as const;

/** A new builder for one body. */
export function createJsonBuilder(): JsonBuilder {
  const frames: Frame[] = [];
  let root: unknown;
  let rootText = '';
  // A string value spread over chunks.
  let stringOpen = false;
  let stringValue = '';
  /** A high surrogate that ended the previous piece: it may pair with the next piece's first. */
  let heldBack = '';

  /** Appends `s` to where the current value's text goes. */
  const emit = (s: string): void => {
    const frame = frames[frames.length - 1];
    if (frame === undefined) rootText += s;
    else if (frame.intText !== undefined) frame.intText += s;
    else if (s.length > LONG_PIECE) {
      if (frame.parts.length > 0) flush(frame);
      frame.head += s;
    } else frame.parts.push(s);
  };

  /** Before a value's first text: the comma that separates array elements. */
  const beginValue = (): void => {
    const frame = frames[frames.length - 1];
    if (frame !== undefined && !frame.object && frame.count++ > 0) emit(',');
  };

  /** Puts a value where JSON.parse would: the root, the next element, or the current member. */
  const place = (value: unknown): void => {
    const frame = frames[frames.length - 1];
    if (frame === undefined) root = value;
    else if (!frame.object) (frame.container as unknown[]).push(value);
    else if (frame.key === '__proto__')
      // Assignment would set the prototype; JSON.parse defines an own data property.
      Object.defineProperty(frame.container, '__proto__', {
        value,
        writable: true,
        enumerable: true,
        configurable: true,
      });
    else (frame.container as Record<string, unknown>)[frame.key] = value;
  };

  /** A value's text is complete: an array-index member of an object is set aside for sorting. */
  const endValue = (): void => {
    const frame = frames[frames.length - 1];
    if (frame === undefined || frame.intText === undefined) return;
    if (frame.ints === undefined) frame.ints = [];
    frame.ints.push([frame.intIndex, frame.intText]);
    frame.intText = undefined;
  };

  const scalar = (value: unknown, text: string): void => {
    beginValue();
    place(value);
    emit(text);
    endValue();
  };

  /** The escaped text of `chars` (with its quotes), holding back a trailing high surrogate. */
  const escapePiece = (chars: string, last: boolean): string => {
    let piece = heldBack === '' ? chars : heldBack + chars;
    heldBack = '';
    if (!last && piece.length > 0) {
      const c = piece.charCodeAt(piece.length - 1);
      if (c >= 0xd800 && c <= 0xdbff) {
        heldBack = piece.slice(-1);
        piece = piece.slice(0, -1);
      }
    }
    stringValue += piece;
    return JSON.stringify(piece);
  };

  return {
    open(object) {
      beginValue();
      const container: Record<string, unknown> | unknown[] = object ? {} : [];
      place(container);
      frames.push({
        object,
        container,
        head: '',
        parts: [],
        count: 0,
        key: '',
        ints: undefined,
        intText: undefined,
        intIndex: 0,
      });
    },
    close() {
      const frame = frames.pop() as Frame;
      let body = frame.parts.length > 0 ? frame.head + frame.parts.join('') : frame.head;
      if (frame.ints !== undefined) {
        // Unique indexes (a repeated key is refused): sorting by index alone is total.
        const ints = frame.ints.sort((a, b) => a[0] - b[0]).map((member) => member[1]);
        body = body === '' ? ints.join(',') : `${ints.join(',')},${body}`;
      }
      emit(frame.object ? `{${body}}` : `[${body}]`);
      endValue();
    },
    key(key) {
      const frame = frames[frames.length - 1] as Frame;
      frame.key = key;
      const text = `${JSON.stringify(key)}:`;
      const index = arrayIndex(key);
      if (index >= 0) {
        frame.intIndex = index;
        frame.intText = text;
      } else emit(frame.count++ > 0 ? `,${text}` : text);
    },
    stringPiece(chars) {
      if (!stringOpen) {
        beginValue();
        stringOpen = true;
        stringValue = '';
        const text = escapePiece(chars, false);
        emit(text.slice(0, -1));
      } else emit(escapePiece(chars, false).slice(1, -1));
    },
    string(chars) {
      if (!stringOpen) return scalar(chars, JSON.stringify(chars));
      stringOpen = false;
      const text = escapePiece(chars, true);
      emit(text.slice(1));
      place(stringValue);
      stringValue = '';
      endValue();
    },
    number(token) {
      const value = Number(token);
      scalar(value, Number.isFinite(value) ? String(value) : 'null');
    },
    literal(which) {
      scalar(LITERAL_VALUES[which], LITERAL_TEXTS[which]);
    },
    endChunk() {
      for (const frame of frames) if (frame.parts.length > 0) flush(frame);
    },
    get value() {
      return root;
    },
    get forward() {
      return rootText;
    },
  };
}

function flush(frame: Frame): void {
  frame.head += frame.parts.join('');
  frame.parts.length = 0;
}

/**
 * The key as an array index (0 … 2^32 − 2, canonical decimal), else -1: the keys V8, and so
 * JSON.stringify, list first and in ascending order.
 */
export function arrayIndex(key: string): number {
  const n = key.length;
  if (n === 0 || n > 10) return -1;
  const first = key.charCodeAt(0);
  if (first === 0x30) return n === 1 ? 0 : -1;
  let value = 0;
  for (let i = 0; i < n; i++) {
    const c = key.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    value = value * 10 + (c - 0x30);
  }
  return value <= 4294967294 ? value : -1;
}
