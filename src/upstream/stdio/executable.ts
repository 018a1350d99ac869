import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import type { StdioUpstreamConfig } from '../../config/schema.js';

/**
 * The file `spec.command[0]` runs, found as the child's `spawn` will find it: a name with a slash
 * as a path (relative to `cwd`), any other name on the child's `PATH` (its `env.PATH`, else the
 * gateway's). Undefined when nothing executable is there. Used by `portcullis check`, so a typo in
 * a command shows before the first caller meets a 502.
 */
export function findExecutable(
  spec: Pick<StdioUpstreamConfig, 'command' | 'env' | 'cwd'>,
  gatewayPath: string | undefined = process.env.PATH,
): string | undefined {
  const program = spec.command[0] ?? '';
  if (program.includes('/')) {
    const file = isAbsolute(program) ? program : resolve(spec.cwd ?? process.cwd(), program);
    return isExecutableFile(file) ? file : undefined;
  }
  const path = spec.env.PATH ?? gatewayPath ?? '';
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const file = join(dir, program);
    if (isExecutableFile(file)) return file;
  }
  return undefined;
}

function isExecutableFile(file: string): boolean {
  try {
    if (!statSync(file).isFile()) return false;
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}
