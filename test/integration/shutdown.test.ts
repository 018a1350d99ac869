/**
 * Graceful shutdown of the real CLI process (`portcullis start`): SIGTERM stops accepting,
 * `/readyz` turns 503, in-flight requests finish, open SSE streams get `drainTimeoutMs` and are
 * then closed, and the process exits 0.
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/gateway.js';
import { type GatewayProcess, startGatewayProcess } from '../support/gateway-process.js';

describe('graceful shutdown on SIGTERM', () => {
  let upstream: Server;
  let gateway: GatewayProcess;
  let dir: string;
  let base: string;
  let admin: string;

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
    gateway = await startGatewayProcess(config);
    base = `http://127.0.0.1:${port}/mcp`;
    admin = `http://127.0.0.1:${adminPort}`;
  });

  afterAll(async () => {
    gateway?.kill();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('survives SIGHUP (it re-reads the policy instead of dying, as Node would by default)', async () => {
    gateway.child.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 300));
    expect(gateway.child.exitCode).toBeNull();
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
    const exited = once(gateway.child, 'exit');
    gateway.child.kill('SIGTERM');
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
    expect(gateway.stderr).toContain('drain timeout');
  });
});
