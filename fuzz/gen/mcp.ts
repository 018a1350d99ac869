import type { Prng } from '../prng.js';
import { arr, bool, type JsonNode, lit, num, obj, str, value, word } from './json.js';

export const PROTOCOL_META = 'io.modelcontextprotocol/protocolVersion';
export const VERSIONS = ['2024-11-05', '2025-03-26', '2025-06-18', '2025-11-25', '2026-07-28'];
export const TOOL_NAMES = ['echo', 'read_file', 'admin_reset', 'write_file', 'search', 'admin/x', 'Echo'];
export const PROMPT_NAMES = ['greet', 'summarize', 'admin_prompt'];
export const RESOURCE_URIS = [
  'file:///public/a.txt',
  'file:///public/docs/b.md',
  'file:///secret/a',
  'file:///public/secret/k',
  'https://docs.example.com/api/v1',
  'https://internal.example.com/x',
  'notes://team/n1',
  'notes://team/sub/n2',
  'file:///public/.\t./secret/a',
  'FILE:///secret/a',
  'file:/secret/a',
  'file://localhost/secret/a',
];

export function id(rng: Prng): JsonNode {
  switch (rng.int(8)) {
    case 0:
      return str(word(rng));
    case 1:
      return num(rng.pick(['0', '-1', '1.5', '9007199254740991', '1e2']));
    default:
      return num(rng.range(0, 50));
  }
}

function meta(rng: Prng, version: string | undefined): [string, JsonNode][] {
  if (version === undefined) return rng.chance(0.1) ? [['_meta', obj({ progressToken: num(1) })]] : [];
  return [['_meta', obj({ [PROTOCOL_META]: str(version) })]];
}

function withMeta(params: Record<string, JsonNode>, rng: Prng, version: string | undefined): JsonNode {
  return { t: 'obj', e: [...Object.entries(params), ...meta(rng, version)] };
}

/** A valid client → server JSON-RPC request (with `_meta` naming `version` when one is given). */
export function request(rng: Prng, version?: string): { node: JsonNode; method: string; name?: string } {
  const method = rng.pick([
    'tools/call',
    'tools/call',
    'resources/read',
    'prompts/get',
    'tools/list',
    'resources/list',
    'initialize',
    'ping',
    'completion/complete',
    'subscriptions/listen',
    'logging/setLevel',
  ]);
  let params: JsonNode | undefined;
  let name: string | undefined;
  switch (method) {
    case 'tools/call':
      name = rng.pick(TOOL_NAMES);
      params = withMeta({ name: str(name), arguments: args(rng) }, rng, version);
      break;
    case 'prompts/get':
      name = rng.pick(PROMPT_NAMES);
      params = withMeta({ name: str(name), arguments: obj({ topic: str(word(rng)) }) }, rng, version);
      break;
    case 'resources/read':
      name = rng.pick(RESOURCE_URIS);
      params = withMeta({ uri: str(name) }, rng, version);
      break;
    case 'initialize':
      params = withMeta(
        {
          protocolVersion: str(version ?? rng.pick(VERSIONS)),
          capabilities: obj({}),
          clientInfo: obj({ name: str('fuzz'), version: str('1.0.0') }),
        },
        rng,
        version,
      );
      break;
    case 'completion/complete':
      params = withMeta(
        {
          ref: rng.chance(0.5)
            ? obj({ type: str('ref/resource'), uri: str(rng.pick(RESOURCE_URIS)) })
            : obj({ type: str('ref/prompt'), name: str(rng.pick(PROMPT_NAMES)) }),
          argument: obj({ name: str('a'), value: str(word(rng)) }),
        },
        rng,
        version,
      );
      break;
    case 'subscriptions/listen':
      params = withMeta(
        { notifications: obj({ resourceSubscriptions: arr([str(rng.pick(RESOURCE_URIS))]) }) },
        rng,
        version,
      );
      break;
    case 'logging/setLevel':
      params = withMeta({ level: str('info') }, rng, version);
      break;
    default:
      params = version === undefined && rng.chance(0.5) ? undefined : withMeta({}, rng, version);
  }
  const entries: [string, JsonNode][] = [
    ['jsonrpc', str('2.0')],
    ['id', id(rng)],
    ['method', str(method)],
  ];
  if (params !== undefined) entries.push(['params', params]);
  shuffle(entries, rng);
  return { node: { t: 'obj', e: entries }, method, ...(name === undefined ? {} : { name }) };
}

