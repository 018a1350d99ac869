/**
 * The embedded default as a new user meets it: `portcullis demo` (what `npm start` runs) starts,
 * prints a curl line, and that line works exactly as printed.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { connectV1Client, connectV2Client } from '../fixtures/peers.js';
import { freePort } from '../support/gateway.js';
import { CLI } from '../support/gateway-process.js';

describe('portcullis demo', () => {
  let child: ChildProcess;
  let stdout = '';
  let endpoint: string;

  beforeAll(async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    child = spawn(
      process.execPath,
      [CLI, 'demo', '--port', String(port), '--admin-port', String(adminPort)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      stdout += chunk;
    });
    for (let i = 0; i < 200 && !stdout.includes('Ctrl-C'); i++) await new Promise((r) => setTimeout(r, 50));
    endpoint = `http://127.0.0.1:${port}/notes/mcp`;
  });

  afterAll(async () => {
    if (child.exitCode === null) {
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    }
  });

  it('prints a curl line that works as printed', async () => {
    expect(stdout).toContain(endpoint);
    const curl = stdout.slice(stdout.indexOf('curl -s'), stdout.indexOf("}}}}'") + 5);
    expect(curl).toMatch(/^curl -s /);
    const { stdout: answer } = await promisify(execFile)('bash', ['-c', curl]);
    const parsed = JSON.parse(answer) as { id: number; result: { content: { text: string }[] } };
    expect(parsed.id).toBe(1);
    expect(parsed.result.content[0]?.text).toContain('welcome');
    // The audit stream (stdout) records the call.
    await vi.waitFor(() => {
      const records = stdout
        .split('\n')
        .filter((line) => line.startsWith('{"time"'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(records).toContainEqual(
        expect.objectContaining({ tool: 'list_notes', decision: 'allow', status: 200 }),
      );
    });
  });

  it('serves SDK clients of both generations', async () => {
    const key = /API key\s+(\S+)/.exec(stdout)?.[1];
    expect(key).toMatch(/^pk_demo_/);
    const headers = { Authorization: `Bearer ${key}` };
    const modern = await connectV2Client(endpoint, { headers });
    const legacy = await connectV1Client(endpoint, { headers });
    try {
      const modernTools = (await modern.listTools()).tools.map((t) => t.name);
      expect(modernTools).toContain('write_note');
      // delete_note needs notes:admin, which the demo key lacks: hidden, and refused when called.
      expect(modernTools).not.toContain('delete_note');
      await expect(modern.callTool({ name: 'delete_note', arguments: { id: 'welcome' } })).rejects.toThrow(
        /notes:admin/,
      );
      expect((await legacy.listTools()).tools.map((t) => t.name)).toContain('summarize_notes');
    } finally {
      await modern.close();
      await legacy.close();
    }
  });

  it('refuses a call without the key with a challenge naming the scopes to ask for, and no metadata (no authorization server)', async () => {
    const answer = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    expect(answer.status).toBe(401);
    // An API-key route: a resource_metadata here would send OAuth clients looking for a server
    // that does not exist.
    expect(answer.headers.get('www-authenticate')).toBe('Bearer scope="notes:read notes:write"');
    const metadata = await fetch(
      endpoint.replace('/notes/mcp', '/.well-known/oauth-protected-resource/notes/mcp'),
    );
    expect(metadata.status).toBe(404);
  });

  it('stops on SIGTERM with exit code 0', async () => {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const [code] = await exited;
    expect(code).toBe(0);
  });
});
