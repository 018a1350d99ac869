import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadFromArgs } from '../../../src/cli/config-arg.js';
import { runCommand } from '../../support/command.js';
import { MINIMAL_POLICY } from '../../support/config.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-config-arg-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** `loadFromArgs(args, 'check')`, its result and what it printed. */
async function load(args: string[]) {
  let found: ReturnType<typeof loadFromArgs>;
  const output = await runCommand(async (a) => {
    found = loadFromArgs(a, 'check');
    return found === undefined ? 1 : 0;
  }, args);
  return { found, stderr: output.stderr, stdout: output.stdout };
}

describe('loadFromArgs', () => {
  it('loads the file --config (or -c) names, and returns its path', async () => {
    const file = join(dir, 'good.yaml');
    writeFileSync(file, MINIMAL_POLICY);
    for (const flag of ['--config', '-c']) {
      const { found, stderr } = await load([flag, file]);
      expect(stderr).toBe('');
      expect(found?.path).toBe(file);
      expect(found?.loaded.config.routes.map((r) => r.route)).toEqual(['/mcp']);
    }
  });

  it('requires --config, naming the command', async () => {
    const { found, stderr } = await load([]);
    expect(found).toBeUndefined();
    expect(stderr).toBe('portcullis check: --config FILE is required\n');
  });

  it('says it cannot read a missing file', async () => {
    const file = join(dir, 'missing.yaml');
    const { found, stderr } = await load(['--config', file]);
    expect(found).toBeUndefined();
    expect(stderr).toBe(`portcullis check: cannot read ${file}\n`);
  });

  it('prints every problem of an invalid file, with file:line:column, and their count', async () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(
      file,
      MINIMAL_POLICY.replace('http://127.0.0.1:3000/mcp', 'ftp://x').replace('/mcp\n', '/mcp\n    tpyo: 1\n'),
    );
    const { found, stderr } = await load(['--config', file]);
    expect(found).toBeUndefined();
    const lines = stderr.trimEnd().split('\n');
    expect(lines.at(-1)).toBe(`2 problem(s) in ${file}`);
    expect(lines.slice(0, -1)).toHaveLength(2);
    // Each problem names the file as the operator knows it, with line and column.
    for (const line of lines.slice(0, -1)) expect(line).toMatch(/^bad\.yaml:\d+:\d+ routes\[0\]\./);
    expect(stderr).toContain('bad.yaml:5:5 routes[0].tpyo: unknown key');
    expect(stderr).toContain('routes[0].upstream: must be an http(s) URL');
  });

  it('lets an unknown option throw, as parseArgs reports it', async () => {
    await expect(load(['--config', 'x', '--nope'])).rejects.toThrow(/--nope/);
  });
});
