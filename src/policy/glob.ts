/**
 * Policy patterns (`*` any characters but `/`, `**` any characters, everything else literal),
 * compiled once at load into a matcher that reads each name once, left to right.
 *
 * Threat: the names matched here are the client's (tool, prompt and method names, resource
 * URIs up to the body limit) and the upstream's (list items being filtered). A backtracking
 * regular expression for a pattern with two or more wildcards (`admin_*_tool_*x`, a URI
 * pattern with `**` twice) is super-linear in the name: a 20 KB name took 100–250 ms, a 4 MB one
 * minutes of a stalled event loop. Here a pattern is a small automaton whose live states are a
 * bit set (Shift-And with self-loops for the wildcards): every character costs a few word
 * operations per 32 pattern positions, whatever the pattern and the name — O(n·⌈m/32⌉), no
 * backtracking at all. The literal prefix and suffix are compared directly first, and the
 * common shapes (`read_*`, `file:///public/**`, `*.txt`) never run the automaton.
 *
 * Semantics are exactly those of the anchored `u`-flag regular expression the gateway used
 * before (`*` → `[^/]*`, `**` → `[\s\S]*`): a run of three or more stars holds a `**` and so
 * matches anything; matching is by code point, so a surrogate pair in a name is one character
 * that a lone surrogate in a pattern never matches half of.
 */

/** One compiled pattern. */
export interface Glob {
  /** Whether the whole of `name` matches the pattern. */
  test(name: string): boolean;
}

/** A wildcard token that does not cross `/`; literals are their (non-negative) character code. */
const STAR = -1;
/** A wildcard token that matches anything. */
const GLOBSTAR = -2;
const SLASH = 0x2f;

/** Compiles `pattern`, which holds at least one `*` (names without one are matched exactly). */
export function compileGlob(pattern: string): Glob {
  const first = pattern.indexOf('*');
  const last = pattern.lastIndexOf('*');
  if (first === -1) return { test: (name) => name === pattern };
  const prefix = codesOf(pattern.slice(0, first));
  const suffix = codesOf(pattern.slice(last + 1));
  const fixed = prefix.length + suffix.length;
  // The literal ends are necessary in every case: checking them first rejects most names in
  // O(length of the pattern) before anything reads the name's middle. Compared code by code:
  // on names of tool-name length this is as fast as the regular expression was, where
  // `startsWith` and `endsWith` cost a builtin call each.
  const ends = (name: string): boolean => {
    const length = name.length;
    if (length < fixed) return false;
    for (let i = 0; i < prefix.length; i++) if (name.charCodeAt(i) !== prefix[i]) return false;
    for (let i = 1; i <= suffix.length; i++) {
      if (name.charCodeAt(length - i) !== suffix[suffix.length - i]) return false;
    }
    return true;
  };

  if (/[\uD800-\uDFFF]/.test(pattern)) {
    // Surrogates in the pattern: step by code point so that a pair in the name is one
    // character (a lone surrogate in the pattern matches only a lone one in the name).
    const automaton = compileAutomaton(tokenize(pattern, true));
    return { test: (name) => ends(name) && automaton.run(name, 0, name.length, true) };
  }
  // Otherwise code units are exact: a literal never matches a surrogate, so no token boundary
  // can fall inside a pair (the wildcard next to it would have to end there, and the token
  // after a wildcard is a literal or the end of the name).
  const middle = tokenize(pattern.slice(first, last + 1), false);
  if (middle.length === 1) {
    if (middle[0] === GLOBSTAR) return { test: ends };
    return {
      test: (name) => {
        if (!ends(name)) return false;
        const slash = name.indexOf('/', prefix.length);
        return slash === -1 || slash >= name.length - suffix.length;
      },
    };
  }
  const automaton = compileAutomaton(middle);
  return {
    test: (name) => ends(name) && automaton.run(name, prefix.length, name.length - suffix.length, false),
  };
}

/** The UTF-16 code units of `text` (not its code points: the comparison is unit by unit). */
function codesOf(text: string): Uint16Array {
  const codes = new Uint16Array(text.length);
  for (let i = 0; i < text.length; i++) codes[i] = text.charCodeAt(i);
  return codes;
}

/** Literal characters and wildcards; a run of stars is one token (`**` if it holds two). */
function tokenize(pattern: string, byCodePoint: boolean): number[] {
  const tokens: number[] = [];
  for (let i = 0; i < pattern.length; ) {
    if (pattern.charCodeAt(i) === 0x2a) {
      let run = 0;
      while (pattern.charCodeAt(i) === 0x2a) {
        run++;
        i++;
      }
      tokens.push(run >= 2 ? GLOBSTAR : STAR);
    } else {
      const code = byCodePoint ? (pattern.codePointAt(i) as number) : pattern.charCodeAt(i);
      tokens.push(code);
      i += code > 0xffff ? 2 : 1;
    }
  }
  return tokens;
}

interface Automaton {
  /** Whether `name[start, end)` is accepted, reading it by code unit or by code point. */
  run(name: string, start: number, end: number, byCodePoint: boolean): boolean;
}

/**
 * State `i` means "the first `i` tokens are matched". A literal token `i` moves state `i-1` to
 * `i` on its character; a wildcard token `i` is entered from `i-1` without reading (it may
 * match nothing) and loops on every character it accepts. Tokens never hold two wildcards in a
 * row, so one shift computes that closure.
 */
