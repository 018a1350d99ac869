/**
 * `validateResults` (issue 18): on a pinned route, a tool result's `structuredContent` is held to
 * the pinned `outputSchema`, so a compromised server cannot hand the model unexpected data
 * silently. The servers are SDK v1 low-level servers (which, unlike `McpServer`, send whatever
 * their handler returns), answering JSON and SSE; the client is the SDK v1 client and raw
 * requests through a real gateway. A result that breaks the pinned schema reaches the client as
 * an `isError` tool result naming paths and keywords — never the server's values — and the audit
 * records `decision: error`, `reason: invalid_result`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pinsOf, serializePins } from '../../src/integrity/pins.js';
import { connectV1Client, type Peer, startCatalogServer } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { firstText } from '../support/inspect.js';

const FORECAST = {
  name: 'forecast',
  description: 'Tomorrow’s temperature.',
  inputSchema: { type: 'object' },
  outputSchema: {
    type: 'object',
    properties: { tempC: { type: 'number' } },
    required: ['tempC'],
    additionalProperties: false,
  },
};
const PLAIN = { name: 'plain', description: 'Says anything.', inputSchema: { type: 'object' } };
const DEFINITIONS: Record<string, Record<string, unknown>> = { forecast: FORECAST, plain: PLAIN };
const text = (t: string) => [{ type: 'text', text: t }];
/** What every tool answers now: the tests change it. */
let answer: Record<string, unknown> = {};
const GOOD = { content: text('21 °C'), structuredContent: { tempC: 21 } };

let json: Peer;
let sse: Peer;
let gateway: TestGateway;
let dir: string;

beforeAll(async () => {
  const options = {
    tools: ['forecast', 'plain'],
    pageSize: 10,
    definition: (name: string) => DEFINITIONS[name] as Record<string, unknown>,
    result: () => answer,
  };
  json = await startCatalogServer({ ...options, name: 'json' });
  sse = await startCatalogServer({ ...options, name: 'sse', sse: true });
  dir = mkdtempSync(join(tmpdir(), 'portcullis-pin-results-'));
  const pinFile = join(dir, 'pins.json');
  writeFileSync(
    pinFile,
    serializePins(
      '/json',
      pinsOf(
        Object.values(DEFINITIONS).map((definition) => ({
          kind: 'tool' as const,
          server: undefined,
          definition,
        })),
        new Set(),
      ).pins,
    ),
  );
  const route = (path: string, upstream: string, extra = '') => `  - route: ${path}
    resource: http://127.0.0.1${path}
    upstream: "${upstream}"
    authentication: { methods: [anonymous] }
    default: allow
    pins: ${JSON.stringify(pinFile)}
${extra}`;
  gateway = await startTestGateway({
    policy: `identities: { anonymous: { scopes: [] } }
routes:
${route('/json', json.url, '    validateResults: true\n')}${route('/sse', sse.url, '    validateResults: true\n')}${route('/off', json.url)}`,
  });
});

afterAll(async () => {
  await gateway?.close();
  await json?.close();
  await sse?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A tools/call through `route` with the SDK v1 client; its result. */
async function call(route: string, name = 'forecast') {
  const client = await connectV1Client(`${gateway.url}${route}`);
  try {
    return (await client.callTool({ name, arguments: {} })) as Record<string, unknown>;
  } finally {
    await client.close();
  }
}

describe('results held to the pinned outputSchema (validateResults)', () => {
  it('relays a result that matches, over JSON and SSE', async () => {
    answer = GOOD;
    for (const route of ['/json', '/sse']) {
      const result = await call(route);
      expect(result.structuredContent, route).toEqual({ tempC: 21 });
      expect(result.isError ?? false).toBe(false);
    }
  });

  it('replaces one that breaks it with an error result naming paths and keywords, and audits it', async () => {
    const broken: [Record<string, unknown>, RegExp][] = [
      [{ content: text('hot'), structuredContent: { tempC: 'hot' } }, /\/tempC: type/],
      [
        { content: text('x'), structuredContent: { tempC: 1, leak: 'SECRET-ROWS' } },
        /additionalProperties \(leak\)/,
      ],
      [{ content: text('no structure') }, /structuredContent missing/],
    ];
    for (const [bad, named] of broken) {
      answer = bad;
      for (const route of ['/json', '/sse']) {
        const result = await call(route);
        expect(result.isError, route).toBe(true);
        expect(result.structuredContent).toBeUndefined();
        expect(firstText(result)).toMatch(/pinned output schema/);
        expect(firstText(result)).toMatch(named);
        expect(firstText(result)).not.toMatch(/SECRET-ROWS|hot/);
      }
    }
    const records = (await gateway.auditRecords()).filter(
      (r) => r.method === 'tools/call' && r.reason === 'invalid_result',
    );
    expect(records).toHaveLength(6);
    expect(records[0]).toMatchObject({
      decision: 'error',
      tool: 'forecast',
      upstreamStatus: 200,
      outcome: { isError: true },
    });
    expect(new Set(records.map((r) => r.route))).toEqual(new Set(['/json', '/sse']));
  });

  it('leaves error results, tools without an outputSchema and routes without validateResults alone', async () => {
    answer = { content: text('the tool failed'), isError: true };
    expect(firstText(await call('/json'))).toBe('the tool failed');
    answer = { content: text('anything'), structuredContent: { tempC: 'hot' } };
    expect(await call('/json', 'plain')).toMatchObject({ structuredContent: { tempC: 'hot' } });
    // Off by default: relayed as the server sent it (raw: the SDK client would check it itself).
    const raw = await fetch(`${gateway.url}/off`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'forecast' } }),
    });
    expect(await raw.json()).toMatchObject({ id: 3, result: { structuredContent: { tempC: 'hot' } } });
  });
});
