/**
 * The one canonical form of a resource URI (issue 13, class 1). Every URI the policy reads —
 * `resources/read|subscribe|unsubscribe` `params.uri`, a `completion/complete` resource `ref`,
 * each `subscriptions/listen` resource subscription, each item of a `resources/list` answer — is
 * canonicalized here exactly once; allow and deny patterns match the canonical form, and the
 * canonical form is what goes upstream. The threat: a URI that matches a pattern as a string but
 * names something else to the upstream's parser. WHATWG URL parsers (Node's `URL`, so the
 * TypeScript SDK) delete TAB/LF/CR, read `\` as `/`, resolve `..` and `%2e%2e`, and fold
 * `FILE:`, `file:/x`, `file:x` and `file://localhost/` to `file:///`; file systems decode every
 * escape. So `file:///public/.<TAB>./secret/a` matched `file:///public/**` and read `/secret/a`.
 *
 * Canonicalization (RFC 3986 §6.2.2 syntax-based normalization, plus the WHATWG folds above):
 * - **Scheme** required (`ALPHA *(ALPHA / DIGIT / + / - / .)` then `:`) and lower-cased. A URI
 *   without one (a relative reference such as `../x` or `/x`) is refused: MCP resource URIs are
 *   absolute, and a relative one means whatever the upstream resolves it against.
 * - **Special schemes** are WHATWG's: `http`, `https`, `ws`, `wss`, `ftp` and `file` (`ftp`
 *   too, beyond the issue's list, because WHATWG reads `ftp:x` as `ftp://x/`). Only their hosts
 *   are case-folded, by the WHATWG host parser itself (`URL.parse`), so the host is exactly the
 *   one the upstream's parser sees: lower case, IDNA to punycode, IPv4 in dotted decimal, IPv6
 *   compressed. `http:`, `https:`, `ws:`, `wss:` and `ftp:` need `//` and a non-empty host (WHATWG
 *   reads `http:x` and `http:///x` as host `x`); their default port is dropped and an empty path
 *   becomes `/`. Other schemes keep their authority's case (`fixture://Greeting` is not
 *   `fixture://greeting`); an IPv6 literal in any scheme is serialized as WHATWG does.
 * - **`file:`**: `file:/x`, `file:x`, `file://localhost/x` (any case) and `file://` with an empty
 *   host all become `file:///x`; any other host and any port are refused: a server that reads a
 *   file URI's path and ignores its host (Python's `urlparse(…).path`) would read
 *   `file://evil/secret/a` as `/secret/a`, past a `file:///secret/**` deny pattern.
 * - **Userinfo** (`user@host`) is refused: credentials do not belong in a policy key or an audit
 *   record, and `https://trusted@evil/` reads as the wrong host to a human. A port must be
 *   digits below 65536; leading zeros and an empty port are dropped.
 * - **Escapes**: `%XX` must be two hex digits. An escaped unreserved character (`A-Z a-z 0-9 - _
 *   ~`) is decoded; any other escape keeps its byte and is written in upper case. In a `file:`
 *   path an escaped sub-delimiter, `:` or `@` is decoded too (a file URI's path is its
 *   percent-decoded file name: `a%21` and `a!` are one file). Escaped non-ASCII must be
 *   well-formed UTF-8 (no overlong `%C0%AE` for `.`, no surrogates).
 * - **Non-ASCII** characters are written as their UTF-8 escapes (RFC 3987 §3.1), so
 *   `file:///é` and `file:///%C3%A9` are one URI; a lone surrogate is refused. ASCII characters
 *   RFC 3986 never allows raw (`" < > [ ] ^ \` { | }`, and `#` inside a fragment) are escaped the
 *   same way. The canonical form is therefore printable ASCII (a valid `Mcp-Name` header value).
 * - **Query and fragment** are kept, normalized like the path (they are part of the resource's
 *   name to an MCP server).
 *
 * Refused (400 `bad_uri`):
 * - C0 controls (TAB, LF and CR included), DEL, space and backslash, raw anywhere;
 * - the escapes `%2E` (`.`), `%2F` (`/`), `%5C` (`\`), `%25` (`%`) and escaped C0 or DEL, anywhere;
 * - dot-segments: a `.` or `..` between any two of `/`, `?`, `#` (or the start and end) — in
 *   the query and fragment too, because an upstream that strips the scheme and joins the rest to
 *   a directory reads `?/../..` as a path; with the escapes above refused this is every spelling;
 * - an empty path segment (`//` inside the path): `file:////secret` and `file:///a//b` name what
 *   `file:///secret` and `file:///a/b` name to a file system, and would slip past a deny pattern;
 * - malformed escapes, userinfo, a bad port, a special scheme without a host, a host WHATWG
 *   refuses;
 * - a segment that is `.` or `..` before a `;` (`..;x`: Java servers and Python's `urlparse`
 *   read the part before a path parameter as the segment), and a host ending in a dot (DNS's
 *   fully qualified spelling of the same name).
 *
 * Limits, said plainly: a host is matched as WHATWG writes it, never resolved — DNS aliases are
 *   other names, so host-based deny patterns are only as strong as DNS.
 *
 * Linear in the URI's length: one pass, no regular expression, no recursion.
 */

