/**
 * Hot reload of the policy file: a broken file is never applied, a field that cannot change live
 * is refused, a revoked key stops working at once and its open SSE stream is closed, and a
 * ConfigMap-style symlink swap is picked up — all without a restart.
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import type { Gateway } from '../../src/server/gateway.js';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { startWatchedGateway } from '../support/gateway.js';
import { META } from '../support/wire.js';

const alice = newApiKey('pk_');
const bob = newApiKey('pk_');

function policy(
  upstream: string,
  audit: string,
  opts: { keys: string; adminPort?: number; echoScope?: string },
): string {
  return `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: ${opts.adminPort ?? 0} }
audit: { destination: ${JSON.stringify(audit)} }
limits: { drainTimeoutMs: 1000 }
identities:
  apiKeys:
${opts.keys}
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream}
    authentication: { methods: [apiKey] }
    tools: { echo: ${opts.echoScope ?? 'files:read'}, slow_progress: files:read }
`;
}

const both = `    - { id: alice, hash: "${alice.hash}", scopes: [files:read] }\n    - { id: bob, hash: "${bob.hash}", scopes: [files:read] }`;
const aliceOnly = `    - { id: alice, hash: "${alice.hash}", scopes: [files:read] }`;

function call(
  base: string,
  key: string,
  tool: string,
  extra: Record<string, unknown> = {},
): Promise<Response> {
  return fetch(`${base}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': tool,
      authorization: `Bearer ${key}`,
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name: tool, arguments: { text: 'x' }, _meta: { ...META, ...extra } },
    }),
  });
}

describe('policy hot reload', () => {
  let dir: string;
  let file: string;
  let upstream: Peer;
  let gateway: Gateway;
  let audit: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-reload-'));
    file = join(dir, 'portcullis.yaml');
    audit = join(dir, 'audit.jsonl');
    upstream = await startV2Server({ response: 'sse' });
    writeFileSync(file, policy(upstream.url, audit, { keys: both }));
    gateway = await startWatchedGateway(file);
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('never applies a broken file, and refuses a change to a field that cannot change live', async () => {
    writeFileSync(file, `${policy(upstream.url, audit, { keys: both })}\n  - route: [broken`);
    expect(await gateway.reload()).toBe('invalid');
    writeFileSync(file, policy(upstream.url, audit, { keys: both, adminPort: 1 }));
    expect(await gateway.reload()).toBe('refused');
    const answer = await call(gateway.url, bob.key, 'echo');
    expect(answer.status).toBe(200);
    await answer.text();
    const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    // Counted once per attempt: the explicit reload, and the directory watch if it saw the file first.
    expect(metrics).toMatch(/portcullis_policy_reloads_total\{result="invalid"\} [12]\n/);
    expect(metrics).toMatch(/portcullis_policy_reloads_total\{result="refused"\} [12]\n/);
  });

  it('a revoked key stops working at once, and its open SSE stream is closed', async () => {
    writeFileSync(file, policy(upstream.url, audit, { keys: both }));
    // Bob's long call streams progress over SSE for ~500 ms.
    const streaming = await call(gateway.url, bob.key, 'slow_progress', { progressToken: 'p1' });
    expect(streaming.headers.get('content-type')).toContain('text/event-stream');
    const reader = streaming.body!.getReader();
    await reader.read();

    writeFileSync(file, policy(upstream.url, audit, { keys: aliceOnly }));
    // SIGHUP's path; the directory watch may have applied it a moment earlier.
    expect(['applied', 'unchanged']).toContain(await gateway.reload());
    const ended = await Promise.race([
      (async () => {
        for (;;) {
          const { done } = await reader.read();
          if (done) return 'closed';
        }
      })().catch(() => 'closed'),
      new Promise((resolve) => setTimeout(() => resolve('still open'), 2_000)),
    ]);
    expect(ended).toBe('closed');

    const before = upstream.requests.length;
    const refused = await call(gateway.url, bob.key, 'echo');
    expect(refused.status).toBe(401);
    await refused.text();
    expect(upstream.requests.length).toBe(before);
    const allowed = await call(gateway.url, alice.key, 'echo');
    expect(allowed.status).toBe(200);
    await allowed.text();
  });

  it('picks up a ConfigMap-style symlink swap through the directory watch', async () => {
    // Kubernetes mounts: portcullis.yaml -> ..data/portcullis.yaml, ..data -> ..<timestamp>/
    const mount = join(dir, 'mount');
    mkdirSync(join(mount, '..v1'), { recursive: true });
    writeFileSync(join(mount, '..v1', 'portcullis.yaml'), policy(upstream.url, audit, { keys: aliceOnly }));
    symlinkSync('..v1', join(mount, '..data'));
    symlinkSync(join('..data', 'portcullis.yaml'), join(mount, 'portcullis.yaml'));
    const mounted = join(mount, 'portcullis.yaml');
    const watched = await startWatchedGateway(mounted);
    try {
      const before = await call(watched.url, alice.key, 'echo');
      expect(before.status).toBe(200);
      await before.text();
      // The new version: echo now needs a scope alice lacks.
      mkdirSync(join(mount, '..v2'));
      writeFileSync(
        join(mount, '..v2', 'portcullis.yaml'),
        policy(upstream.url, audit, { keys: aliceOnly, echoScope: 'files:admin' }),
      );
      symlinkSync('..v2', join(mount, '..data_tmp'));
      renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
      await vi.waitFor(
        async () => {
          const answer = await call(watched.url, alice.key, 'echo');
          await answer.text();
          expect(answer.status).toBe(403);
        },
        { timeout: 8_000, interval: 200 },
      );
    } finally {
      await watched.close();
    }
  });
});
