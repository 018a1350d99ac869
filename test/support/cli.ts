/** The built CLI (`dist/cli/main.js`) run as a user runs it: a child process, real files. */
import { execFile } from 'node:child_process';
import { CLI } from './gateway-process.js';

export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `portcullis …args` with `input` on stdin (closed at once when there is none). */
export function runBuiltCli(args: readonly string[], input = ''): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [CLI, ...args], (err, stdout, stderr) =>
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(input);
  });
}
