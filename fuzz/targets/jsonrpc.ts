import type { IncomingHttpHeaders } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { isRefusal } from '../../src/errors.js';
import { createJsonBuilder } from '../../src/jsonrpc/json-builder.js';
import { decodeHeaderValue } from '../../src/jsonrpc/mirrored-headers.js';
import { DEFAULT_MAX_JSON_DEPTH, parseJsonRpc } from '../../src/jsonrpc/parse.js';
import { parseMcpRequest } from '../../src/jsonrpc/request.js';
import { type BuiltJson, checkStrictJson, createStrictJsonScanner } from '../../src/jsonrpc/strict-json.js';
import {
  breakFraming,
  caseVariant,
  deepText,
  hugeNumber,
  type JsonNode,
  num,
  objects,
  replaceSlot,
  slots,
  str,
  style,
  word,
  write,
} from '../gen/json.js';
import { notificationOrAnswer, request, VERSIONS } from '../gen/mcp.js';
import { shown, type Target, type Verdict } from '../harness.js';
import { readJson } from '../oracles/json-reference.js';
import type { Prng } from '../prng.js';

/** The code under test, one line each: point these at a new signature when it lands. */
const parse = (text: string, allowBatch: boolean) => {
  // A large body is built as it arrives (json-builder.ts); a small one is parsed natively. Both must
  // give one answer: the built one is what the oracle checks, the native one must equal it.
  const fromChunks = parseJsonRpc(builtInPieces(text), { allowBatch });
  if (!isDeepStrictEqual(fromChunks, parseJsonRpc(text, { allowBatch })))
    throw new Error('the body built in pieces and the native parse disagree');
  return fromChunks;
};

/** `text` scanned and built in pieces cut at places that depend on its length. */
function builtInPieces(text: string): BuiltJson {
  const builder = createJsonBuilder();
  const scanner = createStrictJsonScanner({ maxDepth: DEFAULT_MAX_JSON_DEPTH, builder });
  const step = 1 + (text.length % 7) + Math.floor(text.length / 5);
  for (let at = 0; at < text.length; at += step) scanner.write(text.slice(at, at + step));
  const problem = scanner.end();
  return { problem, value: builder.value, forward: builder.forward };
}
const parseRequest = (text: string, headers: IncomingHttpHeaders, session?: string) =>
  parseMcpRequest(text, headers, session);
const strictProblem = (text: string) => checkStrictJson(text);

/** Nesting beyond this must be refused (`limits.maxJsonDepth` defaults to 64; twice that leaves room). */
const DEPTH_BOUND = 128;
/** Methods that only exist as requests: without an id they must be refused (issue 13, class 8). */
const REQUEST_ONLY = new Set([
  'tools/call',
  'resources/read',
  'prompts/get',
  'tools/list',
  'initialize',
  'completion/complete',
  'subscriptions/listen',
  'ping',
]);
const NAME_FIELD: ReadonlyMap<string, string> = new Map([
  ['tools/call', 'name'],
  ['resources/read', 'uri'],
  ['prompts/get', 'name'],
]);

interface JsonRpcInput {
  readonly text: string;
  readonly allowBatch: boolean;
  /** Generated valid and left unmutated: the parser must accept it. */
  readonly pristine: boolean;
  readonly headers: IncomingHttpHeaders;
  readonly session: string | undefined;
}

const HEADER_VERSIONS = [
  undefined,
  undefined,
  '',
  ...VERSIONS,
  '2026-07-28',
  'x',
  '2026-07-28 ',
  '2027-01-01',
];

