import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compileTable } from '../../../src/policy/compile.js';
import {
  canonicalResourceTemplate,
  canonicalResourceUri,
  resourcePatternProblem,
} from '../../../src/policy/uri.js';

describe('canonicalResourceUri: the spellings of issue 13', () => {
  it.each([
    // Already canonical: unchanged.
    ['file:///public/a.txt', 'file:///public/a.txt'],
    ['fixture://greeting', 'fixture://greeting'],
    ['notes:todo', 'notes:todo'],
    ['urn:isbn:0451450523', 'urn:isbn:0451450523'],
    ['db://prod:5432/tables/users?limit=1', 'db://prod:5432/tables/users?limit=1'],
    ['file:///public/.hidden', 'file:///public/.hidden'],
    ['file:///public/.../a', 'file:///public/.../a'],
    ['file:///public/a..b', 'file:///public/a..b'],
    ['file:///public/', 'file:///public/'],
    ['file:///public/a?x=..', 'file:///public/a?x=..'],
    // The scheme is case-insensitive.
    ['FILE:///secret/a', 'file:///secret/a'],
    ['File:///secret/a', 'file:///secret/a'],
    ['HTTPS://docs.example.com/guide', 'https://docs.example.com/guide'],
    // file: with an empty or localhost host, and without slashes.
    ['file:/secret/a', 'file:///secret/a'],
    ['file:secret/a', 'file:///secret/a'],
    ['file://localhost/secret/a', 'file:///secret/a'],
    ['file://LocalHost/secret/a', 'file:///secret/a'],
    ['file:', 'file:///'],
    ['file://', 'file:///'],
    ['file://localhost', 'file:///'],
    ['file:?q', 'file:///?q'],
    ['file:C:/x', 'file:///C:/x'],
    // Hosts: case-folded for special schemes only, by the WHATWG host parser.
    ['https://Docs.Example.COM/Guide', 'https://docs.example.com/Guide'],
    ['http://[0:0::1]/x', 'http://[::1]/x'],
    ['http://0x7f.1/x', 'http://127.0.0.1/x'],
    ['https://bücher.example/x', 'https://xn--bcher-kva.example/x'],
    ['https://ex%41mple.com/x', 'https://example.com/x'],
    ['fixture://Greeting', 'fixture://Greeting'],
    ['fixture://GREETING/Path', 'fixture://GREETING/Path'],
    // Ports: default dropped for special schemes, leading zeros and an empty port dropped.
    ['https://example.com:443/x', 'https://example.com/x'],
    ['http://example.com:80/x', 'http://example.com/x'],
    ['wss://example.com:0443/x', 'wss://example.com/x'],
    ['http://example.com:8080/x', 'http://example.com:8080/x'],
    ['db://prod:/t', 'db://prod/t'],
    ['db://prod:05432/t', 'db://prod:5432/t'],
    // An empty path is / for special schemes.
    ['https://example.com', 'https://example.com/'],
    ['https://example.com?q', 'https://example.com/?q'],
    // Escapes: unreserved decoded, the rest upper-cased.
    ['file:///public/%41%62%7e%2d%5f', 'file:///public/Ab~-_'],
    ['file:///public/a%20b.txt', 'file:///public/a%20b.txt'],
    ['file:///public/a%3fb', 'file:///public/a%3Fb'],
    ['file:///public/r%c3%a9sum%c3%a9', 'file:///public/r%C3%A9sum%C3%A9'],
    ['fixture://g/a%21b', 'fixture://g/a%21b'],
    // ...and in a file: path, sub-delimiters, `:` and `@` too (one file name, one spelling).
    ['file:///public/a%21b%3Ac%40d', 'file:///public/a!b:c@d'],
    ['file:///public/a?x=%21', 'file:///public/a?x=%21'],
    // Non-ASCII and characters RFC 3986 never allows raw: escaped.
    ['file:///public/résumé', 'file:///public/r%C3%A9sum%C3%A9'],
    ['file:///public/😀', 'file:///public/%F0%9F%98%80'],
    ['file:///public/a{b}|c', 'file:///public/a%7Bb%7D%7Cc'],
    ['file:///public/a"<>^`[]', 'file:///public/a%22%3C%3E%5E%60%5B%5D'],
    ['file:///public/a#b#c', 'file:///public/a#b%23c'],
  ])('canonicalizes %j to %j', (uri, canonical) => {
    expect(canonicalResourceUri(uri)).toBe(canonical);
    expect(canonicalResourceUri(canonical)).toBe(canonical);
  });

  it.each([
    // C0 controls (the WHATWG parser deletes TAB/LF/CR and then resolves `..`), DEL, space, backslash.
    ['TAB between dots', 'file:///public/.\t./secret/a'],
    ['LF between dots', 'file:///public/.\n./secret/a'],
    ['CR between dots', 'file:///public/.\r./secret/a'],
    ['a leading TAB', '\tfile:///secret/a'],
    ['a trailing LF', 'file:///public/a\n'],
    ['NUL', 'file:///public/a\0.txt'],
    ['DEL', 'file:///public/a\x7f'],
    ['a space', 'file:///public/a b'],
    ['a leading space', ' file:///public/a'],
    ['a backslash', 'file:///public\\..\\secret'],
    ['a backslash alone', 'file:///public/a\\b'],
    ['a TAB in the scheme', 'fi\tle:///secret'],
    ['a TAB in the host', 'https://exa\tmple.com/x'],
    // Dot-segments, in every spelling.
    ['a .. segment', 'file:///public/../secret'],
    ['a trailing .. segment', 'file:///public/..'],
    ['a . segment', 'file:///public/./a'],
    ['a trailing . segment', 'file:///public/.'],
    ['a .. right after the authority', 'https://example.com/../x'],
    ['a .. in an opaque path', 'notes:../secret'],
    ['a .. ending at a query', 'file:///public/..?x'],
    ['a .. ending at a fragment', 'file:///public/..#x'],
    ['a .. inside the query', 'file:///public/a?x/../../secret'],
    ['a .. inside the fragment', 'file:///public/a#/../x'],
    ['a .. after file:', 'file:..'],
    ['%2e%2e', 'file:///public/%2e%2e/secret'],
    ['%2E%2E', 'file:///public/%2E%2E/secret'],
    ['.%2e', 'file:///public/.%2e/secret'],
    ['%2e.', 'file:///public/%2e./secret'],
    ['one %2E in a name', 'file:///public/a%2etxt'],
    ['an overlong UTF-8 dot', 'file:///public/%C0%AE%C0%AE/secret'],
    // Refused escapes.
    ['%2F', 'file:///public%2Fsecret'],
    ['%2f', 'file:///public/b%2f..%2fsecret'],
    ['%5C', 'file:///public%5Csecret'],
    ['%5c', 'file:///public/%5c..%5csecret'],
    ['%25', 'file:///public/%252e%252e/secret'],
    ['%00', 'file:///public/a%00.txt'],
    ['%09', 'file:///public/.%09./secret'],
    ['%0A', 'file:///public/a%0A'],
    ['%0d', 'file:///public/a%0d'],
    ['%7F', 'file:///public/a%7F'],
    ['%2F in the query', 'https://example.com/x?next=%2Fadmin'],
    ['%2E in the host', 'https://ex%2Eample.com/x'],
    // Malformed escapes and UTF-8.
    ['a lone %', 'file:///public/100%'],
    ['a non-hex escape', 'file:///public/%zz'],
    ['a truncated escape', 'file:///public/%4'],
    ['an escape that is not UTF-8', 'file:///public/%e9'],
    ['a truncated UTF-8 sequence', 'file:///public/%C3'],
    ['an escaped surrogate', 'file:///public/%ED%A0%80'],
    ['a lone surrogate', 'file:///public/\uD800'],
    // Empty segments: other names of the same file.
    ['four slashes', 'file:////secret/a'],
    ['an empty segment', 'file:///public//secret'],
    // No scheme.
    ['a relative path', '../secret'],
    ['an absolute path', '/secret/a'],
    ['a bare name', 'greeting'],
    ['an empty string', ''],
    ['a scheme starting with a digit', '1file:///x'],
    // Authority.
    ['userinfo', 'https://user@example.com/x'],
    ['userinfo that looks like a host', 'https://trusted.example.com@evil.example/x'],
    ['a port on file:', 'file://localhost:80/x'],
    ['a host on file: other than localhost (a path-only reader ignores it)', 'file://evil/public/secret/k'],
    ['a UNC-style file: host', 'file://Server/share/a'],
    ['a fully qualified host (trailing dot)', 'http://EXAMPLE.com.:80/a'],
    ['a dot-segment before a path parameter', 'http://files.example/public/..;x/secret'],
    ['a dot before a path parameter', 'file:///public/.;x/a'],
    ['a trailing ideographic full stop', 'https://example.com\u3002/a'],
    ['a port that is not a number', 'http://example.com:8o/x'],
    ['a port too large', 'http://example.com:65536/x'],
    ['http without a host', 'http:///x'],
    ['http without slashes', 'http:example.com/x'],
    ['ftp without slashes', 'ftp:x'],
    ['an unclosed IPv6 literal', 'http://[::1/x'],
    ['an invalid IPv6 literal', 'http://[::g]/x'],
    ['a character no host may hold', 'https://exa<mple.com/x'],
  ])('refuses %s: %j', (_, uri) => {
    expect(canonicalResourceUri(uri)).toBeUndefined();
  });
});

