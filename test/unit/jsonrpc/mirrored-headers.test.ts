import type { IncomingHttpHeaders } from 'node:http';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Refusal, refusalBody } from '../../../src/errors.js';
import { checkMirroredHeaders, decodeHeaderValue } from '../../../src/jsonrpc/mirrored-headers.js';
import type { RpcMessage, RpcParams } from '../../../src/jsonrpc/parse.js';
import { PROTOCOL_VERSION_META } from '../../../src/jsonrpc/protocol-version.js';

const MODERN = '2026-07-28';

function meta(version: unknown = MODERN): RpcParams {
  return { _meta: { [PROTOCOL_VERSION_META]: version } };
}

function request(method: string, params: RpcParams | undefined, id: string | number = 1): RpcMessage {
  return params === undefined ? { kind: 'request', id, method } : { kind: 'request', id, method, params };
}

function headersFor(method: string, name?: string): IncomingHttpHeaders {
  return {
    'mcp-protocol-version': MODERN,
    'mcp-method': method,
    ...(name === undefined ? {} : { 'mcp-name': name }),
  };
}

function b64(text: string): string {
  return `=?base64?${Buffer.from(text, 'utf8').toString('base64')}?=`;
}

function refusalOf(result: Refusal | undefined): Refusal {
  if (result === undefined) throw new Error('expected a refusal');
  return result;
}

/** Checks a tools/call whose body names `bodyName` against an `Mcp-Name` header. */
function checkToolName(bodyName: string, header: string | undefined): Refusal | undefined {
  return checkMirroredHeaders(
    request('tools/call', { ...meta(), name: bodyName, arguments: {} }),
    headersFor('tools/call', header),
    MODERN,
  );
}

describe('checkMirroredHeaders: protocol version', () => {
  it('accepts a request whose headers and body agree', () => {
    expect(
      checkMirroredHeaders(request('tools/list', meta()), headersFor('tools/list'), MODERN),
    ).toBeUndefined();
  });

  it('refuses a request without params as invalid_params (-32602), answering its id', () => {
    const refusal = refusalOf(
      checkMirroredHeaders(request('tools/list', undefined, 'q'), headersFor('tools/list'), MODERN),
    );
    expect(refusal.reason).toBe('invalid_params');
    expect(refusal.ids).toEqual(['q']);
    expect(JSON.parse(refusalBody(refusal))).toMatchObject({ id: 'q', error: { code: -32602 } });
  });

  it.each([
    ['params without _meta', {}],
    ['_meta without the protocol version', { _meta: { other: 1 } }],
    ['_meta that is not an object', { _meta: 'x' }],
    ['_meta that is null', { _meta: null }],
    ['a numeric protocol version', meta(20260728)],
  ])('refuses a request with %s as invalid_params', (_, params) => {
    const result = checkMirroredHeaders(request('tools/list', params), headersFor('tools/list'), MODERN);
    expect(result?.reason).toBe('invalid_params');
  });

  it('checks the body version before any header, so a request missing both is invalid_params', () => {
    const result = checkMirroredHeaders(request('tools/call', { name: 'x' }), {}, MODERN);
    expect(result?.reason).toBe('invalid_params');
  });

  it('refuses a body version that differs from the header version as header_mismatch (-32020)', () => {
    const refusal = refusalOf(
      checkMirroredHeaders(request('tools/list', meta('2026-12-01'), 9), headersFor('tools/list'), MODERN),
    );
    expect(refusal.reason).toBe('header_mismatch');
    expect(refusal.ids).toEqual([9]);
    expect(JSON.parse(refusalBody(refusal))).toMatchObject({ id: 9, error: { code: -32020 } });
  });

  it('compares versions exactly, with no trimming or case folding', () => {
    expect(
      checkMirroredHeaders(request('ping', meta(`${MODERN} `)), headersFor('ping'), MODERN)?.reason,
    ).toBe('header_mismatch');
  });
});

describe('checkMirroredHeaders: Mcp-Method', () => {
  it('refuses a request without Mcp-Method', () => {
    const result = checkMirroredHeaders(
      request('tools/list', meta()),
      { 'mcp-protocol-version': MODERN },
      MODERN,
    );
    expect(result?.reason).toBe('header_mismatch');
  });

  it('refuses an Mcp-Method that names another method', () => {
    const result = checkMirroredHeaders(
      request('tools/call', { ...meta(), name: 'a' }),
      headersFor('tools/list'),
      MODERN,
    );
    expect(result?.reason).toBe('header_mismatch');
  });

  it('compares Mcp-Method case-sensitively', () => {
    const result = checkMirroredHeaders(request('tools/list', meta()), headersFor('Tools/List'), MODERN);
    expect(result?.reason).toBe('header_mismatch');
  });

  it('treats a repeated Mcp-Method as absent', () => {
    const headers = { ...headersFor('tools/list'), 'mcp-method': ['tools/list', 'tools/list'] };
    const result = checkMirroredHeaders(
      request('tools/list', meta()),
      headers as IncomingHttpHeaders,
      MODERN,
    );
    expect(result?.reason).toBe('header_mismatch');
  });

  it('accepts any method whose Mcp-Method matches', () => {
    fc.assert(
      fc.property(
        fc
          .string({ minLength: 1 })
          .filter((m) => !['tools/call', 'resources/read', 'prompts/get'].includes(m)),
        (method) => checkMirroredHeaders(request(method, meta()), headersFor(method), MODERN) === undefined,
      ),
      { examples: [['toString']] },
    );
  });

  it.each(['constructor', 'toString', 'hasOwnProperty', '__proto__'])(
    'does not require Mcp-Name for a method named %s (an Object.prototype member)',
    (method) => {
      expect(checkMirroredHeaders(request(method, meta()), headersFor(method), MODERN)).toBeUndefined();
    },
  );
});

