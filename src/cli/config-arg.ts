import { parseArgs } from 'node:util';
import { ConfigError, type LoadedConfig, loadConfigFile } from '../config/load.js';

/**
 * Parses `--config FILE` (and the `flags` the command takes, as `parseArgs` options: booleans,
 * and strings read from `values`) and loads the file; prints every problem and returns undefined
 * when it is bad.
 */
export function loadFromArgs(
  args: string[],
  command: string,
  flags: Readonly<Record<string, { readonly type: 'boolean' | 'string' }>> = {},
):
  | {
      loaded: LoadedConfig;
      path: string;
      flags: ReadonlySet<string>;
      values: Readonly<Record<string, unknown>>;
    }
  | undefined {
  const { values } = parseArgs({
    args,
    options: { ...flags, config: { type: 'string', short: 'c' } },
    strict: true,
  });
  const given = values as Readonly<Record<string, unknown>>;
  const set = new Set(Object.keys(flags).filter((flag) => given[flag] === true));
  if (typeof values.config !== 'string') {
    process.stderr.write(`portcullis ${command}: --config FILE is required\n`);
    return undefined;
  }
  try {
    return { loaded: loadConfigFile(values.config), path: values.config, flags: set, values: given };
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n${err.problems.length} problem(s) in ${values.config}\n`);
      return undefined;
    }
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      process.stderr.write(`portcullis ${command}: cannot read ${values.config}\n`);
      return undefined;
    }
    throw err;
  }
}