/** A valid notification or a client's answer to a server request. */
export function notificationOrAnswer(rng: Prng, version?: string): { node: JsonNode; method?: string } {
  if (rng.chance(0.7)) {
    const method = rng.pick([
      'notifications/initialized',
      'notifications/cancelled',
      'notifications/progress',
    ]);
    const entries: [string, JsonNode][] = [
      ['jsonrpc', str('2.0')],
      ['method', str(method)],
      ['params', withMeta({ requestId: num(1) }, rng, version)],
    ];
    shuffle(entries, rng);
    return { node: { t: 'obj', e: entries }, method };
  }
  return { node: obj({ jsonrpc: str('2.0'), id: id(rng), result: obj({}) }) };
}

function args(rng: Prng): JsonNode {
  if (rng.chance(0.3)) return obj({ text: str(word(rng)) });
  const made = value(rng, 4);
  return made.t === 'obj' ? made : obj({ path: str('/tmp/x'), n: num(rng.range(0, 9)) });
}

export function shuffle<T>(items: T[], rng: Prng): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const a = items[i] as T;
    items[i] = items[j] as T;
    items[j] = a;
  }
}

/** A list item as an upstream lists it: a tool, a resource, a template or a prompt. */
function item(field: string, rng: Prng): JsonNode {
  switch (field) {
    case 'tools':
      return obj({
        name: str(rng.chance(0.8) ? rng.pick(TOOL_NAMES) : word(rng)),
        description: str(word(rng)),
        inputSchema: obj({ type: str('object') }),
      });
    case 'resources':
      return obj({ uri: str(rng.chance(0.8) ? rng.pick(RESOURCE_URIS) : word(rng)), name: str(word(rng)) });
    case 'resourceTemplates':
      return obj({
        uriTemplate: str(rng.pick(['file:///public/{name}', 'file:///secret/{name}', 'notes://team/{id}'])),
        name: str('t'),
      });
    default:
      return obj({ name: str(rng.chance(0.8) ? rng.pick(PROMPT_NAMES) : word(rng)) });
  }
}

export const LIST_FIELDS: Readonly<Record<string, string>> = {
  'tools/list': 'tools',
  'resources/list': 'resources',
  'resources/templates/list': 'resourceTemplates',
  'prompts/list': 'prompts',
};

/** A valid server answer: a list result, a tool result, or a JSON-RPC error. */
export function answer(rng: Prng, answerId: JsonNode): JsonNode {
  const r = rng.int(10);
  let body: [string, JsonNode];
  if (r < 4) {
    const field = rng.pick(Object.values(LIST_FIELDS));
    const items: JsonNode[] = [];
    for (let i = rng.size(12); i > 0; i--) items.push(item(field, rng));
    const result: [string, JsonNode][] = [[field, arr(items)]];
    if (rng.chance(0.3)) result.push(['nextCursor', str('c1')]);
    if (rng.chance(0.2)) result.push(['cacheScope', str('public')]);
    body = ['result', { t: 'obj', e: result }];
  } else if (r < 7) {
    const result: [string, JsonNode][] = [
      ['content', arr([obj({ type: str('text'), text: str(word(rng)) })])],
    ];
    if (rng.chance(0.5)) result.push(['isError', rng.chance(0.7) ? bool(rng.chance(0.5)) : value(rng, 1)]);
    if (rng.chance(0.2)) result.push(['structuredContent', value(rng, 3)]);
    shuffle(result, rng);
    body = ['result', { t: 'obj', e: result }];
  } else if (r < 8) {
    body = ['result', rng.chance(0.5) ? obj({}) : value(rng, 2)];
  } else {
    const error: [string, JsonNode][] = [
      ['code', num(rng.pick(['-32600', '-32601', '-32602', '-32603', '-32000', '-31091', '1', '0', '-1.0']))],
      ['message', str(word(rng))],
    ];
    if (rng.chance(0.3)) error.push(['data', value(rng, 2)]);
    shuffle(error, rng);
    body = ['error', { t: 'obj', e: error }];
  }
  const entries: [string, JsonNode][] = [['jsonrpc', str('2.0')], ['id', answerId], body];
  shuffle(entries, rng);
  return { t: 'obj', e: entries };
}

export const NULL = lit('null');
