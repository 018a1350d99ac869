/**
 * Runs a CLI command's function (`runKeys`, `runExplain`…) in this process, as `main` would, and
 * returns its exit code with what it wrote: stdout and stderr are captured, and stdin is `input`.
 */
import { Readable } from 'node:stream';
import { vi } from 'vitest';

export interface CommandResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export async function runCommand(
  run: (args: string[]) => Promise<number>,
  args: readonly string[],
  input = '',
): Promise<CommandResult> {
  let stdout = '';
  let stderr = '';
  const capture = (append: (text: string) => void) => (chunk: string | Uint8Array) => {
    append(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
    return true;
  };
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(
    capture((text) => {
      stdout += text;
    }) as typeof process.stdout.write,
  );
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(
    capture((text) => {
      stderr += text;
    }) as typeof process.stderr.write,
  );
  const stdin = vi
    .spyOn(process, 'stdin', 'get')
    .mockReturnValue(Readable.from([Buffer.from(input)]) as unknown as typeof process.stdin);
  try {
    const code = await run([...args]);
    return { code, stdout, stderr };
  } finally {
    out.mockRestore();
    err.mockRestore();
    stdin.mockRestore();
  }
}