function generate(rng: Prng): JsonRpcInput {
  const version = rng.pick(HEADER_VERSIONS);
  const bodyVersion = version !== undefined && version >= '2026' ? version : undefined;
  const batch = rng.chance(0.2);
  const firsts: { method?: string; name?: string }[] = [];
  let root: JsonNode;
  if (batch) {
    const items: JsonNode[] = [];
    const count = rng.chance(0.02) ? rng.range(250, 300) : rng.range(1, 5);
    for (let i = 0; i < count; i++) {
      const made = rng.chance(0.7) ? request(rng, bodyVersion) : notificationOrAnswer(rng, bodyVersion);
      // Distinct ids: a pristine batch must not repeat one (class 5 refuses that).
      if (made.node.t === 'obj')
        for (const entry of made.node.e) if (entry[0] === 'id') entry[1] = num(1000 + i);
      items.push(made.node);
      firsts.push(made);
    }
    root = { t: 'arr', v: items };
  } else {
    const made = rng.chance(0.75) ? request(rng, bodyVersion) : notificationOrAnswer(rng, bodyVersion);
    root = made.node;
    firsts.push(made);
  }
  const mutations = rng.chance(0.3) ? 0 : rng.range(1, 3);
  for (let m = 0; m < mutations; m++) mutate(root, rng);
  let text = write(root, rng, style(rng));
  if (mutations > 0 && rng.chance(0.25)) text = breakFraming(text, rng);
  const headers: IncomingHttpHeaders = {};
  if (version !== undefined) headers['mcp-protocol-version'] = version;
  const first = firsts[0];
  if (first?.method !== undefined && rng.chance(0.8))
    headers['mcp-method'] = rng.chance(0.85)
      ? first.method
      : rng.pick(['tools/call', 'ping', 'TOOLS/CALL', '']);
  if (first?.name !== undefined && rng.chance(0.8)) {
    const name = rng.chance(0.8) ? first.name : rng.pick(['admin_reset', 'echo', '']);
    headers['mcp-name'] = rng.chance(0.3) ? `=?base64?${Buffer.from(name).toString('base64')}?=` : name;
  }
  return {
    text,
    allowBatch: rng.chance(0.5),
    // More than 256 messages is refused by design (MAX_BATCH_MESSAGES).
    pristine: mutations === 0 && (root.t !== 'arr' || root.v.length <= 256),
    headers,
    session: rng.chance(0.2) ? rng.pick(VERSIONS) : undefined,
  };
}

/** One structural mutation of a valid message: what a hostile client tries. */
function mutate(root: JsonNode, rng: Prng): void {
  const all = slots(root);
  const slot = all.length > 0 ? rng.pick(all) : undefined;
  const objs = objects(root);
  const target = objs.length > 0 ? rng.pick(objs) : undefined;
  switch (rng.int(9)) {
    case 0:
      if (slot) replaceSlot(slot, { t: 'raw', v: deepText(rng) });
      break;
    case 1:
      if (slot) replaceSlot(slot, num(hugeNumber(rng)));
      break;
    case 2: {
      // The same key again (the writer may spell it with escapes).
      const entry = target && target.e.length > 0 ? rng.pick(target.e) : undefined;
      if (target && entry) target.e.push([entry[0], str(rng.pick(['admin_reset', 'x', entry[0]]))]);
      break;
    }
    case 3:
    case 4: {
      // A key equal after case folding: `Method`, `NAME`, `paramſ`, Kelvin K.
      const entry = target && target.e.length > 0 ? rng.pick(target.e) : undefined;
      if (target && entry) {
        const variant = caseVariant(entry[0], rng);
        if (variant !== entry[0])
          target.e.push([variant, str(rng.pick(['admin_reset', 'tools/call', word(rng)]))]);
      }
      break;
    }
    case 5:
      // A raw control character inside a string (invalid JSON) or an escaped one (valid).
      if (slot)
        replaceSlot(
          slot,
          rng.chance(0.5)
            ? { t: 'raw', v: `"a${String.fromCharCode(rng.range(0, 0x1f))}b"` }
            : str(`a${String.fromCharCode(rng.range(0, 0x1f))}\u007f`),
        );
      break;
    case 6: {
      // A request-only method without its id, or an id of the wrong kind.
      if (target) {
        const at = target.e.findIndex(([k]) => k === 'id');
        if (at !== -1 && rng.chance(0.5)) target.e.splice(at, 1);
        else if (at !== -1)
          target.e[at] = [
            'id',
            rng.pick<JsonNode>([
              { t: 'lit', v: 'null' },
              { t: 'lit', v: 'true' },
              num('1e400'),
              { t: 'obj', e: [] },
            ]),
          ];
      }
      break;
    }
    case 7: {
      // Batches: one id repeated.
      if (root.t === 'arr' && root.v.length > 1) {
        const ids = root.v.flatMap((n) => (n.t === 'obj' ? n.e.filter(([k]) => k === 'id') : []));
        const a = ids[0];
        const b = ids[1];
        if (a && b) b[1] = a[1];
      }
      break;
    }
    default:
      if (slot) replaceSlot(slot, str(word(rng)));
  }
}