describe('checkMirroredHeaders: Mcp-Name', () => {
  it.each([
    ['tools/call', 'name', 'read_file'],
    ['prompts/get', 'name', 'summarize'],
    ['resources/read', 'uri', 'file:///public/a.txt'],
  ])('accepts %s whose Mcp-Name equals params.%s', (method, field, value) => {
    const message = request(method, { ...meta(), [field]: value });
    expect(checkMirroredHeaders(message, headersFor(method, value), MODERN)).toBeUndefined();
  });

  it.each([
    ['tools/call', 'name'],
    ['prompts/get', 'name'],
    ['resources/read', 'uri'],
  ])('refuses %s without Mcp-Name', (method, field) => {
    const message = request(method, { ...meta(), [field]: 'x' });
    expect(checkMirroredHeaders(message, headersFor(method), MODERN)?.reason).toBe('header_mismatch');
  });

  it.each([
    ['tools/call', 'name'],
    ['prompts/get', 'name'],
    ['resources/read', 'uri'],
  ])('refuses %s whose Mcp-Name names something else', (method, field) => {
    const message = request(method, { ...meta(), [field]: 'allowed' });
    expect(checkMirroredHeaders(message, headersFor(method, 'other'), MODERN)?.reason).toBe(
      'header_mismatch',
    );
  });

  it('mirrors params.uri, not params.name, for resources/read', () => {
    const message = request('resources/read', { ...meta(), name: 'file:///a', uri: 'file:///b' });
    expect(checkMirroredHeaders(message, headersFor('resources/read', 'file:///a'), MODERN)?.reason).toBe(
      'header_mismatch',
    );
    expect(checkMirroredHeaders(message, headersFor('resources/read', 'file:///b'), MODERN)).toBeUndefined();
  });

  it('refuses a tools/call whose params.name is missing or not a string, whatever the header says', () => {
    for (const name of [undefined, 5, null, ['x']]) {
      const params = name === undefined ? meta() : { ...meta(), name };
      expect(
        checkMirroredHeaders(request('tools/call', params), headersFor('tools/call', 'x'), MODERN)?.reason,
      ).toBe('header_mismatch');
    }
  });

  it('does not require Mcp-Name for other methods', () => {
    expect(
      checkMirroredHeaders(request('tools/list', meta()), headersFor('tools/list'), MODERN),
    ).toBeUndefined();
  });

  it('compares the name case-sensitively', () => {
    expect(checkToolName('Read_File', 'read_file')?.reason).toBe('header_mismatch');
  });

  it('accepts the base64 form of a non-ASCII name ("Hello, 世界")', () => {
    expect(b64('Hello, 世界')).toBe('=?base64?SGVsbG8sIOS4lueVjA==?=');
    expect(checkToolName('Hello, 世界', '=?base64?SGVsbG8sIOS4lueVjA==?=')).toBeUndefined();
  });

  it('accepts the base64 form of a plain ASCII name', () => {
    expect(checkToolName('read_file', b64('read_file'))).toBeUndefined();
  });

  it('accepts the base64 form of a name with a newline, tab or surrounding spaces', () => {
    for (const name of ['line1\nline2', ' padded ', 'a\tb', '\u0000']) {
      expect(checkToolName(name, b64(name))).toBeUndefined();
    }
  });

  it('refuses the same non-ASCII name sent raw instead of encoded', () => {
    expect(checkToolName('héllo', 'héllo')?.reason).toBe('header_mismatch');
  });

  it('decodes a header that wears the sentinel, so a name that itself looks like the sentinel must be encoded', () => {
    const literal = '=?base64?SGk=?=';
    // Sent plain, it decodes to "Hi": not the tool the body names.
    expect(checkToolName(literal, literal)?.reason).toBe('header_mismatch');
    // Encoded, it decodes to the literal.
    expect(b64(literal)).toBe('=?base64?PT9iYXNlNjQ/U0drPT89?=');
    expect(checkToolName(literal, b64(literal))).toBeUndefined();
    // And a header that decodes to "Hi" cannot stand for a body naming the literal, nor the other way round.
    expect(checkToolName('Hi', b64(literal))?.reason).toBe('header_mismatch');
    expect(checkToolName('Hi', literal)).toBeUndefined();
  });

  it('reads the sentinel markers case-sensitively: an upper-case marker is a literal value', () => {
    expect(checkToolName('=?BASE64?SGk=?=', '=?BASE64?SGk=?=')).toBeUndefined();
    expect(checkToolName('Hi', '=?BASE64?SGk=?=')?.reason).toBe('header_mismatch');
  });

  it.each([
    ['without padding', '=?base64?SGk?=', 'Hi'],
    ['with non-zero padding bits', '=?base64?SGl=?=', 'Hi'],
    ['with too much padding', '=?base64?SGk==?=', 'Hi'],
    ['in the URL-safe alphabet', '=?base64?_w==?=', '\u00ff'],
  ])('refuses non-canonical base64 %s', (_, header, decodedByALenientDecoder) => {
    expect(checkToolName(decodedByALenientDecoder, header)?.reason).toBe('header_mismatch');
  });

  it('refuses base64 that is not UTF-8', () => {
    expect(decodeHeaderValue('=?base64?/w==?=')).toBeUndefined();
    expect(decodeHeaderValue(`=?base64?${Buffer.from([0xc3, 0x28]).toString('base64')}?=`)).toBeUndefined();
    expect(checkToolName('\ufffd', '=?base64?/w==?=')?.reason).toBe('header_mismatch');
  });

  it('keeps a byte-order mark instead of stripping it', () => {
    expect(decodeHeaderValue(b64('\ufeffx'))).toBe('\ufeffx');
    expect(checkToolName('x', b64('\ufeffx'))?.reason).toBe('header_mismatch');
  });

  it.each([
    ['NUL', 'a\u0000b'],
    ['line feed', 'a\nb'],
    ['carriage return', 'a\rb'],
    ['DEL', 'a\u007fb'],
    ['a Latin-1 byte', 'caf\u00e9'],
  ])('refuses a plain Mcp-Name containing %s, even when the body has the same text', (_, value) => {
    expect(decodeHeaderValue(value)).toBeUndefined();
    expect(checkToolName(value, value)?.reason).toBe('header_mismatch');
  });

  it('refuses a value that wears the sentinel but whose payload is not base64, rather than reading it as a literal', () => {
    // The spec: anything that starts with =?base64? and ends with ?= is encoded; a malformed one is refused.
    // A lenient upstream decoder would skip the bad characters and read a different name.
    for (const header of ['=?base64?%%%?=', '=?base64?SGk=!?=', '=?base64?SG k=?=', '=?base64?SGk=?=?=']) {
      expect(decodeHeaderValue(header)).toBeUndefined();
      expect(checkToolName(header, header)?.reason).toBe('header_mismatch');
    }
  });

  it('decodes the base64 form of any string to that string', () => {
    fc.assert(fc.property(fc.string({ unit: 'grapheme' }), (name) => decodeHeaderValue(b64(name)) === name));
  });

  it('accepts any field-safe plain name that does not wear the sentinel, as itself', () => {
    const fieldSafe = fc
      .string({ unit: fc.constantFrom(...' \t!#$%&()*+,-./0123456789:;<=>?@ABCXYZ[\\]^_`abcxyz{|}~"\'') })
      .filter((s) => !(s.startsWith('=?base64?') && s.endsWith('?=')));
    fc.assert(fc.property(fieldSafe, (name) => checkToolName(name, name) === undefined));
  });

  it('never accepts a header that decodes to a different name', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), fc.string({ unit: 'grapheme' }), (body, header) => {
        fc.pre(body !== header);
        return checkToolName(body, b64(header))?.reason === 'header_mismatch';
      }),
    );
  });
});

