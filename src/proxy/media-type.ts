/**
 * Media types as RFC 9110 §8.3.1 writes them: `type "/" subtype *( OWS ";" OWS [ parameter ] )`,
 * type, subtype and parameter names case-insensitive, values a token or a quoted string. The
 * gateway decides from an upstream's `Content-Type` whether it can read (and so filter) an answer:
 * a prefix test let `Text/Event-Stream` and `application/json;charset=utf-8` through unfiltered,
 * so the header is parsed, in one linear pass, with no regular expression.
 */

export interface MediaType {
  /** `type/subtype`, lower-cased. */
  readonly essence: string;
  /** Parameter names lower-cased; values as sent (quoted strings unquoted). */
  readonly parameters: ReadonlyMap<string, string>;
}

/** RFC 9110 `tchar`, indexed by character code. */
const TCHAR: readonly boolean[] = (() => {
  const table: boolean[] = new Array(128).fill(false);
  for (const c of "!#$%&'*+-.^_`|~") table[c.charCodeAt(0)] = true;
  for (let c = 0x30; c <= 0x39; c++) table[c] = true;
  for (let c = 0x41; c <= 0x5a; c++) table[c] = true;
  for (let c = 0x61; c <= 0x7a; c++) table[c] = true;
  return table;
})();

const SP = 0x20;
const HTAB = 0x09;
const DQUOTE = 0x22;
const BACKSLASH = 0x5c;

const isTchar = (code: number) => code < 128 && TCHAR[code] === true;
const isOws = (code: number) => code === SP || code === HTAB;
/** `qdtext` and the characters a `quoted-pair` may escape: HTAB, SP, VCHAR, obs-text. */
const isQuotedChar = (code: number) => code === HTAB || (code >= 0x20 && code !== 0x7f && code <= 0xff);

/**
 * The media type of a `Content-Type` field value, or `undefined` when it is absent, repeated
 * (node:http hands a repeated header as an array: which one would the client believe?), or not
 * a media type. A parameter named twice is refused too: `charset=utf-8; charset=latin1` has no
 * single meaning.
 */
export function parseMediaType(value: string | readonly string[] | undefined): MediaType | undefined {
  if (typeof value !== 'string') return undefined;
  let end = value.length;
  while (end > 0 && isOws(value.charCodeAt(end - 1))) end--;
  let i = 0;
  while (i < end && isOws(value.charCodeAt(i))) i++;
  const typeStart = i;
  while (i < end && isTchar(value.charCodeAt(i))) i++;
  if (i === typeStart || value.charCodeAt(i) !== 0x2f) return undefined;
  const slash = i;
  i++;
  const subtypeStart = i;
  while (i < end && isTchar(value.charCodeAt(i))) i++;
  if (i === subtypeStart) return undefined;
  const essence = `${value.slice(typeStart, slash)}/${value.slice(subtypeStart, i)}`.toLowerCase();
  const parameters = new Map<string, string>();
  while (i < end) {
    while (i < end && isOws(value.charCodeAt(i))) i++;
    if (value.charCodeAt(i) !== 0x3b) return undefined; // `;`
    i++;
    while (i < end && isOws(value.charCodeAt(i))) i++;
    if (i === end || value.charCodeAt(i) === 0x3b) continue; // an empty parameter is allowed
    const nameStart = i;
    while (i < end && isTchar(value.charCodeAt(i))) i++;
    if (i === nameStart || value.charCodeAt(i) !== 0x3d) return undefined; // `=`
    const name = value.slice(nameStart, i).toLowerCase();
    i++;
    let parameterValue: string;
    if (value.charCodeAt(i) === DQUOTE) {
      i++;
      let text = '';
      let runStart = i;
      for (;;) {
        if (i >= end) return undefined; // unterminated quoted string
        const code = value.charCodeAt(i);
        if (code === DQUOTE) break;
        if (code === BACKSLASH) {
          if (i + 1 >= end || !isQuotedChar(value.charCodeAt(i + 1))) return undefined;
          text += value.slice(runStart, i);
          runStart = i + 1;
          i += 2;
          continue;
        }
        if (!isQuotedChar(code)) return undefined;
        i++;
      }
      parameterValue = text + value.slice(runStart, i);
      i++; // the closing quote
    } else {
      const valueStart = i;
      while (i < end && isTchar(value.charCodeAt(i))) i++;
      if (i === valueStart) return undefined;
      parameterValue = value.slice(valueStart, i);
    }
    if (parameters.has(name)) return undefined;
    parameters.set(name, parameterValue);
  }
  return { essence, parameters };
}

/** What the gateway can do with an answer body, judged from its `Content-Type`. */
export type BodyKind = 'json' | 'sse' | 'other';

/**
 * `json` for `application/json`, `sse` for `text/event-stream` — each only in UTF-8 (no
 * `charset`, or `utf-8` in any case), the one encoding both MCP transports allow; anything else
 * is `other`: relayed as it came where nothing must be read, refused where something must.
 */
export function bodyKind(contentType: string | readonly string[] | undefined): BodyKind {
  // An upstream answers with the same Content-Type every time: judged once, not parsed per answer.
  if (typeof contentType === 'string' && contentType === lastContentType) return lastKind;
  const kind = judgeBodyKind(contentType);
  if (typeof contentType === 'string') {
    lastContentType = contentType;
    lastKind = kind;
  }
  return kind;
}

let lastContentType: string | undefined;
let lastKind: BodyKind = 'other';

function judgeBodyKind(contentType: string | readonly string[] | undefined): BodyKind {
  const media = parseMediaType(contentType);
  if (media === undefined) return 'other';
  const charset = media.parameters.get('charset');
  if (charset !== undefined && charset.toLowerCase() !== 'utf-8') return 'other';
  if (media.essence === 'application/json') return 'json';
  if (media.essence === 'text/event-stream') return 'sse';
  return 'other';
}

/**
 * Whether an answer is a stream for the gateway's accounting (stream slots, the active-streams
 * gauge): any `text/event-stream`, in any charset and even with a malformed `Content-Type`, so
 * that no spelling lets a stream bypass the per-identity stream cap. Whether it can be *read* is
 * {@link bodyKind}'s question.
 */
export function isEventStream(contentType: string | readonly string[] | undefined): boolean {
  const values = typeof contentType === 'string' ? [contentType] : (contentType ?? []);
  for (const value of values) {
    if (value.trimStart().slice(0, 17).toLowerCase() === 'text/event-stream') return true;
  }
  return false;
}

/**
 * Whether an `Accept` header lists `text/event-stream`: an SSE answer — notifications, a server
 * request, the gateway's own question — can reach the client (the legacy transport asks clients
 * to list it beside `application/json`).
 */
export function acceptsEventStream(accept: string | undefined): boolean {
  return accept !== undefined && /(^|,)\s*text\/event-stream\s*(;|,|$)/i.test(accept);
}