/** WHATWG's special schemes and their default ports (`file` has none). */
const SPECIAL: ReadonlyMap<string, string> = new Map([
  ['http', '80'],
  ['https', '443'],
  ['ws', '80'],
  ['wss', '443'],
  ['ftp', '21'],
  ['file', ''],
]);

/** Per ASCII code: how a raw character is written in a path, query or fragment. */
enum Raw {
  /** Written as it is: unreserved, sub-delimiters, `:`, `@`, and `/`, `?` where they delimit. */
  Keep = 0,
  /** Escaped: RFC 3986 does not allow it raw (`" < > [ ] ^ \` { | }`). */
  Escape = 1,
  /** Refused: C0 controls, space, DEL, backslash. */
  Refuse = 2,
}

const RAW: Uint8Array = (() => {
  const table = new Uint8Array(128);
  for (let c = 0; c < 0x21; c++) table[c] = Raw.Refuse;
  table[0x7f] = Raw.Refuse;
  table[0x5c] = Raw.Refuse;
  for (const c of '"<>[]^`{|}') table[c.charCodeAt(0)] = Raw.Escape;
  return table;
})();

/** `A-Z a-z 0-9 - _ ~`: decoded from an escape (`.` is unreserved too, but `%2E` is refused). */
function isUnreserved(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    (c >= 0x30 && c <= 0x39) ||
    c === 0x2d ||
    c === 0x5f ||
    c === 0x7e
  );
}

/** Sub-delimiters, `:` and `@`: decoded from an escape in a `file:` path. */
function isFilePathDelimiter(c: number): boolean {
  // ! $ & ' ( ) * + , ; = : @
  return (
    c === 0x21 ||
    c === 0x24 ||
    (c >= 0x26 && c <= 0x2c) ||
    c === 0x3b ||
    c === 0x3d ||
    c === 0x3a ||
    c === 0x40
  );
}

/** Escapes refused wherever they appear: C0, DEL, `%`, `.`, `/`, `\`. */
function isRefusedEscape(b: number): boolean {
  return b < 0x20 || b === 0x7f || b === 0x25 || b === 0x2e || b === 0x2f || b === 0x5c;
}

function hasUpper(s: string): boolean {
  for (let k = 0; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c >= 0x41 && c <= 0x5a) return true;
  }
  return false;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

const HEX = '0123456789ABCDEF';

function escapeByte(b: number): string {
  return `%${HEX[b >> 4]}${HEX[b & 15]}`;
}

/** The UTF-8 escapes of one code point. */
function escapeCodePoint(cp: number): string {
  if (cp < 0x80) return escapeByte(cp);
  if (cp < 0x800) return escapeByte(0xc0 | (cp >> 6)) + escapeByte(0x80 | (cp & 63));
  if (cp < 0x10000)
    return escapeByte(0xe0 | (cp >> 12)) + escapeByte(0x80 | ((cp >> 6) & 63)) + escapeByte(0x80 | (cp & 63));
  return (
    escapeByte(0xf0 | (cp >> 18)) +
    escapeByte(0x80 | ((cp >> 12) & 63)) +
    escapeByte(0x80 | ((cp >> 6) & 63)) +
    escapeByte(0x80 | (cp & 63))
  );
}

/** The byte of the escape at `i` (`%XX`), or -1 when there is none. */
function escapedByteAt(s: string, i: number): number {
  if (s.charCodeAt(i) !== 0x25) return -1;
  // Past the end `charCodeAt` is NaN, which `hexValue` refuses.
  const hi = hexValue(s.charCodeAt(i + 1));
  const lo = hexValue(s.charCodeAt(i + 2));
  return hi < 0 || lo < 0 ? -1 : (hi << 4) | lo;
}

