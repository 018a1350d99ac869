import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { runKeys } from '../../../src/cli/keys.js';
import { parseConfig } from '../../../src/config/load.js';
import { runBuiltCli } from '../../support/cli.js';
import { runCommand } from '../../support/command.js';

/** The key and the policy line `keys new` printed. */
function printed(stdout: string): { key: string; line: string } {
  const lines = stdout.split('\n');
  const key = lines[lines.indexOf('key (give it to the client; it is not stored anywhere):') + 1] ?? '';
  const line = lines.find((l) => l.startsWith('- { id: ')) ?? '';
  return { key, line };
}

describe('portcullis keys new', () => {
  it('prints a new key and a policy line whose hash accepts exactly that key', async () => {
    const { code, stdout, stderr } = await runCommand(runKeys, [
      'new',
      '--prefix',
      'pk_live_',
      '--id',
      'ci-bot',
    ]);
    expect(code).toBe(0);
    expect(stderr).toBe('');
    const { key, line } = printed(stdout);
    expect(key).toMatch(/^pk_live_[A-Za-z0-9_-]{40,}$/);
    expect(line).toMatch(/^- \{ id: ci-bot, hash: "sha256:[0-9a-f]{64}", scopes: \[\] \}$/);
    // The line is a valid identities.apiKeys entry holding the printed key's SHA-256.
    const config = parseConfig(
      `identities:\n  apiKeys:\n  ${line}\nroutes:\n  - route: /mcp\n    resource: http://127.0.0.1/mcp\n    upstream: http://127.0.0.1:1/mcp\n    authentication: { methods: [apiKey] }\n`,
      { env: {} },
    );
    const hash = `sha256:${createHash('sha256').update(key, 'utf8').digest('hex')}`;
    expect(config.identities.apiKeys).toEqual([{ id: 'ci-bot', hash, scopes: [] }]);
    // The key itself is never part of the policy line.
    expect(line).not.toContain(key);
  });

  it('prints a different key each time, with the default id', async () => {
    const one = printed((await runCommand(runKeys, ['new'])).stdout);
    const two = printed((await runCommand(runKeys, ['new'])).stdout);
    expect(one.key).not.toBe(two.key);
    expect(one.line).toContain('id: my-client');
  });

  it.each([[[]], [['old']], [['new', 'extra']]])('refuses %j with the usage, exit 2', async (args) => {
    const { code, stdout, stderr } = await runCommand(runKeys, args);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('Usage: portcullis keys new');
  });

  it('refuses a prefix that is not letters, digits, _ and -', async () => {
    const { code, stdout, stderr } = await runCommand(runKeys, ['new', '--prefix', 'pk live"']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('--prefix may contain only letters, digits, _ and -');
  });
});

describe('portcullis keys new, the built CLI', () => {
  it('prints a prefixed key and a policy line with its sha256 that the policy schema accepts', async () => {
    const { code, stdout } = await runBuiltCli(['keys', 'new', '--prefix', 'pk_live_', '--id', 'ci-bot']);
    expect(code).toBe(0);
    const key = stdout.split('\n')[1] ?? '';
    expect(key).toMatch(/^pk_live_[A-Za-z0-9_-]{40,}$/);
    const line = stdout.slice(stdout.indexOf('- {'));
    const [entry] = parseYaml(line) as [{ id: string; hash: string }];
    expect(entry.id).toBe('ci-bot');
    expect(entry.hash).toBe(`sha256:${createHash('sha256').update(key).digest('hex')}`);
    const config = parseConfig(
      `identities:\n  apiKeys:\n    ${line.trim()}\nroutes:\n  - { route: /mcp, resource: http://127.0.0.1/mcp, upstream: http://127.0.0.1:1/mcp, authentication: { methods: [apiKey] } }\n`,
      { env: {} },
    );
    expect(config.identities.apiKeys[0]?.hash).toBe(entry.hash);
  });

  it('prints a different key each time', async () => {
    const [a, b] = await Promise.all([runBuiltCli(['keys', 'new']), runBuiltCli(['keys', 'new'])]);
    expect(a.stdout.split('\n')[1]).not.toBe(b.stdout.split('\n')[1]);
  });

  it('refuses a prefix outside letters, digits, _ and -, and a missing subcommand (exit 2)', async () => {
    expect((await runBuiltCli(['keys', 'new', '--prefix', 'pk live'])).code).toBe(2);
    expect((await runBuiltCli(['keys'])).code).toBe(2);
  });
});
