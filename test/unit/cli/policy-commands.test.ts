/** `portcullis explain` and `portcullis test` as a user runs them: the built CLI, real files. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../../src/auth/api-key.js';
import { CLI } from '../../support/gateway-process.js';

const run = (args: string[], input?: string) =>
  new Promise<{ code: number; stdout: string }>((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], (err, stdout) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout }),
    );
    child.stdin?.end(input ?? '');
  });

describe('explain and test', () => {
  let dir: string;
  let config: string;
  const key = newApiKey('pk_');
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'));
    config = join(dir, 'portcullis.yaml');
    writeFileSync(
      config,
      `identities:
  apiKeys: [{ id: ci-bot, hash: "${key.hash}", scopes: [files:read] }]
routes:
  - route: /files/mcp
    resource: http://127.0.0.1/files/mcp
    upstream: http://127.0.0.1:1/mcp
    authentication: { methods: [apiKey] }
    tools: { read_file: files:read, delete_file: [files:write, files:admin] }
`,
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('explains a denial with the rule and the missing scopes, exit 1', async () => {
    const { code, stdout } = await run([
      'explain',
      '--config',
      config,
      '--route',
      '/files/mcp',
      '--tool',
      'delete_file',
      '--scopes',
      'files:write',
    ]);
    expect(code).toBe(1);
    expect(stdout).toContain('deny');
    expect(stdout).toContain('rule      tools.delete_file');
    expect(stdout).toContain('missing   files:admin');
  });

  it('explains with an API key read from stdin, never from the command line, exit 0', async () => {
    const { code, stdout } = await run(
      ['explain', '--config', config, '--route', '/files/mcp', '--tool', 'read_file', '--key-stdin'],
      `${key.key}\n`,
    );
    expect(code).toBe(0);
    expect(stdout).toMatch(/^allow/);
    expect(stdout).toContain('apiKey:ci-bot');
    expect(stdout).not.toContain(key.key);
  });

  it('runs a policy test file and fails on a mismatch', async () => {
    const tests = join(dir, 'tests.yaml');
    writeFileSync(
      tests,
      `tests:
  - { name: bot reads, route: /files/mcp, identity: "apiKey:ci-bot", tool: read_file, expect: allow }
  - { name: bot cannot delete, route: /files/mcp, identity: "apiKey:ci-bot", tool: delete_file, expect: deny }
`,
    );
    expect(await run(['test', '--config', config, tests])).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('2 passed, 0 failed'),
    });
    writeFileSync(
      tests,
      `tests:\n  - { name: wrong, route: /files/mcp, scopes: [files:read], tool: delete_file, expect: allow }\n`,
    );
    const failed = await run(['test', '--config', config, tests]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('FAIL  wrong: expected allow');
  });
});
