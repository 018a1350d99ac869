/**
 * `portcullis check --connect` (issue 16): the built CLI connects to every server of a federated
 * route — an SDK v1 HTTP server, server-everything over stdio, a catalog with a name LLM
 * providers refuse, and one that is down — and prints what clients will see: server, exposed
 * name, scopes; warnings for long or dotted names; the server it could not list as an error.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { everythingStdio } from '../fixtures/everything.js';
import { type Peer, startCatalogServer, startV1Server, type V1Peer } from '../fixtures/peers.js';
import { runBuiltCli } from '../support/cli.js';
import { freePort } from '../support/gateway.js';

let v1: V1Peer;
let catalog: Peer;
let dir: string;
let file: string;

beforeAll(async () => {
  v1 = await startV1Server({ response: 'json' });
  catalog = await startCatalogServer({
    name: 'cat',
    tools: ['ok', 'dotted.name', 'x'.repeat(70), 'bad name'],
    pageSize: 2,
  });
  const down = await freePort();
  dir = mkdtempSync(join(tmpdir(), 'portcullis-connect-'));
  file = join(dir, 'portcullis.yaml');
  writeFileSync(
    file,
    `identities: { anonymous: { scopes: [] } }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    servers:
      legacy: { upstream: "${v1.url}" }
      every: { upstream: ${everythingStdio()} }
      cat: { upstream: "${catalog.url}" }
      down: { upstream: "http://127.0.0.1:${down}/mcp", upstreamTimeouts: { connectMs: 300, headersMs: 1000, idleMs: 1000 } }
    authentication: { methods: [anonymous] }
    tools: { "legacy__*": read, every__echo: [read, echo] }
`,
  );
});

afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await v1?.close();
  await catalog?.close();
});

it('prints every server’s tools and prompts under their exposed names, with scopes and warnings', async () => {
  const run = await runBuiltCli(['check', '--config', file, '--connect']);
  const lines = run.stdout.split('\n');
  const row = (server: string, name: string) =>
    lines.find((line) => new RegExp(`^\\s+${server}\\s+${name.replace(/\./g, '\\.')}\\s`).test(line));
  expect(row('legacy', 'legacy__echo')).toContain('read (tools."legacy__*")');
  expect(row('every', 'every__echo')).toContain('read + echo (tools.every__echo)');
  expect(row('every', 'every__get-sum')).toContain('refused (default: deny)');
  expect(row('cat', 'cat__ok')).toBeDefined(); // listed over two pages of the server's own cursor
  expect(row('cat', 'cat__bad name')).toContain('hidden');
  expect(run.stdout).toContain("warning: routes[0] tool cat__dotted.name: contains '.'");
  expect(run.stdout).toMatch(/warning: routes\[0\] tool cat__x{70}: is 75 characters/);
  expect(run.stderr).toContain('routes[0].servers.down.upstream: could not list (unreachable)');
  expect(run.code).toBe(1);
}, 60_000);