/**
 * How many escapes (3 characters each) form the well-formed UTF-8 sequence that starts with
 * `lead` at `i`; 0 when it is not one (RFC 3629 §4 ranges: no overlong forms, no surrogates).
 */
function utf8EscapeRun(s: string, i: number, lead: number): number {
  let length: number;
  let low = 0x80;
  let high = 0xbf;
  if (lead >= 0xc2 && lead <= 0xdf) length = 2;
  else if (lead >= 0xe0 && lead <= 0xef) {
    length = 3;
    if (lead === 0xe0) low = 0xa0;
    if (lead === 0xed) high = 0x9f;
  } else if (lead >= 0xf0 && lead <= 0xf4) {
    length = 4;
    if (lead === 0xf0) low = 0x90;
    if (lead === 0xf4) high = 0x8f;
  } else return 0;
  for (let k = 1; k < length; k++) {
    const b = escapedByteAt(s, i + 3 * k);
    if (b < low || b > high) return 0;
    low = 0x80;
    high = 0xbf;
  }
  return length;
}

enum Part {
  Path = 0,
  Query = 1,
  Fragment = 2,
}

/** What is canonicalized: a URI, a policy pattern (checked with the same code) or a URI template. */
interface Mode {
  /** Wildcards: `*` may stand for a path after a host, so no `/` is added after a wild host. */
  readonly pattern: boolean;
  /** RFC 6570 expressions (`{+path}`) in the path, query or fragment are kept as written. */
  readonly template: boolean;
}

const URI: Mode = { pattern: false, template: false };
const PATTERN: Mode = { pattern: true, template: false };
const TEMPLATE: Mode = { pattern: false, template: true };

/**
 * The canonical form of a resource URI, or `undefined` when it must be refused (400 `bad_uri`).
 * See the module comment for every rule. Idempotent: a canonical URI is its own canonical form.
 */
export function canonicalResourceUri(uri: string): string | undefined {
  return canonicalize(uri, URI);
}

/**
 * The canonical form of a resource URI that may be an RFC 6570 template (a `completion/complete`
 * resource reference, a `resources/templates/list` item): the same rules, except that each
 * `{…}` expression (in the host, path, query or fragment) is kept as written — it names a variable, not
 * characters of the URI — and counts as an ordinary segment character. An expression must close,
 * must not nest, and holds only variable names, escapes and the RFC 6570 operators and modifiers.
 */
export function canonicalResourceTemplate(template: string): string | undefined {
  return canonicalize(template, TEMPLATE);
}

/**
 * Why a `resources` pattern of the policy file can never match as written, or `undefined` when
 * it is fine. Patterns match canonical URIs, so a pattern must be canonical itself (`*` and `**`
 * are ordinary characters to this check); a pattern that starts with a wildcard has no literal
 * part to check. The message names the canonical spelling to write instead.
 */
export function resourcePatternProblem(pattern: string): string | undefined {
  if (pattern.startsWith('*')) return undefined;
  const canonical = canonicalize(pattern, PATTERN);
  if (canonical === undefined)
    return 'is not a resource URI the gateway accepts (no scheme, a dot-segment or empty segment, a control, space or backslash, a refused escape, userinfo, or a bad host or port), so it could never match';
  if (canonical !== pattern)
    return `is not in canonical form, so it would never match; write ${JSON.stringify(canonical)}`;
  return undefined;
}

