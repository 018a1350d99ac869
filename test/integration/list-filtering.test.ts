/**
 * `*\/list` results filtered to what the caller may use (DESIGN.md step 9): through the SDK v2
 * client (modern, JSON answers) and the SDK v1 client against an SSE upstream (legacy), each
 * API-key identity sees exactly the items its scopes allow, each kept item unchanged; and against
 * a recording upstream written here, cursors and every other result field survive, in JSON and SSE
 * answers alike, and nothing else in the stream is touched.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import {
  connectV1Client,
  connectV2Client,
  type Peer,
  startV1Server,
  startV2Server,
  type V1Peer,
} from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

const KEYS = {
  reader: newApiKey('pk_test_'),
  writer: newApiKey('pk_test_'),
  prompter: newApiKey('pk_test_'),
  admin: newApiKey('pk_test_'),
  nobody: newApiKey('pk_test_'),
} as const;
type Caller = keyof typeof KEYS;
const CALLERS = Object.keys(KEYS) as Caller[];
const SCOPES: Record<Caller, string> = {
  reader: '[notes:read]',
  writer: '[notes:read, notes:write]',
  prompter: '[notes:prompt]',
  admin: '[notes:read, notes:write, notes:prompt, notes:admin]',
  nobody: '[]',
};

/** `slow_progress` is unlisted: under `default: deny` nobody sees it, whatever they hold. */
const TABLES = `    tools:
      echo: notes:read
      add: [notes:read, notes:write]
    resources: { "fixture://**": notes:read }
    prompts: { explain: notes:prompt }
`;

/** What each caller may see of the fixtures' tools, resources and prompts on a `default: deny` route. */
const VISIBLE: Record<Caller, { tools: string[]; resources: string[]; prompts: string[] }> = {
  reader: { tools: ['echo'], resources: ['fixture://greeting'], prompts: [] },
  writer: { tools: ['echo', 'add'], resources: ['fixture://greeting'], prompts: [] },
  prompter: { tools: [], resources: [], prompts: ['explain'] },
  admin: { tools: ['echo', 'add'], resources: ['fixture://greeting'], prompts: ['explain'] },
  nobody: { tools: [], resources: [], prompts: [] },
};

let v2: Peer;
let v1: V1Peer;
let raw: RawUpstream;
let gateway: TestGateway;

beforeAll(async () => {
  [v2, v1, raw] = await Promise.all([
    startV2Server({ response: 'json' }),
    startV1Server({ response: 'sse' }),
    startRawUpstream(),
  ]);
  const route = (path: string, upstream: string, tables: string) => `  - route: ${path}
    resource: http://127.0.0.1${path}
    upstream: ${upstream}
    authentication: { methods: [apiKey] }
${tables}`;
  gateway = await startTestGateway({
    policy: `authFailures: { limit: 1000/second }
identities:
  apiKeys:
${CALLERS.map((id) => `    - { id: ${id}, hash: "${KEYS[id].hash}", scopes: ${SCOPES[id]} }`).join('\n')}
routes:
${route('/v2/mcp', v2.url, TABLES)}
${route('/v1/mcp', v1.url, TABLES)}
${route('/open/mcp', v2.url, '    default: allow\n    tools: { add: [notes:read, notes:write] }\n')}
${route('/raw/mcp', raw.url, TABLES)}`,
  });
}, 30_000);
afterAll(async () => {
  await gateway?.close();
  await Promise.all([v2?.close(), v1?.close(), raw?.close()]);
});

const auth = (as: Caller) => ({ headers: { Authorization: `Bearer ${KEYS[as].key}` } });

/** Keeps the items of `list` whose `key` is in `names`, in the upstream's order. */
function only<T extends Record<string, unknown>>(list: T[], key: string, names: readonly string[]): T[] {
  return list.filter((item) => names.includes(item[key] as string));
}

