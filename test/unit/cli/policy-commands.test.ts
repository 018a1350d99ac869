/** `portcullis explain` and `portcullis test` as a user runs them: the built CLI, real files. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../../src/auth/api-key.js';
import { runBuiltCli as run } from '../../support/cli.js';
import { createSigningKey, nowSec, type SigningKey, signJwt } from '../../support/jwks.js';

const ISSUER = 'https://idp.example.com/';

describe('explain and test', () => {
  let dir: string;
  let config: string;
  const key = newApiKey('pk_');
  let signer: SigningKey;
  beforeAll(async () => {
    signer = await createSigningKey('ES256');
    dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'));
    config = join(dir, 'portcullis.yaml');
    writeFileSync(
      config,
      `identities:
  apiKeys: [{ id: ci-bot, hash: "${key.hash}", scopes: [files:read] }]
  jwt: [{ issuer: "${ISSUER}", keys: [${JSON.stringify(signer.publicJwk)}] }]
routes:
  - route: /files/mcp
    resource: http://127.0.0.1/files/mcp
    upstream: http://127.0.0.1:1/mcp
    authentication: { methods: [apiKey] }
    tools: { read_file: files:read, delete_file: [files:write, files:admin] }
    resources: { "file:///public/**": files:read }
    prompts: { summarize: files:read }
    methods: { "files/reindex": files:admin }
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

  it('explains a resource read with a JWT read from stdin, verified against the route', async () => {
    const token = await signJwt(signer, {
      iss: ISSUER,
      sub: 'alice',
      aud: 'http://127.0.0.1/files/mcp',
      scope: 'files:read',
      iat: nowSec(),
      exp: nowSec() + 300,
    });
    const args = [
      'explain',
      '--config',
      config,
      '--route',
      '/files/mcp',
      '--resource',
      'file:///public/q3.pdf',
    ];
    const allowed = await run([...args, '--token-stdin'], `${token}\n`);
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toMatch(/^allow/);
    expect(allowed.stdout).toContain(`jwt:${ISSUER}|alice`);
    expect(allowed.stdout).not.toContain(token);
    // A token for another audience does not authenticate: deny, exit 1.
    const other = await signJwt(signer, {
      iss: ISSUER,
      sub: 'alice',
      aud: 'https://elsewhere/',
      exp: nowSec() + 300,
    });
    const refused = await run([...args, '--token-stdin'], other);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('the credential does not authenticate');
  });

  it('explains a prompt and a method beyond the method table, by scopes', async () => {
    const base = ['explain', '--config', config, '--route', '/files/mcp'];
    const prompt = await run([...base, '--prompt', 'summarize', '--scopes', 'files:read']);
    expect(prompt.code).toBe(0);
    expect(prompt.stdout).toContain('rule      prompts.summarize');
    const method = await run([...base, '--method', 'files/reindex', '--scopes', 'files:read']);
    expect(method.code).toBe(1);
    expect(method.stdout).toContain('missing   files:admin');
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