function canonicalize(uri: string, mode: Mode): string | undefined {
  // Scheme.
  let i = 0;
  for (; i < uri.length; i++) {
    const c = uri.charCodeAt(i);
    const alpha = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (alpha) continue;
    if (i > 0 && ((c >= 0x30 && c <= 0x39) || c === 0x2b || c === 0x2d || c === 0x2e)) continue;
    break;
  }
  if (i === 0 || uri.charCodeAt(i) !== 0x3a) return undefined;
  const written = uri.slice(0, i);
  const scheme = hasUpper(written) ? written.toLowerCase() : written;
  const defaultPort = SPECIAL.get(scheme);
  const file = scheme === 'file';
  i++;
  let out = `${scheme}:`;

  // Authority.
  const slashes = uri.charCodeAt(i) === 0x2f && uri.charCodeAt(i + 1) === 0x2f;
  let wildHost = false;
  if (slashes) {
    let end = i + 2;
    while (end < uri.length) {
      const c = uri.charCodeAt(end);
      if (c === 0x2f || c === 0x3f || c === 0x23) break;
      end++;
    }
    const authority = authorityOf(uri.slice(i + 2, end), scheme, defaultPort, mode.template);
    if (authority === undefined) return undefined;
    wildHost = mode.pattern && authority.includes('*');
    out += `//${authority}`;
    i = end;
  } else if (file) {
    out += '//';
  } else if (defaultPort !== undefined) {
    return undefined; // `http:x`: WHATWG would read `x` as the host.
  }

  // Path: `file:` and the special schemes always have a `/` first.
  if (defaultPort !== undefined && uri.charCodeAt(i) !== 0x2f && !(wildHost && i === uri.length)) out += '/';
  return walk(uri, i, out, file, mode.template);
}

/** The canonical authority (host and port), or `undefined` when it is refused. */
function authorityOf(
  authority: string,
  scheme: string,
  defaultPort: string | undefined,
  template: boolean,
): string | undefined {
  if (authority.includes('@')) return undefined;
  let hostEnd = authority.length;
  if (template && authority.includes('{')) {
    // A templated host (`fixture://{name}`): kept as written, ASCII letters outside its
    // expressions lower-cased for special schemes; no WHATWG parse can read an expression.
    return templatedHost(authority, defaultPort !== undefined);
  }
  if (authority.charCodeAt(0) === 0x5b) {
    hostEnd = authority.indexOf(']') + 1;
    if (hostEnd === 0) return undefined;
  } else {
    const colon = authority.indexOf(':');
    if (colon !== -1) hostEnd = colon;
  }
  let port = '';
  if (hostEnd < authority.length) {
    // `file:` has no port, not even an empty one (WHATWG refuses `file://h:/`).
    if (authority.charCodeAt(hostEnd) !== 0x3a || scheme === 'file') return undefined;
    const digits = authority.slice(hostEnd + 1);
    for (let k = 0; k < digits.length; k++) {
      const c = digits.charCodeAt(k);
      if (c < 0x30 || c > 0x39) return undefined;
    }
    if (digits !== '') {
      let start = 0;
      while (start < digits.length - 1 && digits.charCodeAt(start) === 0x30) start++;
      port = digits.slice(start);
      if (port.length > 5 || Number(port) > 65535) return undefined;
      if (port === defaultPort) port = '';
    }
  }
  const host = hostOf(authority.slice(0, hostEnd), scheme, defaultPort !== undefined);
  if (host === undefined) return undefined;
  return port === '' ? host : `${host}:${port}`;
}

/**
 * The canonical host. Special schemes and IPv6 literals: what the WHATWG host parser makes of it
 * (escapes of unreserved characters decoded first, any other escape refused). Other schemes: the
 * host as written; an escape or non-ASCII in it is refused (two readings of one host).
 */
