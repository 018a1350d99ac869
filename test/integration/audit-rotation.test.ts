/**
 * logrotate against the real CLI process (`portcullis start`): after the audit file is moved,
 * SIGUSR2 makes the gateway write to a new file at the configured path and the chain continues
 * there; SIGTERM flushes every record and logs the final chain head, which equals the last record's
 * — so a truncated tail would show against the log. `audit verify` accepts the old file alone and
 * the new one from the old one's head.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/gateway.js';
import { CLI, type GatewayProcess, startGatewayProcess } from '../support/gateway-process.js';
import { postModern } from '../support/modern-call.js';

const KEY = 'rotation-test-chain-key-000111';

let upstream: Server;
let gateway: GatewayProcess;
let dir: string;
let base: string;

beforeAll(async () => {
  upstream = createServer((req, res) => {
    req.resume();
    req.on('end', () =>
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"jsonrpc":"2.0","id":1,"result":{}}'),
    );
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
  const [port, adminPort] = [await freePort(), await freePort()];
  dir = mkdtempSync(join(tmpdir(), 'portcullis-rotation-'));
  const config = join(dir, 'portcullis.yaml');
  writeFileSync(
    config,
    `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort} }
audit: { destination: ${JSON.stringify(join(dir, 'audit.jsonl'))}, chainKey: "\${AUDIT_CHAIN_KEY}" }
identities: { anonymous: {} }
routes:
  - route: /mcp
    resource: http://127.0.0.1:${port}/mcp
    upstream: ${upstreamUrl}
    authentication: { methods: [anonymous] }
`,
  );
  gateway = await startGatewayProcess(config, { ...process.env, AUDIT_CHAIN_KEY: KEY });
  base = `http://127.0.0.1:${port}/mcp`;
});

afterAll(async () => {
  gateway?.kill();
  await new Promise((resolve) => upstream.close(resolve));
  rmSync(dir, { recursive: true, force: true });
});

async function discover(id: number): Promise<void> {
  // A 2026-07-28 request that needs only an identity (`ping` no longer exists there).
  const answer = await postModern(base, { method: 'server/discover', id });
  expect(answer.status).toBe(200);
  await answer.text();
}

function records(file: string): { seq: number; mac: string; id: number }[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { seq: number; mac: string; id: number });
}

function verify(file: string, ...extra: string[]): { code: number; out: string } {
  try {
    const out = execFileSync(process.execPath, [CLI, 'audit', 'verify', file, ...extra], {
      env: { ...process.env, AUDIT_CHAIN_KEY: KEY },
      encoding: 'utf8',
    });
    return { code: 0, out };
  } catch (err) {
    const failed = err as { status: number; stdout: string };
    return { code: failed.status, out: failed.stdout };
  }
}

describe('audit file rotation by SIGUSR2', () => {
  it('continues the chain in a new file and logs the final head on shutdown', async () => {
    await discover(1);
    await discover(2);
    const current = join(dir, 'audit.jsonl');
    const rotated = join(dir, 'audit.jsonl.1');
    // Records are written asynchronously: wait until both are on disk before moving the file.
    for (let i = 0; i < 40 && records(current).length < 2; i++) await new Promise((r) => setTimeout(r, 25));
    renameSync(current, rotated);
    gateway.child.kill('SIGUSR2');
    await new Promise((r) => setTimeout(r, 200));
    await discover(3);
    await discover(4);
    gateway.child.kill('SIGTERM');
    const [code] = (await once(gateway.child, 'exit')) as [number];
    expect(code).toBe(0);

    const old = records(rotated);
    const fresh = records(current);
    // Both files readable by the gateway's user alone, the one made after rotation too.
    expect(statSync(rotated).mode & 0o777).toBe(0o600);
    expect(statSync(current).mode & 0o777).toBe(0o600);
    expect(old.map((r) => [r.seq, r.id])).toEqual([
      [1, 1],
      [2, 2],
    ]);
    expect(fresh.map((r) => [r.seq, r.id])).toEqual([
      [3, 3],
      [4, 4],
    ]);
    // The last head in the operational log is the last record's.
    const heads = [...gateway.stderr.matchAll(/"auditChain":"(\d+:[0-9a-f]*)"/g)].map((m) => m[1]);
    expect(heads.at(-1)).toBe(`4:${fresh[1]?.mac}`);

    expect(verify(rotated).code).toBe(0);
    const alone = verify(current);
    expect(alone.code).toBe(1);
    expect(alone.out).toContain('--after');
    const continued = verify(current, '--after', `2:${old[1]?.mac}`);
    expect(continued).toEqual({ code: 0, out: expect.stringContaining('OK: 2 record(s) verified') });
  });
});
