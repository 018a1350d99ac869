import type { IncomingHttpHeaders } from 'node:http';
import { checkMirroredHeaders, decodeHeaderValue } from '../../src/jsonrpc/mirrored-headers.js';
import type { RpcMessage } from '../../src/jsonrpc/parse.js';
import { caseVariant, word } from '../gen/json.js';
import { PROMPT_NAMES, PROTOCOL_META, RESOURCE_URIS, TOOL_NAMES, VERSIONS } from '../gen/mcp.js';
import { type Clock, shown, type Target, type Verdict } from '../harness.js';
import type { Prng } from '../prng.js';

/** The code under test, one line each. */
const decode = (value: string | undefined) => decodeHeaderValue(value);
const checkHeaders = (message: RpcMessage, headers: IncomingHttpHeaders, version: string) =>
  checkMirroredHeaders(message, headers, version);

const START = '=?base64?';
const END = '?=';
const NAME_FIELD: ReadonlyMap<string, 'name' | 'uri'> = new Map([
  ['tools/call', 'name'],
  ['resources/read', 'uri'],
  ['prompts/get', 'name'],
]);

interface HeaderInput {
  readonly value: string;
  readonly message: RpcMessage;
  readonly headers: IncomingHttpHeaders;
  readonly version: string;
}

/** Bytes that are not UTF-8 a strict decoder accepts: a stray byte, overlong forms, an encoded surrogate. */
const BAD_UTF8 = [[0xff], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xe2, 0x82], [0xf4, 0x90, 0x80, 0x80], [0x80]];

function b64(bytes: Buffer): string {
  return bytes.toString('base64');
}

/** A header value: plain, the sentinel form, or a damaged sentinel form. */
function headerValue(name: string, rng: Prng): string {
  const encoded = b64(Buffer.from(name, 'utf8'));
  switch (rng.int(12)) {
    case 0:
    case 1:
      return name;
    case 2:
    case 3:
      return `${START}${encoded}${END}`;
    case 4:
      return `${START}${encoded.replace(/=+$/, '')}${END}`;
    case 5:
      return `${START}${encoded}=${END}`;
    case 6: {
      // A non-canonical last character: the same bytes under a lenient decoder.
      const at = encoded.search(/=|$/) - 1;
      if (at < 0) return `${START}${END}`;
      const ch = encoded[at] as string;
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
      const next = alphabet[(alphabet.indexOf(ch) + rng.range(1, 3)) % 64] as string;
      return `${START}${encoded.slice(0, at)}${next}${encoded.slice(at + 1)}${END}`;
    }
    case 7:
      return `${START}${b64(Buffer.from([...Buffer.from(name), ...rng.pick(BAD_UTF8)]))}${END}`;
    case 8:
      return `${START}${encoded.replace(/\+/g, '-').replace(/\//g, '_')}${END}`;
    case 9: {
      const at = rng.int(encoded.length + 1);
      return `${START}${encoded.slice(0, at)}${rng.pick([' ', '\t', '\n', '=', '*', '?', '?='])}${encoded.slice(at)}${END}`;
    }
    case 10:
      return rng.pick([
        `=?BASE64?${encoded}?=`,
        `${START}${START}${encoded}${END}${END}`,
        `${START}${END}`,
        '=?base64?=',
        `${START}`,
        `${START}\ufeff${encoded}${END}`,
        `${START}${b64(Buffer.from(`\ufeff${name}`))}${END}`,
      ]);
    default:
      return `${name}${String.fromCharCode(rng.range(0, 0x1f))}`;
  }
}

function generate(rng: Prng): HeaderInput {
  const method = rng.pick([
    'tools/call',
    'resources/read',
    'prompts/get',
    'tools/list',
    'notifications/initialized',
  ]);
  const field = NAME_FIELD.get(method);
  const name =
    field === 'uri'
      ? rng.pick(RESOURCE_URIS)
      : rng.chance(0.7)
        ? rng.pick(method === 'prompts/get' ? PROMPT_NAMES : TOOL_NAMES)
        : word(rng);
  const version = rng.pick(['2026-07-28', '2026-07-28', '2027-01-01', ...VERSIONS]);
  const meta = rng.chance(0.9)
    ? { [PROTOCOL_META]: rng.chance(0.9) ? version : rng.pick(VERSIONS) }
    : undefined;
  const params: Record<string, unknown> = {};
  if (field !== undefined && rng.chance(0.95)) params[field] = rng.chance(0.9) ? name : 42;
  if (meta !== undefined) params._meta = meta;
  const kind = method.startsWith('notifications/')
    ? 'notification'
    : rng.chance(0.95)
      ? 'request'
      : 'response';
  const message: RpcMessage =
    kind === 'request'
      ? { kind, id: rng.range(0, 9), method, params }
      : kind === 'notification'
        ? { kind, method, params }
        : { kind, id: 1 };
  const value = headerValue(rng.chance(0.9) ? name : caseVariant(name, rng), rng);
  const headers: IncomingHttpHeaders = { 'mcp-protocol-version': version };
  if (rng.chance(0.9)) headers['mcp-method'] = rng.chance(0.9) ? method : caseVariant(method, rng);
  if (rng.chance(0.9)) headers['mcp-name'] = value;
  return { value, message, headers, version };
}

function check(input: HeaderInput, clock: Clock): Verdict {
  const decoded = clock.time(() => decode(input.value));
  const { value } = input;
  if (decoded !== undefined) {
    if (value.startsWith(START) && value.endsWith(END) && value.length >= START.length + END.length) {
      const again = `${START}${Buffer.from(decoded, 'utf8').toString('base64')}${END}`;
      if (again !== value)
        return `base64-does-not-round-trip: decoded ${shown(decoded, 120)}, re-encoded ${again}`;
    } else if (decoded !== value) return `plain-value-changed: ${shown(decoded, 120)}`;
    for (let i = 0; i < value.length; i++) {
      const c = value.charCodeAt(i);
      if (c !== 0x09 && (c < 0x20 || c > 0x7e)) return 'accepted-a-value-that-is-not-field-safe';
    }
  }
  const refusal = clock.time(() => checkHeaders(input.message, input.headers, input.version));
  if (refusal === undefined) {
    const { message, headers } = input;
    if (message.kind === 'response') return 'accepted-a-response-on-the-modern-protocol';
    const meta = message.params?._meta as Record<string, unknown> | undefined;
    if (message.kind === 'request' && meta?.[PROTOCOL_META] !== input.version)
      return 'accepted-a-body-version-other-than-the-header';
    if (message.kind === 'request' && headers['mcp-method'] !== message.method)
      return 'accepted-a-request-whose-Mcp-Method-differs';
    if (headers['mcp-method'] !== undefined && headers['mcp-method'] !== message.method)
      return 'accepted-a-notification-whose-Mcp-Method-differs';
    const field = NAME_FIELD.get(message.method);
    if (field !== undefined) {
      const header = headers['mcp-name'];
      const sent = typeof header === 'string' ? decode(header) : undefined;
      if (sent === undefined || sent !== message.params?.[field])
        return `accepted-an-Mcp-Name-that-differs-from-the-body: ${shown(String(header), 120)}`;
    }
  }
  return undefined;
}

export const mirroredHeadersTarget: Target<HeaderInput> = {
  name: 'mirrored-headers',
  weight: 25,
  generate,
  check,
  describe: (input) =>
    `value=${shown(input.value)} message=${shown(JSON.stringify(input.message), 300)} headers=${shown(JSON.stringify(input.headers), 300)}`,
};