describe('checkMirroredHeaders: notifications and responses', () => {
  it('accepts a notification without any mirrored headers', () => {
    const message: RpcMessage = { kind: 'notification', method: 'notifications/cancelled', params: meta() };
    expect(checkMirroredHeaders(message, {}, MODERN)).toBeUndefined();
  });

  it('accepts a notification without params or _meta', () => {
    const message: RpcMessage = { kind: 'notification', method: 'notifications/initialized' };
    expect(checkMirroredHeaders(message, {}, MODERN)).toBeUndefined();
  });

  it('refuses a notification whose Mcp-Method, when sent, names another method, with a null id', () => {
    const message: RpcMessage = { kind: 'notification', method: 'notifications/cancelled' };
    const refusal = refusalOf(checkMirroredHeaders(message, { 'mcp-method': 'tools/call' }, MODERN));
    expect(refusal.reason).toBe('header_mismatch');
    expect(refusal.ids).toEqual([]);
    expect(JSON.parse(refusalBody(refusal))).toMatchObject({ id: null });
  });

  it('refuses a notification whose body version differs from the header version', () => {
    const message: RpcMessage = {
      kind: 'notification',
      method: 'notifications/x',
      params: meta('2027-01-01'),
    };
    expect(checkMirroredHeaders(message, {}, MODERN)?.reason).toBe('header_mismatch');
  });

  it('refuses a JSON-RPC response, which modern clients must not send, answering its id', () => {
    const refusal = refusalOf(checkMirroredHeaders({ kind: 'response', id: 4 }, headersFor('ping'), MODERN));
    expect(refusal.reason).toBe('invalid_request');
    expect(refusal.ids).toEqual([4]);
  });
});
