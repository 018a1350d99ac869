import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect, vi } from 'vitest';
import { runPin } from '../../src/cli/pin.js';

/**
 * Writes `policy` to `dir/portcullis.yaml` and pins route `route` with the real
 * `portcullis pin --write` (its diff output kept off the test log): what a user approves.
 */
export async function pinWithCli(dir: string, policy: string, route = '/mcp'): Promise<string> {
  const file = join(dir, 'portcullis.yaml');
  writeFileSync(file, policy);
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    expect(await runPin(['--config', file, '--route', route, '--write'])).toBe(0);
  } finally {
    stdout.mockRestore();
  }
  return file;
}
