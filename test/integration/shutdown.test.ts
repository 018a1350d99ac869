/**
 * Graceful shutdown of the real CLI process (`portcullis start`): SIGTERM stops accepting,
 * `/readyz` turns 503, in-flight requests finish, open SSE streams get `drainTimeoutMs` and are
 * then closed, and the process exits 0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/gateway.js';

const CLI = join(import.meta.dirname, '../../dist/cli/main.js');

describe('graceful shutdown on SIGTERM', () => {
  let upstream: Server;
  let child: ChildProcess;
  let dir: string;
  let base: string;
  let admin: string;
  let stderr = '';

  beforeAll(async () => {
    // An upstream with a slow JSON answer and a never-ending SSE stream.
    upstream = createServer((req, res) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(': open\n\n');
        return;
      }
      setTimeout(
        () =>
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end('{"jsonrpc":"2.0","id":1,"result":{}}'),
        600,
      );
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
    const [port, adminPort] = [await freePort(), await freePort()];
    dir = mkdtempSync(join(tmpdir(), 'portcullis-shutdown-'));
    const config = join(dir, 'portcullis.yaml');
    writeFileSync(
      config,
      `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort} }
limits: { drainTimeoutMs: 1500 }
audit: { destination: ${JSON.stringify(join(dir, 'audit.jsonl'))} }
identities: { anonymous: {} }
routes:
  - route: /mcp
    resource: http://127.0.0.1:${port}/mcp
    upstream: ${upstreamUrl}
    authentication: { methods: [anonymous] }
`,
    );
    child = spawn(process.execPath, [CLI, 'start', '--config', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr += chunk;
    });
    base = `http://127.0.0.1:${port}/mcp`;
    admin = `http://127.0.0.1:${adminPort}`;
    for (let i = 0; i < 100 && !stderr.includes('portcullis listening'); i++)
      await new Promise((r) => setTimeout(r, 50));
    expect(stderr).toContain('portcullis listening');
  });

  afterAll(async () => {
    if (child.exitCode === null) child.kill('SIGKILL');
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('survives SIGHUP (it re-reads the policy instead of dying, as Node would by default)', async () => {
    child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    expect(child.exitCode).toBeNull();
    expect((await fetch(`${admin}/readyz`)).status).toBe(200);
  });

  it('drains in-flight work, closes streams at the deadline, and exits 0', async () => {
    expect((await fetch(`${admin}/readyz`)).status).toBe(200);
    const stream = await fetch(base, {
      method: 'GET',
      headers: { accept: 'text/event-stream' },
    });
    expect(stream.status).toBe(200);
    const streamEnded = stream.body!.pipeTo(new WritableStream()).then(
      () => 'ended',
      () => 'ended',
    );
    const inflight = fetch(base, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
    });
    await new Promise((r) => setTimeout(r, 100));
    const stoppedAt = performance.now();
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));

    expect((await fetch(`${admin}/readyz`)).status).toBe(503);
    await expect(fetch(base, { method: 'POST', body: '{}' })).rejects.toThrow();

    const answer = await inflight;
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ jsonrpc: '2.0', id: 1, result: {} });

    expect(await streamEnded).toBe('ended');
    const [code] = await exited;
    expect(code).toBe(0);
    const took = performance.now() - stoppedAt;
    expect(took).toBeGreaterThan(1_400);
    expect(took).toBeLessThan(5_000);
    expect(stderr).toContain('drain timeout');
  });
});
