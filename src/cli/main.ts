#!/usr/bin/env node
import { runAudit } from './audit.js';
import { runCheck } from './check.js';
import { runDemo } from './demo.js';
import { runExplain } from './explain.js';
import { runKeys } from './keys.js';
import { runSchema } from './schema.js';
import { runStart } from './start.js';
import { runPolicyTests } from './test.js';

const USAGE = `Usage: portcullis <command> [options]

Commands:
  start  --config FILE     run the gateway
  check  --config FILE     validate a policy file; print routes, upstreams, methods, tools and scopes
  demo                     start a demo MCP server and the gateway in front of it (npm start)
  keys new [--prefix P]    a new API key and the sha256 line for the policy
  explain --config F --route R (--tool T|--resource U|--prompt P|--method M) (--scopes a,b|--key-stdin|--token-stdin)
                           what the policy decides for one call, and why
  test --config F TESTS    expected decisions from a YAML file; exit 1 on a mismatch
  schema                   print the policy file's JSON Schema
  audit verify FILE [--key-env VAR] [--after SEQ:MAC]
                           check an audit file's HMAC chain; exit 1 at the first broken link
`;

const commands: Record<string, (args: string[]) => Promise<number>> = {
  start: runStart,
  check: runCheck,
  demo: runDemo,
  keys: runKeys,
  explain: runExplain,
  test: runPolicyTests,
  schema: runSchema,
  audit: runAudit,
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
