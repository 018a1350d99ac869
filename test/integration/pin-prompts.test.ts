/**
 * Pinned prompts (issue 18): a `prompts/get` is checked against the pinned prompt's declared
 * arguments — declared names only, the required ones present, each a string — before the server
 * hears of it. An SDK v1 server (legacy, sessions) pinned by the real `portcullis pin --write`,
 * the SDK v1 client and raw requests through a real gateway: an invalid call is refused 400 /
 * -32602 and audited `deny` / `invalid_arguments`, and the server never
 * receives it.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectV1Client, FIXTURE_PROMPT_NAME, startV1Server, type V1Peer } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { rpcMethod } from '../support/inspect.js';
import { pinWithCli } from '../support/pins.js';

let server: V1Peer;
let gateway: TestGateway;
let dir: string;

beforeAll(async () => {
  server = await startV1Server({ response: 'json' });
  dir = mkdtempSync(join(tmpdir(), 'portcullis-pin-prompts-'));
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
});

afterAll(async () => {
  await gateway?.close();
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The prompts/get requests the server received since `from`. */
const promptGetsSince = (from: number) =>
  server.requests.slice(from).filter((r) => rpcMethod(r) === 'prompts/get').length;

describe('pinned prompt arguments', () => {
  it('serves a prompts/get whose arguments the pinned prompt declares', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`);
    try {
      const prompt = await client.getPrompt({ name: FIXTURE_PROMPT_NAME, arguments: { topic: 'pins' } });
      expect(JSON.stringify(prompt.messages)).toContain('pins');
    } finally {
      await client.close();
    }
  });

  it('refuses undeclared, missing and non-string arguments with -32602 before the server hears of them', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`);
    try {
      const before = server.requests.length;
      for (const args of [{ topic: 'pins', secret: 'hunter2' }, {}]) {
        const refused = client.getPrompt({ name: FIXTURE_PROMPT_NAME, arguments: args });
        // The v1 client surfaces the 400 with the body the gateway sent.
        await expect(refused).rejects.toThrow(/-32602/);
        await expect(refused).rejects.toThrow(/invalid_arguments/);
        // Names and rules, never the caller's values.
        await expect(refused).rejects.not.toThrow(/hunter2/);
      }
      expect(promptGetsSince(before)).toBe(0);
    } finally {
      await client.close();
    }
  });

  it('answers a raw request the same way, and audits it deny / invalid_arguments, unforwarded', async () => {
    const client = await connectV1Client(`${gateway.url}/mcp`);
    const session = (client.transport as { sessionId?: string } | undefined)?.sessionId;
    expect(session).toBeDefined();
    try {
      const before = server.requests.length;
      const answer = await fetch(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          'mcp-protocol-version': '2025-11-25',
          'mcp-session-id': session as string,
        },
        body: JSON.stringify({
          jsonrpc: '2.0',
          id: 41,
          method: 'prompts/get',
          params: { name: FIXTURE_PROMPT_NAME, arguments: { topic: 7 } },
        }),
      });
      expect(answer.status).toBe(400);
      const body = (await answer.json()) as {
        id: unknown;
        error: { code: number; data: Record<string, unknown> };
      };
      expect(body).toMatchObject({ id: 41, error: { code: -32602, data: { reason: 'invalid_arguments' } } });
      expect(String(body.error.data.detail)).toMatch(/topic/);
      expect(promptGetsSince(before)).toBe(0);
      const records = await gateway.auditRecords();
      expect(records.find((r) => r.method === 'prompts/get' && r.id === 41)).toMatchObject({
        prompt: FIXTURE_PROMPT_NAME,
        decision: 'deny',
        reason: 'invalid_arguments',
        status: 400,
        upstreamStatus: null,
      });
    } finally {
      await client.close();
    }
  });

  it('refuses a completion of an unpinned prompt’s argument before the server hears of it (last: edits the pins)', async () => {
    const file = join(dir, 'pins.json');
    const pins = JSON.parse(readFileSync(file, 'utf8')) as { prompts: { name: string }[] };
    pins.prompts = pins.prompts.filter((p) => p.name !== FIXTURE_PROMPT_NAME);
    writeFileSync(file, JSON.stringify(pins, null, 2));
    const client = await connectV1Client(`${gateway.url}/mcp`);
    try {
      await vi.waitFor(
        async () =>
          expect((await client.listPrompts()).prompts.map((p) => p.name)).not.toContain(FIXTURE_PROMPT_NAME),
        { timeout: 5000, interval: 200 },
      );
      const before = server.requests.length;
      await expect(
        client.complete({
          ref: { type: 'ref/prompt', name: FIXTURE_PROMPT_NAME },
          argument: { name: 'topic', value: 'p' },
        }),
      ).rejects.toThrow(/tool_changed|changed/);
      await expect(
        client.getPrompt({ name: FIXTURE_PROMPT_NAME, arguments: { topic: 'pins' } }),
      ).rejects.toThrow(/tool_changed|changed/);
      expect(
        server.requests
          .slice(before)
          .filter((r) => ['completion/complete', 'prompts/get'].includes(String(rpcMethod(r)))),
      ).toEqual([]);
    } finally {
      await client.close();
    }
  });
});