function check(input: JsonRpcInput, clock: { time<T>(f: () => T): T }): Verdict {
  const { text } = input;
  const facts = readJson(text);
  let parsed: unknown;
  let jsonValid = true;
  try {
    parsed = JSON.parse(text);
  } catch {
    jsonValid = false;
  }
  if (jsonValid !== facts.valid)
    return `reference-disagrees: JSON.parse ${jsonValid}, reference ${facts.valid}`;

  if (facts.valid) {
    const problem = clock.time(() => strictProblem(text));
    if (facts.duplicateKey && problem === undefined) return 'strict-json-missed-duplicate-key';
    if (facts.changedNumber && problem === undefined) return 'strict-json-missed-changed-number';
  }

  // Re-serialized once, for both parsers' `forward`.
  let reserialized: string | undefined;
  const expectedForward = () => {
    reserialized ??= JSON.stringify(parsed);
    return reserialized;
  };
  const body = clock.time(() => parse(text, input.allowBatch));
  if (isRefusal(body)) {
    if (
      input.pristine &&
      !facts.foldedDuplicateKey &&
      !facts.changedNumber &&
      (input.allowBatch || !Array.isArray(parsed))
    )
      return `refused-valid-message: ${body.reason}`;
  } else {
    const accepted = acceptedProblem(facts, parsed, expectedForward, body.forward, body.messages);
    if (accepted) return accepted;
  }

  const result = clock.time(() => parseRequest(text, input.headers, input.session));
  if (!('refusal' in result)) {
    const accepted = acceptedProblem(
      facts,
      parsed,
      expectedForward,
      result.body.forward,
      result.body.messages,
    );
    if (accepted) return `parseMcpRequest: ${accepted}`;
    const version = input.headers['mcp-protocol-version'];
    // One version is a non-empty RFC 9110 token of at most 32 characters (an unknown one is forwarded).
    if (typeof version === 'string' && !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}$/.test(version))
      return 'accepted-malformed-version-header: an empty or malformed MCP-Protocol-Version must be refused (class 10)';
    const method = input.headers['mcp-method'];
    const name = input.headers['mcp-name'];
    for (const message of result.body.messages) {
      if (message.kind === 'response') continue;
      if (typeof method === 'string' && method !== message.method)
        return `mirrored-method-disagrees: Mcp-Method ${JSON.stringify(method)} accepted with body method ${JSON.stringify(message.method)} (version ${String(version)}, class 10)`;
      const field = NAME_FIELD.get(message.method);
      if (
        field !== undefined &&
        typeof name === 'string' &&
        decodeHeaderValue(name) !== message.params?.[field]
      )
        return `mirrored-name-disagrees: Mcp-Name ${JSON.stringify(name)} accepted with body ${field} ${JSON.stringify(message.params?.[field])} (version ${String(version)}, class 10)`;
    }
  }
  return undefined;
}

function acceptedProblem(
  facts: ReturnType<typeof readJson>,
  parsed: unknown,
  expectedForward: () => string,
  forward: string,
  messages: readonly { kind: string; method?: string; id?: unknown }[],
): Verdict {
  if (!facts.valid) return 'accepted-invalid-json';
  if (facts.duplicateKey) return 'accepted-duplicate-key';
  if (facts.foldedDuplicateKey) return 'accepted-case-folded-duplicate-key (class 4)';
  if (facts.changedNumber) return 'accepted-changed-number';
  if (facts.maxDepth > DEPTH_BOUND) return `accepted-deep-nesting: ${facts.maxDepth} levels (class 2)`;
  if (forward !== expectedForward()) return 'forward-differs-from-reserialized-input';
  const ids = new Set<string>();
  for (const message of messages) {
    if (message.kind === 'notification' && message.method !== undefined && REQUEST_ONLY.has(message.method))
      return `accepted-request-only-method-without-id: ${message.method} (class 8)`;
    if (message.kind === 'request') {
      const key = `${typeof message.id}:${String(message.id)}`;
      if (ids.has(key)) return `accepted-duplicate-batch-id: ${key} (class 5)`;
      ids.add(key);
    }
  }
  const items = Array.isArray(parsed) ? parsed.length : 1;
  if (messages.length !== items) return `message-count: ${messages.length} messages for ${items} items`;
  return undefined;
}

export const jsonRpcTarget: Target<JsonRpcInput> = {
  name: 'jsonrpc-parse',
  weight: 25,
  generate,
  check,
  describe: (input) =>
    `${shown(input.text)} allowBatch=${input.allowBatch} headers=${JSON.stringify(input.headers)} session=${String(input.session)}`,
};