describe('canonicalResourceTemplate', () => {
  it.each([
    ['file:///{+path}', 'file:///{+path}'],
    ['FILE:///public/{name}', 'file:///public/{name}'],
    ['file://localhost/public/{a,b}{?q*}', 'file:///public/{a,b}{?q*}'],
    ['file:///public/{/seg}/x', 'file:///public/{/seg}/x'],
    ['fixture://{name}', 'fixture://{name}'],
    ['HTTPS://{Tenant}.Example.com/{+path}', 'https://{Tenant}.example.com/{+path}'],
  ])('keeps the expressions of %j: %j', (template, canonical) => {
    expect(canonicalResourceTemplate(template)).toBe(canonical);
  });

  it.each([
    ['an unclosed expression', 'file:///public/{name'],
    ['a nested expression', 'file:///public/{a{b}}'],
    ['an empty expression', 'file:///public/{}'],
    ['a dot-segment around an expression', 'file:///public/../{name}'],
    ['a TAB inside an expression', 'file:///public/{na\tme}'],
  ])('refuses %s', (_, template) => {
    expect(canonicalResourceTemplate(template)).toBeUndefined();
  });
});

describe('resourcePatternProblem', () => {
  it.each([
    'file:///public/**',
    'fixture://**',
    '**',
    'file:///public/*.txt',
    'https://*.example.com/**',
    'http://**',
  ])('accepts the canonical pattern %j', (pattern) => {
    expect(resourcePatternProblem(pattern)).toBeUndefined();
  });

  it.each([
    ['FILE:///public/**', 'file:///public/**'],
    ['file://localhost/public/**', 'file:///public/**'],
    ['file:/public/**', 'file:///public/**'],
    ['https://*.Example.com/**', 'https://*.example.com/**'],
    ['file:///public/%7e*', 'file:///public/~*'],
  ])('names the canonical spelling of %j', (pattern, canonical) => {
    expect(resourcePatternProblem(pattern)).toBe(
      `is not in canonical form, so it would never match; write ${JSON.stringify(canonical)}`,
    );
  });

  it.each([
    'file:///public/../secret/**',
    'file:///public/%2e%2e/**',
    'file:///pub\tlic/**',
    'file:///a//**',
  ])('refuses %j, which no canonical URI can match', (pattern) => {
    expect(resourcePatternProblem(pattern)).toMatch(/^is not a resource URI the gateway accepts/);
  });
});

