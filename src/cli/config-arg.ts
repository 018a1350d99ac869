import { parseArgs } from 'node:util';
import { ConfigError, type LoadedConfig, loadConfigFile } from '../config/load.js';

/** Parses `--config FILE` and loads it; prints every problem and returns undefined when it is bad. */
export function loadFromArgs(
  args: string[],
  command: string,
): { loaded: LoadedConfig; path: string } | undefined {
  const { values } = parseArgs({ args, options: { config: { type: 'string', short: 'c' } }, strict: true });
  if (values.config === undefined) {
    process.stderr.write(`portcullis ${command}: --config FILE is required\n`);
    return undefined;
  }
  try {
    return { loaded: loadConfigFile(values.config), path: values.config };
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
