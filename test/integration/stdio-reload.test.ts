/**
 * Policy reloads and stdio servers: a reload that leaves a route's server as it was keeps its
 * process (and so every session and in-memory state in it); one that changes the server replaces
 * the process; a `user` the machine does not know makes the file invalid, the running one kept.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Gateway } from '../../src/server/gateway.js';
import { connectV2Client } from '../fixtures/peers.js';
import { startWatchedGateway } from '../support/gateway.js';
import { firstText } from '../support/inspect.js';

const SERVER = new URL('../fixtures/v2-stdio-server.mjs', import.meta.url).pathname;

function policy(opts: { env?: string; user?: string; echo?: string }): string {
  return `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: none }
limits: { drainTimeoutMs: 1000 }
identities: { anonymous: { scopes: [tools:use] } }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream:
      command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(SERVER)}]
      processes: shared
      env: { MODE: ${opts.env ?? 'first'} }${opts.user === undefined ? '' : `\n      user: ${opts.user}`}
    authentication: { methods: [anonymous] }
    tools: { whoami: tools:use, echo: ${opts.echo ?? 'tools:use'} }
`;
}

let dir: string;
let file: string;
let gateway: Gateway;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-stdio-reload-'));
  file = join(dir, 'portcullis.yaml');
  writeFileSync(file, policy({}));
  gateway = await startWatchedGateway(file);
});

afterAll(async () => {
  await gateway?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function whoami(): Promise<number> {
  const client = await connectV2Client(`${gateway.url}/mcp`);
  try {
    return Number(firstText(await client.callTool({ name: 'whoami', arguments: {} })));
  } finally {
    await client.close();
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('reloading a policy with a stdio route', () => {
  it('keeps the process when only the policy changed, replaces it when the server changed', async () => {
    const first = await whoami();
    writeFileSync(file, policy({ echo: '[tools:use, tools:more]' }));
    expect(await gateway.reload()).toBe('applied');
    expect(await whoami()).toBe(first);

    writeFileSync(file, policy({ env: 'second', echo: '[tools:use, tools:more]' }));
    expect(await gateway.reload()).toBe('applied');
    const second = await whoami();
    expect(second).not.toBe(first);
    await vi.waitFor(() => expect(alive(first)).toBe(false), { timeout: 6000 });
    expect(alive(second)).toBe(true);
  });

  it('refuses a file naming a user this machine does not have, and keeps serving', async () => {
    const before = await whoami();
    writeFileSync(
      file,
      policy({ env: 'second', echo: '[tools:use, tools:more]', user: 'no-such-user-anywhere' }),
    );
    expect(await gateway.reload()).toBe('invalid');
    expect(await whoami()).toBe(before);
  });
});