// ---------------------------------------------------------------------------------------------
// Properties, with Node's WHATWG URL parser (what the TypeScript SDK reads URIs with) as oracle.
// ---------------------------------------------------------------------------------------------

/** Pieces biased toward what breaks URI matchers: dots, slashes, escapes, controls, case. */
const piece = fc.constantFrom(
  '.',
  '..',
  '/',
  '/',
  '\\',
  '%',
  '%2e',
  '%2E',
  '%2f',
  '%2F',
  '%5c',
  '%25',
  '%00',
  '%09',
  '%41',
  '%7e',
  '%c3%a9',
  '%C0%AE',
  '%3F',
  '%21',
  '\t',
  '\n',
  '\r',
  ' ',
  '\0',
  '\x7f',
  '?',
  '#',
  ':',
  '@',
  ';',
  '|',
  '{',
  'é',
  '\uD800',
  'a',
  'A',
  'secret',
  'public',
  'localhost',
  'LOCALHOST',
);
const prefix = fc.constantFrom(
  'file:///public/',
  'FILE:///public/',
  'file:/public/',
  'file:public/',
  'file://localhost/public/',
  'file://LocalHost/public/',
  'file:///',
  'file:',
  'file://',
  'file:////public/',
  'fIlE:',
  'http://h/public/',
  '',
);
const uriArb = fc
  .tuple(prefix, fc.array(piece, { maxLength: 12 }))
  .map(([head, tail]) => head + tail.join(''));

const PUBLIC = compileTable('resources', { 'file:///public/**': 'files:read' });

/** The path part of a canonical file: URI (between `file://host` and `?` or `#`). */
function pathOf(canonical: string): string {
  const afterHost = canonical.indexOf('/', 'file://'.length);
  const rest = afterHost === -1 ? '' : canonical.slice(afterHost);
  let end = rest.length;
  for (const mark of ['?', '#']) {
    const at = rest.indexOf(mark);
    if (at !== -1 && at < end) end = at;
  }
  return rest.slice(0, end);
}

/**
 * Every `/`-separated segment of path, query and fragment (the path ends at the first `?` or
 * `#`, the query at the next `#`): what a WHATWG parser or a naive path join could resolve.
 */