describe('through the SDK v2 client (modern, JSON answers)', () => {
  let direct: {
    tools: Awaited<ReturnType<Awaited<ReturnType<typeof connectV2Client>>['listTools']>>;
    resources: Awaited<ReturnType<Awaited<ReturnType<typeof connectV2Client>>['listResources']>>;
    prompts: Awaited<ReturnType<Awaited<ReturnType<typeof connectV2Client>>['listPrompts']>>;
  };
  beforeAll(async () => {
    const client = await connectV2Client(v2.url);
    try {
      direct = {
        tools: await client.listTools(),
        resources: await client.listResources(),
        prompts: await client.listPrompts(),
      };
    } finally {
      await client.close();
    }
    // The fixture serves every name the expectations mention.
    expect(direct.tools.tools.map((t) => t.name)).toEqual(['echo', 'add', 'fail', 'slow_progress']);
  });

  it.each(CALLERS)('shows %s only the tools, resources and prompts its scopes allow', async (as) => {
    const client = await connectV2Client(`${gateway.url}/v2/mcp`, auth(as));
    try {
      const tools = await client.listTools();
      const resources = await client.listResources();
      const prompts = await client.listPrompts();
      const visible = VISIBLE[as];
      // Everything else in each result, and every kept item, exactly as the upstream sent it.
      expect(tools).toEqual({ ...direct.tools, tools: only(direct.tools.tools, 'name', visible.tools) });
      expect(resources).toEqual({
        ...direct.resources,
        resources: only(direct.resources.resources, 'uri', visible.resources),
      });
      expect(prompts).toEqual({
        ...direct.prompts,
        prompts: only(direct.prompts.prompts, 'name', visible.prompts),
      });
    } finally {
      await client.close();
    }
  });

  it('shows what the policy does not list under default: allow, and hides listed entries the caller may not use', async () => {
    const client = await connectV2Client(`${gateway.url}/open/mcp`, auth('reader'));
    try {
      expect((await client.listTools()).tools.map((t) => t.name)).toEqual(['echo', 'fail', 'slow_progress']);
      expect((await client.listPrompts()).prompts.map((p) => p.name)).toEqual(['explain']);
      expect((await client.listResources()).resources.map((r) => r.uri)).toEqual(['fixture://greeting']);
    } finally {
      await client.close();
    }
  });
});