function compileAutomaton(tokens: readonly number[]): Automaton {
  const states = tokens.length + 1;
  const words = Math.ceil(states / 32);
  const mask = (pick: (token: number) => boolean): Int32Array => {
    const bits = new Int32Array(words);
    tokens.forEach((token, i) => {
      if (pick(token)) bits[(i + 1) >>> 5] = (bits[(i + 1) >>> 5] as number) | (1 << ((i + 1) & 31));
    });
    return bits;
  };
  const wildcards = mask((t) => t < 0);
  const anything = mask((t) => t === GLOBSTAR);
  const ascii: Int32Array[] = [];
  const other = new Map<number, Int32Array>();
  for (const token of new Set(tokens)) {
    if (token < 0) continue;
    const bits = mask((t) => t === token);
    if (token < 128) ascii[token] = bits;
    else other.set(token, bits);
  }
  const none = new Int32Array(words);
  const literal = (code: number): Int32Array => (code < 128 ? ascii[code] : other.get(code)) ?? none;
  const acceptWord = (states - 1) >>> 5;
  const acceptBit = 1 << ((states - 1) & 31);

  if (words === 1) {
    // The usual case (patterns of up to 31 tokens between their literal ends): one machine word.
    const wild = wildcards[0] as number;
    const any = anything[0] as number;
    const accept = acceptBit;
    const asciiWords = new Int32Array(128);
    const otherWords = new Map<number, number>();
    ascii.forEach((bits, code) => {
      asciiWords[code] = bits[0] as number;
    });
    for (const [code, bits] of other) otherWords.set(code, bits[0] as number);
    const lit = (code: number): number =>
      code < 128 ? (asciiWords[code] as number) : (otherWords.get(code) ?? 0);
    return {
      run(name, start, end, byCodePoint) {
        let live = 1 | ((1 << 1) & wild);
        for (let j = start; j < end; ) {
          const code = unitAt(name, j, end, byCodePoint);
          j += code > 0xffff ? 2 : 1;
          live = ((live << 1) & lit(code)) | (live & (code === SLASH ? any : wild));
          live |= (live << 1) & wild;
          if (live === 0) return false;
        }
        return (live & accept) !== 0;
      },
    };
  }

  return {
    run(name, start, end, byCodePoint) {
      let live = new Int32Array(words);
      let next = new Int32Array(words);
      live[0] = 1 | ((1 << 1) & (wildcards[0] as number));
      for (let j = start; j < end; ) {
        const code = unitAt(name, j, end, byCodePoint);
        j += code > 0xffff ? 2 : 1;
        const lit = literal(code);
        const loop = code === SLASH ? anything : wildcards;
        let carry = 0;
        let any = 0;
        for (let w = 0; w < words; w++) {
          const word = live[w] as number;
          const moved = ((word << 1) | carry) & (lit[w] as number);
          carry = word >>> 31;
          next[w] = moved | (word & (loop[w] as number));
        }
        carry = 0;
        for (let w = 0; w < words; w++) {
          const word = next[w] as number;
          const entered = ((word << 1) | carry) & (wildcards[w] as number);
          carry = word >>> 31;
          next[w] = word | entered;
          any |= next[w] as number;
        }
        if (any === 0) return false;
        [live, next] = [next, live];
      }
      return ((live[acceptWord] as number) & acceptBit) !== 0;
    },
  };
}

/**
 * The UTF-16 code unit of `name` at `j`, or, with `byCodePoint`, the code point a surrogate pair
 * starting there spells (a value above 0xFFFF: the caller steps over two units).
 */
function unitAt(name: string, j: number, end: number, byCodePoint: boolean): number {
  const code = name.charCodeAt(j);
  if (byCodePoint && code >= 0xd800 && code <= 0xdbff && j + 1 < end) {
    const low = name.charCodeAt(j + 1);
    if (low >= 0xdc00 && low <= 0xdfff) return (code - 0xd800) * 0x400 + (low - 0xdc00) + 0x10000;
  }
  return code;
}

/** A character no pattern spells: stands for "any character but `/` that is not a literal here". */
const OTHER = -3;

/**
 * Whether some name matches both patterns (used at load, where two federated servers declaring
 * overlapping `resources` patterns would give a URI two owners). The product of the two
 * automata is walked breadth-first: a state is a position in each pattern, a wildcard may be
 * left (it matched nothing more) or stay (it took one more character), and the characters worth
 * trying from a state are the literals there, `/`, and one that is neither. O(m·n) states.
 */
export function globsOverlap(a: string, b: string): boolean {
  const x = tokenize(a, true);
  const y = tokenize(b, true);
  const width = y.length + 1;
  const seen = new Uint8Array((x.length + 1) * width);
  const queue: number[] = [0];
  seen[0] = 1;
  const visit = (i: number, j: number): void => {
    const at = i * width + j;
    if (seen[at] === 0) {
      seen[at] = 1;
      queue.push(at);
    }
  };
  /** Where pattern `t` at `k` goes on reading `c`: its next position, or -1 when it cannot. */
  const step = (t: readonly number[], k: number, c: number): number => {
    const token = t[k];
    if (token === undefined) return -1;
    if (token === GLOBSTAR) return k;
    if (token === STAR) return c === SLASH ? -1 : k;
    return token === c ? k + 1 : -1;
  };
  while (queue.length > 0) {
    const at = queue.pop() as number;
    const i = Math.floor(at / width);
    const j = at % width;
    if (i === x.length && j === y.length) return true;
    // A wildcard may stop matching here.
    if (x[i] === STAR || x[i] === GLOBSTAR) visit(i + 1, j);
    if (y[j] === STAR || y[j] === GLOBSTAR) visit(i, j + 1);
    const candidates = [SLASH, OTHER];
    if (x[i] !== undefined && x[i] >= 0) candidates.push(x[i] as number);
    if (y[j] !== undefined && y[j] >= 0) candidates.push(y[j] as number);
    for (const c of candidates) {
      const ni = step(x, i, c);
      const nj = step(y, j, c);
      if (ni !== -1 && nj !== -1) visit(ni, nj);
    }
  }
  return false;
}