function segmentsOf(canonical: string): string[] {
  let rest = canonical.slice(canonical.indexOf(':') + 1);
  if (rest.startsWith('//')) {
    const hostEnd = [rest.indexOf('/', 2), rest.indexOf('?'), rest.indexOf('#')].filter((at) => at !== -1);
    rest = hostEnd.length === 0 ? '' : rest.slice(Math.min(...hostEnd));
  }
  const pathEnd = [rest.indexOf('?'), rest.indexOf('#')].filter((at) => at !== -1).sort((a, b) => a - b)[0];
  if (pathEnd === undefined) return rest.split('/');
  const fragmentAt = rest.indexOf('#', pathEnd);
  const query = rest.slice(pathEnd + 1, fragmentAt === -1 ? undefined : fragmentAt);
  const fragment = fragmentAt === -1 ? '' : rest.slice(fragmentAt + 1);
  return [...rest.slice(0, pathEnd).split('/'), ...query.split('/'), ...fragment.split('/')];
}

describe('canonicalResourceUri: properties', () => {
  it('is idempotent', () => {
    fc.assert(
      fc.property(uriArb, (uri) => {
        const canonical = canonicalResourceUri(uri);
        if (canonical !== undefined) expect(canonicalResourceUri(canonical)).toBe(canonical);
      }),
      { numRuns: 20_000 },
    );
  });

  it('never lets a URI that matches file:///public/** resolve outside /public/ for a WHATWG parser', () => {
    let matched = 0;
    fc.assert(
      fc.property(uriArb, (uri) => {
        const canonical = canonicalResourceUri(uri);
        if (canonical === undefined || PUBLIC.lookup(canonical) === undefined) return;
        matched++;
        const url = new URL(canonical);
        expect(url.protocol).toBe('file:');
        expect(url.host).toBe('');
        expect(url.pathname.startsWith('/public/')).toBe(true);
        // What the pattern matched is what the upstream's parser reads: no hidden normalization.
        expect(url.pathname).toBe(pathOf(canonical));
        // And it names the file the client's own spelling names to the same parser.
        const original = new URL(uri);
        expect(original.host).toBe('');
        expect(decodeURIComponent(original.pathname)).toBe(decodeURIComponent(url.pathname));
      }),
      { numRuns: 20_000 },
    );
    // The generator must reach the interesting case, or the property proves nothing.
    expect(matched).toBeGreaterThan(1000);
  });

  it('never accepts a control, space, backslash or refused escape, and always yields printable ASCII', () => {
    fc.assert(
      fc.property(uriArb, (uri) => {
        const canonical = canonicalResourceUri(uri);
        if (canonical === undefined) return;
        for (let i = 0; i < canonical.length; i++) {
          const c = canonical.charCodeAt(i);
          expect(c > 0x20 && c < 0x7f && c !== 0x5c).toBe(true);
        }
        expect(canonical).not.toMatch(/%(2e|2f|5c|25|0[0-9a-f]|1[0-9a-f]|7f)/i);
        for (const segment of segmentsOf(canonical)) expect(['.', '..']).not.toContain(segment);
      }),
      { numRuns: 20_000 },
    );
  });

  it('writes a special host exactly as the WHATWG parser reads the client’s spelling', () => {
    const unit = fc.constantFrom(
      'a',
      'B',
      'x',
      'X',
      '0',
      '1',
      '9',
      '.',
      '-',
      'é',
      '%41',
      '%2d',
      'xn--',
      ':',
      '[',
      ']',
    );
    fc.assert(
      fc.property(
        fc.string({ unit, maxLength: 10 }),
        fc.constantFrom('http', 'https', 'ws', 'ftp', 'file'),
        (host, scheme) => {
          const uri = `${scheme}://${host}/p`;
          const canonical = canonicalResourceUri(uri);
          if (canonical === undefined) return;
          const original = URL.parse(uri);
          expect(original, 'accepted, so a WHATWG parser reads it').not.toBeNull();
          expect(new URL(canonical).host).toBe(original?.host);
          expect(new URL(canonical).href).toBe(canonical);
        },
      ),
      { numRuns: 20_000 },
    );
  });

  it('takes time linear in the length of the URI', () => {
    const long = `file:///public/${'a/'.repeat(200_000)}x`;
    const hostile = `file:///public/${'%41'.repeat(200_000)}`;
    const started = performance.now();
    expect(canonicalResourceUri(long)).toBe(long);
    expect(canonicalResourceUri(hostile)).toBe(`file:///public/${'A'.repeat(200_000)}`);
    expect(canonicalResourceUri(`file:///public/${'.'.repeat(200_000)}/..`)).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