function hostOf(raw: string, scheme: string, special: boolean): string | undefined {
  // Only unreserved characters, sub-delimiters, escapes, non-ASCII — and `[ ] :` in an IPv6 literal.
  const literal = raw.charCodeAt(0) === 0x5b;
  let decoded = '';
  let run = 0;
  for (let k = 0; k < raw.length; k++) {
    const c = raw.charCodeAt(k);
    if (c === 0x25) {
      const b = escapedByteAt(raw, k);
      if (b < 0 || isRefusedEscape(b)) return undefined;
      // Other schemes' hosts are opaque to WHATWG (`notes://tea%6D` stays as written) while RFC 3986
      // decodes `%6D`: two readings of one host, so an escape there is refused rather than chosen.
      if (!special) return undefined;
      if (isUnreserved(b)) {
        decoded += raw.slice(run, k) + String.fromCharCode(b);
        run = k + 3;
        k += 2;
        continue;
      }
      return undefined; // WHATWG would decode it into the host: one more spelling of the same name.
    }
    if (c < 0x80) {
      if (RAW[c] !== Raw.Keep) {
        if (!(literal && (c === 0x5b || c === 0x5d))) return undefined;
      }
      if (c === 0x2f || c === 0x3f || c === 0x23 || c === 0x40) return undefined;
      if (c === 0x3a && !literal) return undefined;
      continue;
    }
    const cp = raw.codePointAt(k) as number;
    if (cp >= 0xd800 && cp <= 0xdfff) return undefined; // a lone surrogate has no UTF-8 form
    if (special && !literal) {
      if (cp > 0xffff) k++;
      continue; // non-ASCII: the WHATWG parser applies IDNA, below
    }
    // Other schemes: WHATWG escapes a non-ASCII host (opaque), and an escape there is refused above.
    if (!special) return undefined;
    decoded += raw.slice(run, k) + escapeCodePoint(cp);
    if (cp > 0xffff) k++;
    run = k + 1;
  }
  decoded += raw.slice(run);
  if (!special && !literal) return decoded;
  if (decoded === '') return scheme === 'file' ? '' : undefined;
  if (!special && decoded.includes('%')) return undefined;
  // `example.com.` is `example.com` to DNS (fully qualified), yet another string to a pattern: refused.
  if (!literal && decoded.endsWith('.')) return undefined;
  if (!literal && scheme !== 'file' && isPlainDomain(decoded)) return decoded;
  // The WHATWG host parser, on a host already free of `/ ? # @ \ :` and of controls: it can only
  // read this string as a host. `file` reads `localhost` as the empty host.
  const parsed = URL.parse(`${special ? scheme : 'http'}://${decoded}/`);
  if (parsed === null) return undefined;
  const host = parsed.hostname;
  if (scheme !== 'file' && host === '') return undefined;
  // A file URI names a file on the server itself: only the empty host (and `localhost`, read as it).
  if (scheme === 'file' && host !== '') return undefined;
  // IDNA can make a trailing dot (`example.com。`): as above, DNS's name for the same host.
  if (host.endsWith('.')) return undefined;
  return host;
}

/**
 * A host the WHATWG parser would return unchanged, so it need not run (the common case, and
 * the parser is the costliest step): lower-case letters, digits, `-` and `.`, no IDNA label
 * (`xn--`), and a last label that is not a number (WHATWG reads `1.2.3.4`, `0x7f.1` as IPv4).
 */
