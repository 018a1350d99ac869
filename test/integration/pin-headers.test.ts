/**
 * Mirrored parameters on a pinned route (issue 18): a tool whose pinned input schema marks
 * arguments with `x-mcp-header` has 2026-07-28 clients send them as `Mcp-Param-*` headers too,
 * and a router or WAF in front of the server may act on those. The gateway holds each such header
 * to the argument it mirrors — 400 / -32020 `header_mismatch` otherwise, before the server hears
 * of the call. An SDK v2 server (which validates them itself) pinned by the real `portcullis pin
 * --write`, the SDK v2 client (which mirrors them from the listed schema) and raw requests.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromJsonSchema } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ChangingTool,
  type ChangingV2Peer,
  connectV2Client,
  startChangingV2Server,
} from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { firstText, rpcMethod } from '../support/inspect.js';
import { toolCall } from '../support/modern-call.js';
import { pinWithCli } from '../support/pins.js';

/** The tool's input schema: two arguments mirrored into headers, one not. */
const DEPLOY_SCHEMA = {
  type: 'object',
  properties: {
    region: { type: 'string', 'x-mcp-header': 'Region' },
    replicas: { type: 'integer', 'x-mcp-header': 'Replicas' },
    note: { type: 'string' },
  },
  required: ['region'],
};
const DEPLOY: ChangingTool = {
  description: 'Deploys to a region.',
  inputSchema: fromJsonSchema<Record<string, unknown>>(DEPLOY_SCHEMA),
};
let server: ChangingV2Peer;
let gateway: TestGateway;
let dir: string;
let url: string;

beforeAll(async () => {
  server = await startChangingV2Server(new Map([['deploy', DEPLOY]]));
  dir = mkdtempSync(join(tmpdir(), 'portcullis-pin-headers-'));
  const policy = `identities: { anonymous: { scopes: [] } }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: "${server.url}"
    authentication: { methods: [anonymous] }
    default: allow
    pins: ${JSON.stringify(join(dir, 'pins.json'))}
`;
  await pinWithCli(dir, policy);
  gateway = await startTestGateway({ policy });
  url = `${gateway.url}/mcp`;
});

afterAll(async () => {
  await gateway?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

const callsSince = (from: number) =>
  server.requests.slice(from).filter((r) => rpcMethod(r) === 'tools/call').length;

describe('Mcp-Param headers on a pinned route', () => {
  it('forwards a call whose headers the SDK v2 client mirrored from the listed schema', async () => {
    const client = await connectV2Client(url);
    try {
      // The client mirrors arguments into headers from the tools/list it cached.
      await client.listTools();
      const before = server.requests.length;
      const result = await client.callTool({
        name: 'deploy',
        arguments: { region: 'Zürich-1', replicas: 3, note: 'n' },
      });
      expect(firstText(result)).toBe('ran deploy {"region":"Zürich-1","replicas":3,"note":"n"}');
      const forwarded = server.requests.slice(before).find((r) => rpcMethod(r) === 'tools/call');
      // Non-ASCII travels base64-encoded; the upstream checked it too.
      expect(forwarded?.headers['mcp-param-region']).toBe(
        `=?base64?${Buffer.from('Zürich-1').toString('base64')}?=`,
      );
      expect(forwarded?.headers['mcp-param-replicas']).toBe('3');
    } finally {
      await client.close();
    }
  });

  it('refuses a header that disagrees, is missing, or names an absent argument — the server hears nothing', async () => {
    const before = server.requests.length;
    const cases: [Record<string, unknown>, Record<string, string>, RegExp][] = [
      [{ region: 'eu-west-1' }, { 'mcp-param-region': 'us-east-1' }, /Mcp-Param-Region/],
      [{ region: 'eu-west-1' }, {}, /Mcp-Param-Region \(missing\)/],
      [
        { region: 'eu-west-1', replicas: 2 },
        { 'mcp-param-region': 'eu-west-1', 'mcp-param-replicas': '20' },
        /Replicas/,
      ],
      [
        { region: 'eu-west-1' },
        { 'mcp-param-region': 'eu-west-1', 'mcp-param-replicas': '2' },
        /no such argument/,
      ],
    ];
    for (const [args, headers, detail] of cases) {
      const answer = await toolCall(url, 'deploy', args, { id: 9, headers });
      expect(answer.status, JSON.stringify(headers)).toBe(400);
      expect(answer.body).toMatchObject({
        id: 9,
        error: { code: -32020, data: { reason: 'header_mismatch' } },
      });
      const data = (answer.body as { error: { data: { detail: string } } }).error.data;
      expect(data.detail).toMatch(detail);
      expect(data.detail).not.toContain('us-east-1');
    }
    expect(callsSince(before)).toBe(0);
    // The agreeing request, raw, goes through.
    const agreeing = await toolCall(
      url,
      'deploy',
      { region: 'eu-west-1', replicas: 2 },
      { id: 10, headers: { 'mcp-param-region': 'eu-west-1', 'mcp-param-replicas': '2.0' } },
    );
    expect(agreeing.status).toBe(200);
    expect(callsSince(before)).toBe(1);
    const records = await gateway.auditRecords();
    expect(records.filter((r) => r.reason === 'header_mismatch' && r.tool === 'deploy')).toHaveLength(4);
  });
});