describe('through the SDK v1 client (legacy, SSE answers)', () => {
  let direct: {
    tools: Awaited<ReturnType<Awaited<ReturnType<typeof connectV1Client>>['listTools']>>;
    resources: Awaited<ReturnType<Awaited<ReturnType<typeof connectV1Client>>['listResources']>>;
    prompts: Awaited<ReturnType<Awaited<ReturnType<typeof connectV1Client>>['listPrompts']>>;
  };
  beforeAll(async () => {
    const client = await connectV1Client(v1.url);
    try {
      direct = {
        tools: await client.listTools(),
        resources: await client.listResources(),
        prompts: await client.listPrompts(),
      };
    } finally {
      await client.close();
    }
    expect(direct.tools.tools.map((t) => t.name)).toEqual(['echo', 'add', 'slow_progress']);
  });

  it.each(CALLERS)('shows %s only the tools, resources and prompts its scopes allow', async (as) => {
    const client = await connectV1Client(`${gateway.url}/v1/mcp`, auth(as));
    try {
      const tools = await client.listTools();
      const resources = await client.listResources();
      const prompts = await client.listPrompts();
      const visible = VISIBLE[as];
      expect(tools).toEqual({ ...direct.tools, tools: only(direct.tools.tools, 'name', visible.tools) });
      expect(resources).toEqual({
        ...direct.resources,
        resources: only(direct.resources.resources, 'uri', visible.resources),
      });
      expect(prompts).toEqual({
        ...direct.prompts,
        prompts: only(direct.prompts.prompts, 'name', visible.prompts),
      });
    } finally {
      await client.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A recording upstream whose list results carry cursors and extra fields
// ---------------------------------------------------------------------------------------------

interface RawUpstream {
  readonly url: string;
  /** Every request body received, as text. */
  readonly bodies: string[];
  close(): Promise<void>;
}

const TOOL_ITEMS = [
  {
    name: 'echo',
    title: 'Echo',
    description: 'Echoes text back',
    inputSchema: { type: 'object', properties: { text: { type: 'string' } } },
    annotations: { readOnlyHint: true },
    _meta: { 'example.com/owner': 'team-a' },
  },
  { name: 'add', inputSchema: { type: 'object' } },
  { name: 'slow_progress', inputSchema: { type: 'object' } },
  { name: 42, inputSchema: { type: 'object' } },
  'echo',
];
const LIST_RESULTS: Record<string, Record<string, unknown>> = {
  'tools/list': {
    tools: TOOL_ITEMS,
    nextCursor: 'tools-page-2',
    _meta: { 'example.com/generation': 7 },
    ttl: 60,
    cacheScope: 'public',
  },
  'resources/list': {
    resources: [
      { uri: 'fixture://greeting', name: 'greeting', mimeType: 'text/plain' },
      { uri: 'secret://plans', name: 'plans' },
      { uri: 'fixture://a/../../secret', name: 'sneaky' },
      { uri: 'fixture://a%2F..%2Fsecret', name: 'encoded' },
    ],
    nextCursor: 'resources-page-2',
  },
  'resources/templates/list': {
    resourceTemplates: [
      { uriTemplate: 'fixture://{name}', name: 'any fixture' },
      { uriTemplate: 'secret://{name}', name: 'any secret' },
    ],
    nextCursor: 'templates-page-2',
  },
  'prompts/list': {
    prompts: [{ name: 'explain', arguments: [{ name: 'topic', required: true }] }, { name: 'secret' }],
    nextCursor: 'prompts-page-2',
  },
};

/** A notification the SSE answer carries before its result: must pass through byte for byte. */
const PROGRESS_EVENT =
  'event: message\nid: ev-1\ndata: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"p","progress":1,"tools":[{"name":"add"}]}}\n\n';

function answerFor(message: { id?: unknown; method?: unknown; params?: { cursor?: unknown } }): unknown {
  const result = typeof message.method === 'string' ? LIST_RESULTS[message.method] : undefined;
  if (result === undefined || message.params?.cursor === 'broken')
    return { jsonrpc: '2.0', id: message.id, error: { code: -32602, message: 'Invalid cursor' } };
  return { jsonrpc: '2.0', id: message.id, result };
}

async function startRawUpstream(): Promise<RawUpstream> {
  const bodies: string[] = [];
  const server: Server = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      bodies.push(text);
      const parsed = JSON.parse(text) as unknown;
      if (Array.isArray(parsed)) {
        const answer = JSON.stringify(parsed.map(answerFor));
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(answer);
        return;
      }
      const message = parsed as { id?: unknown };
      const answer = JSON.stringify(answerFor(message));
      if (typeof message.id === 'string' && message.id.startsWith('sse')) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write(PROGRESS_EVENT);
        // The result in two writes that split its event, as a real stream may.
        const event = `event: message\nid: ev-2\ndata: ${answer}\n\n`;
        res.write(event.slice(0, 20));
        setTimeout(() => res.end(event.slice(20)), 10);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8' }).end(answer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/mcp`,
    bodies,
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function listRequest(
  as: Caller,
  method: string,
  id: string | number,
  params?: Record<string, unknown>,
  version = '2025-11-25',
): Promise<Response> {
  return fetch(`${gateway.url}/raw/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${KEYS[as].key}`,
      'mcp-protocol-version': version,
    },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) }),
  });
}

const FILTERED_TOOLS = {
  tools: [TOOL_ITEMS[0]],
  nextCursor: 'tools-page-2',
  _meta: { 'example.com/generation': 7 },
  ttl: 60,
  // The list now depends on who asked: a shared cache must not serve it to anyone else.
  cacheScope: 'private',
};

describe('cursors and other fields, against a recording upstream', () => {
  it('keeps the cursor and every other field of a JSON answer, dropping items the caller may not use', async () => {
    const answer = await listRequest('reader', 'tools/list', 11, { cursor: 'tools-page-1' });
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('application/json; charset=utf-8');
    const text = await answer.text();
    expect(answer.headers.get('content-length')).toBe(String(Buffer.byteLength(text)));
    expect(JSON.parse(text)).toEqual({ jsonrpc: '2.0', id: 11, result: FILTERED_TOOLS });
    // The request went upstream as sent: the cursor is the upstream's to read.
    expect(JSON.parse(raw.bodies.at(-1)!)).toMatchObject({ params: { cursor: 'tools-page-1' } });
  });

  it('rewrites only the result event of an SSE answer, keeping its id and every other event', async () => {
    const answer = await listRequest('reader', 'tools/list', 'sse-1');
    expect(answer.status).toBe(200);
    expect(answer.headers.get('content-type')).toBe('text/event-stream');
    const text = await answer.text();
    expect(text.startsWith(PROGRESS_EVENT)).toBe(true);
    const rest = text.slice(PROGRESS_EVENT.length);
    const lines = rest.trimEnd().split('\n');
    expect(lines.filter((line) => !line.startsWith('data:'))).toEqual(['event: message', 'id: ev-2']);
    const data = lines
      .filter((line) => line.startsWith('data:'))
      .map((line) => line.slice(5).trim())
      .join('\n');
    expect(JSON.parse(data)).toEqual({ jsonrpc: '2.0', id: 'sse-1', result: FILTERED_TOOLS });
  });

  it.each([
    ['resources/list', 'reader', 'resources', ['fixture://greeting']],
    ['resources/list', 'prompter', 'resources', []],
    ['resources/templates/list', 'reader', 'resourceTemplates', ['fixture://{name}']],
    ['prompts/list', 'prompter', 'prompts', ['explain']],
    ['prompts/list', 'writer', 'prompts', []],
    ['tools/list', 'writer', 'tools', ['echo', 'add']],
    ['tools/list', 'nobody', 'tools', []],
  ] as const)('filters %s for %s, keeping its cursor', async (method, as, field, names) => {
    for (const id of [21, 'sse-21']) {
      const answer = await listRequest(as, method, id);
      expect(answer.status).toBe(200);
      const text = await answer.text();
      const data = id === 21 ? text : (/data: (.*)\n\n$/.exec(text)?.[1] ?? '');
      const { result } = JSON.parse(data) as { result: Record<string, unknown> };
      const full = LIST_RESULTS[method]!;
      const key = field === 'resources' ? 'uri' : field === 'resourceTemplates' ? 'uriTemplate' : 'name';
      const items = (full[field] as Record<string, unknown>[]).filter(
        (item) => typeof item === 'object' && (names as readonly string[]).includes(item[key] as string),
      );
      const expected = { ...full, [field]: items };
      if (expected.cacheScope === 'public') expected.cacheScope = 'private';
      expect(result, String(id)).toEqual(expected);
    }
  });

  it('passes an error answer to a list request through unchanged', async () => {
    const answer = await listRequest('reader', 'tools/list', 31, { cursor: 'broken' });
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({
      jsonrpc: '2.0',
      id: 31,
      error: { code: -32602, message: 'Invalid cursor' },
    });
  });

  it('never relays an unfiltered list inside a 2025-03-26 batch', async () => {
    const answer = await fetch(`${gateway.url}/raw/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${KEYS.reader.key}`,
        'mcp-protocol-version': '2025-03-26',
      },
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: 'tools/list' },
        { jsonrpc: '2.0', id: 2, method: 'prompts/list' },
      ]),
    });
    // Refused, or answered with each list filtered: either way the reader sees no more than alone.
    const body = (await answer.json()) as { id: number; result?: Record<string, unknown[]> }[];
    const tools = body.find((m) => m.id === 1)?.result?.tools ?? [];
    const prompts = body.find((m) => m.id === 2)?.result?.prompts ?? [];
    expect(tools).toEqual(answer.status === 200 ? [TOOL_ITEMS[0]] : []);
    expect(prompts).toEqual([]);
  });
});
