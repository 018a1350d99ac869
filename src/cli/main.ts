#!/usr/bin/env node
// The entry point imports nothing at load time: on a Node too old for the gateway's dependencies
// the user gets the version it needs and how to get it, not a stack trace from deep in one of them.
import { checkNodeVersion } from './node-version.js';

const refusal = checkNodeVersion(process.versions.node);
if (refusal !== undefined) {
  process.stderr.write(refusal);
  process.exitCode = 1;
} else {
  const { runCli } = await import('./commands.js');
  process.exitCode = await runCli(process.argv.slice(2));
}
