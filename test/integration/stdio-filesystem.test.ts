/**
 * `@modelcontextprotocol/server-filesystem`, unmodified, spawned by the gateway over stdio against a
 * temporary directory: policy on its tools, its tool list filtered per caller, and a denied write
 * proven never to reach the file system.
 */
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { connectV1Client, connectV2Client } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { firstText } from '../support/inspect.js';

const SERVER = createRequire(import.meta.url).resolve(
  '@modelcontextprotocol/server-filesystem/dist/index.js',
);
const KEYS = { reader: newApiKey('pk_test_'), writer: newApiKey('pk_test_') } as const;

let gateway: TestGateway;
let dir: string;
let rooted: string;
let url: string;

beforeAll(async () => {
  // The server compares real paths: /tmp may be a symlink.
  dir = realpathSync(mkdtempSync(join(tmpdir(), 'portcullis-fs-')));
  writeFileSync(join(dir, 'hello.txt'), 'hello from disk');
  rooted = realpathSync(mkdtempSync(join(tmpdir(), 'portcullis-fs-root-')));
  gateway = await startTestGateway({
    policy: `identities:
  apiKeys:
    - { id: reader, hash: "${KEYS.reader.hash}", scopes: [files:read] }
    - { id: writer, hash: "${KEYS.writer.hash}", scopes: [files:read, files:write] }
routes:
  - route: /files/mcp
    resource: http://127.0.0.1/files/mcp
    upstream: { command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(SERVER)}, ${JSON.stringify(dir)}], processes: shared }
    authentication: { methods: [apiKey] }
    tools:
      read_text_file: files:read
      list_directory: files:read
      write_file: files:write
  - route: /rooted/mcp
    resource: http://127.0.0.1/rooted/mcp
    upstream:
      command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(SERVER)}, ${JSON.stringify(dir)}]
      processes: shared
      clientCapabilities: { roots: [{ uri: ${JSON.stringify(`file://${'$'}{ROOT}`)}, name: shared }] }
    authentication: { methods: [apiKey] }
    tools: { list_allowed_directories: files:read, read_text_file: files:read }
`,
    env: { ROOT: rooted },
  });
  url = `${gateway.url}/files/mcp`;
}, 30_000);

afterAll(async () => {
  await gateway?.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(rooted, { recursive: true, force: true });
});

const as = (who: keyof typeof KEYS) => ({ headers: { Authorization: `Bearer ${KEYS[who].key}` } });

describe('server-filesystem behind the gateway', () => {
  it('shows each caller only the tools its scopes allow', async () => {
    const reader = await connectV1Client(url, as('reader'));
    const writer = await connectV2Client(url, as('writer'));
    try {
      const readerTools = (await reader.listTools()).tools.map((t) => t.name).sort();
      expect(readerTools).toEqual(['list_directory', 'read_text_file']);
      const writerTools = (await writer.listTools()).tools.map((t) => t.name).sort();
      expect(writerTools).toEqual(['list_directory', 'read_text_file', 'write_file']);
    } finally {
      await reader.close();
      await writer.close();
    }
  });

  it('reads a file for a reader', async () => {
    const reader = await connectV2Client(url, as('reader'));
    try {
      const result = await reader.callTool({
        name: 'read_text_file',
        arguments: { path: join(dir, 'hello.txt') },
      });
      expect(firstText(result)).toBe('hello from disk');
    } finally {
      await reader.close();
    }
  });

  it('refuses a reader’s write with 403 before it reaches the server: no file is written', async () => {
    const target = join(dir, 'denied.txt');
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        ...as('reader').headers,
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: { name: 'write_file', arguments: { path: target, content: 'should never exist' } },
      }),
    });
    expect(response.status).toBe(403);
    const body = (await response.json()) as { id: number; error: { code: number; data: { reason: string } } };
    expect(body.id).toBe(7);
    expect(body.error.data.reason).toBe('insufficient_scope');
    expect(existsSync(target)).toBe(false);
  });

  it('writes for a writer', async () => {
    const writer = await connectV1Client(url, as('writer'));
    try {
      const target = join(dir, 'written.txt');
      await writer.callTool({
        name: 'write_file',
        arguments: { path: target, content: 'written through the gateway' },
      });
      expect(readFileSync(target, 'utf8')).toBe('written through the gateway');
    } finally {
      await writer.close();
    }
  });

  it('confines the server to the route’s roots, which the gateway answers for it', async () => {
    const reader = await connectV2Client(`${gateway.url}/rooted/mcp`, as('reader'));
    try {
      // server-filesystem replaces its command-line directories with the client's roots.
      await vi.waitFor(async () =>
        expect(
          firstText(await reader.callTool({ name: 'list_allowed_directories', arguments: {} })),
        ).toContain(rooted),
      );
      const allowed = firstText(await reader.callTool({ name: 'list_allowed_directories', arguments: {} }));
      expect(allowed).not.toContain(dir);
      const outside = await reader.callTool({
        name: 'read_text_file',
        arguments: { path: join(dir, 'hello.txt') },
      });
      expect(outside.isError).toBe(true);
    } finally {
      await reader.close();
    }
  });

  it('refuses a tool the policy does not list, for every caller', async () => {
    const writer = await connectV2Client(url, as('writer'));
    try {
      await expect(
        writer.callTool({
          name: 'move_file',
          arguments: { source: join(dir, 'hello.txt'), destination: join(dir, 'moved.txt') },
        }),
      ).rejects.toThrow();
      expect(existsSync(join(dir, 'hello.txt'))).toBe(true);
      expect(existsSync(join(dir, 'moved.txt'))).toBe(false);
    } finally {
      await writer.close();
    }
  });
});