function isPlainDomain(host: string): boolean {
  let labelStart = 0;
  for (let k = 0; k < host.length; k++) {
    const c = host.charCodeAt(k);
    if (c === 0x2e) labelStart = k + 1;
    else if (!((c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d)) return false;
  }
  if (host.includes('xn--')) return false;
  // The last label, a trailing dot aside: a letter other than a leading `0x` makes it a name.
  let end = host.length;
  if (host.charCodeAt(end - 1) === 0x2e) {
    end--;
    labelStart = host.lastIndexOf('.', end - 1) + 1;
  }
  const last = host.slice(labelStart, end);
  if (last === '' || last.startsWith('0x')) return false;
  for (let k = 0; k < last.length; k++) {
    const c = last.charCodeAt(k);
    if (c < 0x30 || c > 0x39) return true;
  }
  return false;
}

/**
 * A host holding RFC 6570 expressions (templates only): expressions as written, everything else
 * an unreserved character, a sub-delimiter or an escape (upper-cased); letters lower-cased for
 * special schemes. A port after a templated host is refused: rare, and not worth a second parser.
 */
function templatedHost(raw: string, special: boolean): string | undefined {
  let out = '';
  for (let k = 0; k < raw.length; k++) {
    const c = raw.charCodeAt(k);
    if (c === 0x7b) {
      const close = expressionEnd(raw, k);
      if (close === -1) return undefined;
      out += raw.slice(k, close + 1);
      k = close;
      continue;
    }
    if (c === 0x25) {
      const b = escapedByteAt(raw, k);
      if (b < 0 || isRefusedEscape(b) || special) return undefined;
      out += isUnreserved(b) ? String.fromCharCode(b) : escapeByte(b);
      k += 2;
      continue;
    }
    if (
      c >= 0x80 ||
      RAW[c] !== Raw.Keep ||
      c === 0x3a ||
      c === 0x40 ||
      c === 0x2f ||
      c === 0x3f ||
      c === 0x23
    )
      return undefined;
    out += special && c >= 0x41 && c <= 0x5a ? String.fromCharCode(c + 0x20) : raw[k];
  }
  return out;
}

/** Path, query and fragment from `start`, appended to `out`; `undefined` when refused. */
function walk(
  uri: string,
  start: number,
  head: string,
  file: boolean,
  template: boolean,
): string | undefined {
  let out = head;
  // `head` is the canonical scheme and authority; the URI as written when they are unchanged.
  const sameHead = head.length === start && uri.startsWith(head);
  let part = Part.Path;
  /** Characters of the current segment, and how many of them are dots. */
  let length = 0;
  let dots = 0;
  /** Path segments seen (the first one may be empty: the path's leading `/`). */
  let segments = 0;
  let run = start;
  for (let i = start; i < uri.length; i++) {
    const c = uri.charCodeAt(i);
    // Delimiters end a segment: `/` everywhere (a naive join), `?` and `#` where they delimit.
    const delimits =
      c === 0x2f || (c === 0x3f && part === Part.Path) || (c === 0x23 && part !== Part.Fragment);
    if (delimits) {
      if (length > 0 && length === dots && dots <= 2) return undefined;
      if (part === Part.Path && c === 0x2f && length === 0 && segments > 0) return undefined;
      if (part === Part.Path) segments++;
      if (c === 0x3f) part = Part.Query;
      else if (c === 0x23) part = Part.Fragment;
      length = 0;
      dots = 0;
      continue;
    }
    length++;
    // `..;x` and `.;x`: Java servers and Python's `urlparse` (http, https) read what precedes a
    // `;` path parameter as the segment — a dot-segment in disguise.
    if (c === 0x3b && dots > 0 && dots === length - 1 && dots <= 2) return undefined;
    if (c === 0x7b && template) {
      const close = expressionEnd(uri, i);
      if (close === -1) return undefined;
      i = close;
      continue;
    }
    if (c === 0x2e) {
      dots++;
      continue;
    }
    if (c === 0x25) {
      const b = escapedByteAt(uri, i);
      if (b < 0 || isRefusedEscape(b)) return undefined;
      // `..%3B`: a `file:` path decodes it to `..;`, refused above in every spelling.
      if (b === 0x3b && dots > 0 && dots === length - 1 && dots <= 2) return undefined;
      let replacement: string;
      let width = 3;
      if (b >= 0x80) {
        const bytes = utf8EscapeRun(uri, i, b);
        if (bytes === 0) return undefined;
        width = 3 * bytes;
        replacement = uri.slice(i, i + width).toUpperCase();
      } else if (isUnreserved(b) || (file && part === Part.Path && isFilePathDelimiter(b))) {
        replacement = String.fromCharCode(b);
      } else {
        replacement = escapeByte(b);
      }
      if (replacement !== uri.slice(i, i + width)) {
        out += uri.slice(run, i) + replacement;
        run = i + width;
      }
      i += width - 1;
      continue;
    }
    if (c < 0x80) {
      const how = c === 0x23 ? Raw.Escape : (RAW[c] as Raw); // `#` here is inside the fragment
      if (how === Raw.Keep) continue;
      if (how === Raw.Refuse) return undefined;
      out += uri.slice(run, i) + escapeByte(c);
      run = i + 1;
      continue;
    }
    const cp = uri.codePointAt(i) as number;
    if (cp >= 0xd800 && cp <= 0xdfff) return undefined; // a lone surrogate has no UTF-8 form
    out += uri.slice(run, i) + escapeCodePoint(cp);
    if (cp > 0xffff) i++;
    run = i + 1;
  }
  if (length > 0 && length === dots && dots <= 2) return undefined;
  // Nothing rewritten (the common case): the URI itself, no new string.
  if (run === start && sameHead) return uri;
  return out + uri.slice(run);
}

/**
 * The index of the `}` closing the RFC 6570 expression opened at `open`, or -1 when it does not
 * close or holds anything but variable characters (`ALPHA DIGIT _ .`, escapes), operators
 * (`+ # . / ; ? & = , ! @ |`) and modifiers (`:` digits, `*`).
 */
function expressionEnd(s: string, open: number): number {
  for (let k = open + 1; k < s.length; k++) {
    const c = s.charCodeAt(k);
    if (c === 0x7d) return k === open + 1 ? -1 : k;
    const alnum = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
    if (alnum || '_.+#/;?&=,!@|:*'.includes(s[k] as string)) continue;
    if (c === 0x25 && escapedByteAt(s, k) >= 0) {
      k += 2;
      continue;
    }
    return -1;
  }
  return -1;
}
