/** `portcullis test`: policy test files, run by the built CLI and in process. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../../src/auth/api-key.js';
import { runPolicyTests } from '../../../src/cli/test.js';
import { runBuiltCli } from '../../support/cli.js';
import { runCommand } from '../../support/command.js';

let dir: string;
let config: string;
const key = newApiKey('pk_');

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-test-cmd-'));
  config = join(dir, 'portcullis.yaml');
  writeFileSync(
    config,
    `approvals:
  publicUrl: https://portcullis.example.com
  oidc: { issuer: "https://idp.example.com/", clientId: approvals }
  approverScopes: [mcp:approve]
identities:
  apiKeys: [{ id: ci-bot, hash: "${key.hash}", scopes: [files:read] }]
  anonymous: { scopes: [public] }
routes:
  - route: /files/mcp
    resource: http://127.0.0.1/files/mcp
    upstream: http://127.0.0.1:1/mcp
    authentication: { methods: [apiKey, anonymous] }
    tools:
      read_file: files:read
      delete_file: [files:write, files:admin]
      list: public
      write_file: { scopes: files:read, when: 'args.path.startsWith("/srv/")' }
      rename_file: { scopes: files:read, confirm: caller }
      purge: { scopes: files:read, confirm: approver }
`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `text` as a policy test file and returns its path. */
function testFile(text: string): string {
  const file = join(dir, `tests-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, text);
  return file;
}

describe('portcullis test, the built CLI', () => {
  const run = (args: string[]) => runBuiltCli(args);

  it('checks that a call needs the caller’s or an approver’s yes, when a case says so', async () => {
    const passing = testFile(`tests:
  - { route: /files/mcp, scopes: [files:read], tool: rename_file, expect: allow, confirm: caller }
  - { route: /files/mcp, scopes: [files:read], tool: read_file, expect: allow, confirm: none }
  - { route: /files/mcp, scopes: [files:read], tool: purge, expect: allow, confirm: approver }
`);
    const ok = await run(['test', '--config', config, passing]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain('3 passed, 0 failed');
    const failing = testFile(`tests:
  - { name: unconfirmed, route: /files/mcp, scopes: [files:read], tool: rename_file, expect: allow, confirm: none }
`);
    const failed = await run(['test', '--config', config, failing]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('FAIL  unconfirmed: expected confirm none, got caller');
  });

  it('runs a policy test file and fails on a mismatch', async () => {
    const tests = testFile(`tests:
  - { name: bot reads, route: /files/mcp, identity: "apiKey:ci-bot", tool: read_file, expect: allow }
  - { name: bot cannot delete, route: /files/mcp, identity: "apiKey:ci-bot", tool: delete_file, expect: deny }
`);
    expect(await run(['test', '--config', config, tests])).toMatchObject({
      code: 0,
      stdout: expect.stringContaining('2 passed, 0 failed'),
    });
    const wrong = testFile(
      `tests:\n  - { name: wrong, route: /files/mcp, scopes: [files:read], tool: delete_file, expect: allow }\n`,
    );
    const failed = await run(['test', '--config', config, wrong]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toContain('FAIL  wrong: expected allow');
  });
});

describe('runPolicyTests', () => {
  const runTests = (file: string) => runCommand(runPolicyTests, ['--config', config, file]);

  it('decides when rules on the arguments a case gives', async () => {
    const { code, stdout } = await runTests(
      testFile(`tests:
  - { route: /files/mcp, scopes: [files:read], tool: write_file, args: { path: /srv/a }, expect: allow }
  - { route: /files/mcp, scopes: [files:read], tool: write_file, args: { path: /etc/passwd }, expect: deny }
  - { route: /files/mcp, scopes: [files:read], tool: write_file, expect: deny }
`),
    );
    expect(stdout).toBe(
      'ok    tests[0]: allow\nok    tests[1]: deny\nok    tests[2]: deny\n3 passed, 0 failed\n',
    );
    expect(code).toBe(0);
  });

  it('prints ok for each case that holds and exits 0', async () => {
    const { code, stdout } = await runTests(
      testFile(`tests:
  - { name: bot reads, route: /files/mcp, identity: "apiKey:ci-bot", tool: read_file, expect: allow }
  - { route: /files/mcp, identity: anonymous, tool: list, expect: allow }
  - { route: /files/mcp, identity: anonymous, tool: read_file, expect: deny }
  - { route: /files/mcp, scopes: [files:write, files:admin], tool: delete_file, expect: allow }
`),
    );
    expect(stdout).toBe(
      'ok    bot reads: allow\nok    tests[1]: allow\nok    tests[2]: deny\nok    tests[3]: allow\n4 passed, 0 failed\n',
    );
    expect(code).toBe(0);
  });

  it('prints FAIL with the decision for a mismatch, ERROR for a case it cannot run, and exits 1', async () => {
    const { code, stdout } = await runTests(
      testFile(`tests:
  - { name: wrong, route: /files/mcp, scopes: [files:write], tool: delete_file, expect: allow }
  - { name: no route, route: /nope, scopes: [], tool: a, expect: deny }
  - { name: two calls, route: /files/mcp, scopes: [], tool: a, prompt: b, expect: deny }
  - { name: unknown key, route: /files/mcp, identity: "apiKey:nobody", tool: list, expect: deny }
  - { name: fine, route: /files/mcp, identity: "apiKey:ci-bot", tool: read_file, expect: allow }
`),
    );
    expect(code).toBe(1);
    const lines = stdout.split('\n');
    expect(lines[0]).toBe('FAIL  wrong: expected allow, got deny  (insufficient_scope)');
    expect(stdout).toContain('  missing   files:admin\n');
    expect(stdout).toContain('ERROR no route: no route /nope\n');
    expect(stdout).toContain('ERROR two calls: name exactly one of tool, resource, prompt, method\n');
    expect(stdout).toContain('ERROR unknown key: give scopes or a known identity\n');
    expect(stdout).toContain('ok    fine: allow\n');
    expect(stdout.endsWith('1 passed, 4 failed\n')).toBe(true);
  });

  it('refuses a test file that does not match its schema, naming the field: exit 2', async () => {
    const { code, stdout, stderr } = await runTests(
      testFile('tests:\n  - { route: /files/mcp, scopes: [], tool: a, expect: maybe, extra: 1 }\n'),
    );
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('tests.0.expect');
    expect(stderr).toMatch(/tests\.0: .*extra/);
  });

  it('refuses an empty test list: exit 2', async () => {
    const { code, stderr } = await runTests(testFile('tests: []\n'));
    expect(code).toBe(2);
    expect(stderr).toContain('tests:');
  });

  it('prints the usage without exactly one test file: exit 2', async () => {
    const { code, stderr } = await runCommand(runPolicyTests, ['--config', config]);
    expect(code).toBe(2);
    expect(stderr).toBe('Usage: portcullis test --config F policy-tests.yaml\n');
  });
});
