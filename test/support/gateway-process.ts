/**
 * The gateway as an operator runs it: the built CLI (`dist/cli/main.js`) in a process of its own,
 * for what only a real process shows — signals (SIGTERM drain, SIGUSR2 reopen), exit codes, and
 * the operational log on stderr.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { sleep } from './wait.js';

/** The repository root. */
export const ROOT = join(import.meta.dirname, '../..');
/** The built CLI entry (`npm run build` writes it). */
export const CLI = join(ROOT, 'dist/cli/main.js');

/**
 * Builds `dist/` when the CLI is missing or older than any of `sources` (paths under the
 * repository root), so a test of the CLI never runs yesterday's code.
 */
export function ensureBuilt(sources: readonly string[], built = 'dist/cli/main.js'): void {
  const target = join(ROOT, built);
  const stale =
    !existsSync(CLI) ||
    !existsSync(target) ||
    sources.some((s) => statSync(join(ROOT, s)).mtimeMs > statSync(target).mtimeMs);
  if (stale) {
    const result = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`npm run build failed:\n${result.stdout}\n${result.stderr}`);
  }
}

/** A running `portcullis start` process. */
export interface GatewayProcess {
  readonly child: ChildProcess;
  /** Everything the process wrote to stderr so far (its operational log). */
  readonly stderr: string;
  /** SIGKILLs the process if it is still running (for `afterAll`). */
  kill(): void;
}

/**
 * Spawns `portcullis start --config <config>` with `env` (default: this process's environment) and
 * resolves once it has logged `portcullis listening` — failing the test if that takes over 5 s.
 */
export async function startGatewayProcess(config: string, env?: NodeJS.ProcessEnv): Promise<GatewayProcess> {
  const child = spawn(process.execPath, [CLI, 'start', '--config', config], {
    stdio: ['ignore', 'ignore', 'pipe'],
    ...(env === undefined ? {} : { env }),
  });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    stderr += chunk;
  });
  for (let i = 0; i < 100 && !stderr.includes('portcullis listening'); i++) await sleep(50);
  expect(stderr).toContain('portcullis listening');
  return {
    child,
    get stderr() {
      return stderr;
    },
    kill() {
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
