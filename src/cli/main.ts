#!/usr/bin/env node
import { runCheck } from './check.js';
import { runDemo } from './demo.js';
import { runKeys } from './keys.js';
import { runSchema } from './schema.js';
import { runStart } from './start.js';

const USAGE = `Usage: portcullis <command> [options]

Commands:
  start  --config FILE     run the gateway
  check  --config FILE     validate a policy file; print routes, upstreams, methods, tools and scopes
  demo                     start a demo MCP server and the gateway in front of it (npm start)
  keys new [--prefix P]    a new API key and the sha256 line for the policy
  schema                   print the policy file's JSON Schema
`;

const commands: Record<string, (args: string[]) => Promise<number>> = {
  start: runStart,
  check: runCheck,
  demo: runDemo,
  keys: runKeys,
  schema: runSchema,
};

const [name, ...args] = process.argv.slice(2);
const command = name === undefined ? undefined : commands[name];
if (command === undefined) {
  process.stderr.write(USAGE);
  process.exitCode = name === undefined || name === '--help' || name === 'help' ? 0 : 2;
} else {
  command(args).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(
        `portcullis ${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
      );
      process.exitCode = 1;
    },
  );
}
