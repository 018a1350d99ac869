/**
 * The stdio trust boundary (DESIGN.md "Upstreams" → stdio): a server run with `user`/`group` reads
 * neither the gateway's environment nor its key, policy or audit files; the same server without
 * them — inside the trust boundary, as README says — can. Starting a child as another user needs
 * root: CI runs as root (`.ci/run`); a non-root developer run leaves these two out.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/server/gateway.js';
import { connectV1Client } from '../fixtures/peers.js';
import { createTestCA, issueCertificate } from '../support/certs.js';
import { startWatchedGateway } from '../support/gateway.js';
import { firstText } from '../support/inspect.js';

const PROBE = new URL('../fixtures/probe-stdio-server.mjs', import.meta.url).pathname;
const NOBODY = 65534;
const asRoot = process.getuid?.() === 0;

interface Probe {
  uid: number;
  env: string[];
  parentEnvironment: string;
  files: Record<string, string>;
}

let dir: string;
let files: { policy: string; audit: string; key: string };
let gateway: Gateway;

beforeAll(async () => {
  if (!asRoot) return;
  dir = mkdtempSync(join(tmpdir(), 'portcullis-trust-'));
  // The directory is open; what protects the files is their own mode.
  chmodSync(dir, 0o755);
  const ca = await createTestCA();
  const leaf = await issueCertificate(ca, { cn: 'gateway-client' });
  files = {
    policy: join(dir, 'portcullis.yaml'),
    audit: join(dir, 'audit.jsonl'),
    key: join(dir, 'upstream.key'),
  };
  writeFileSync(join(dir, 'upstream.crt'), leaf.cert);
  writeFileSync(files.key, leaf.key, { mode: 0o600 });
  const upstream = (user: string) =>
    `{ command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(PROBE)}], processes: shared${user} }`;
  writeFileSync(
    files.policy,
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: ${JSON.stringify(files.audit)} }
identities: { anonymous: { scopes: [] } }
routes:
  - route: /outside/mcp
    resource: http://127.0.0.1/outside/mcp
    upstream: ${upstream(`, user: ${NOBODY}, group: ${NOBODY}`)}
    authentication: { methods: [anonymous] }
    default: allow
  - route: /inside/mcp
    resource: http://127.0.0.1/inside/mcp
    upstream: ${upstream('')}
    authentication: { methods: [anonymous] }
    default: allow
  - route: /http/mcp
    resource: http://127.0.0.1/http/mcp
    upstream: https://127.0.0.1:9/mcp
    upstreamTls: { cert: ${JSON.stringify(join(dir, 'upstream.crt'))}, key: ${JSON.stringify(files.key)} }
    authentication: { methods: [anonymous] }
`,
    { mode: 0o600 },
  );
  gateway = await startWatchedGateway(files.policy);
});

afterAll(async () => {
  await gateway?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

async function probe(route: string): Promise<Probe> {
  const client = await connectV1Client(`${gateway.url}${route}`);
  try {
    const paths = [files.policy, files.audit, files.key];
    return JSON.parse(firstText(await client.callTool({ name: 'probe', arguments: { paths } }))) as Probe;
  } finally {
    await client.close();
  }
}

describe.runIf(asRoot)('a stdio server and the gateway’s secrets', () => {
  it('run as another user, it reads neither the gateway’s environment nor its key, policy or audit file', async () => {
    const report = await probe('/outside/mcp');
    expect(report.uid).toBe(NOBODY);
    expect(report.parentEnvironment).toBe('EACCES');
    expect(report.files).toEqual({
      [files.policy]: 'EACCES',
      [files.audit]: 'EACCES',
      [files.key]: 'EACCES',
    });
    expect(report.env).toEqual(expect.arrayContaining(['HOME', 'PATH', 'TMPDIR']));
    expect(report.env.filter((name) => !['HOME', 'PATH', 'TMPDIR', 'LANG'].includes(name))).toEqual([]);
  });

  it('run as the gateway’s own user, it can: inside the trust boundary, as README says', async () => {
    const report = await probe('/inside/mcp');
    expect(report.uid).toBe(0);
    expect(report.parentEnvironment).toBe('read');
    expect(Object.values(report.files)).toEqual(['read', 'read', 'read']);
  });
});
