/** `portcullis keys new` as a user runs it: the key is printed once, the policy line holds its hash. */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { parseConfig } from '../../../src/config/load.js';
import { runBuiltCli } from '../../support/cli.js';

describe('keys new', () => {
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
