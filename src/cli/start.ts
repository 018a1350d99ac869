import { startGateway } from '../server/gateway.js';
import { identityKeyProblems } from '../upstream/identity/key-problems.js';
import { loadFromArgs } from './config-arg.js';
import { runUntilSignal } from './signals.js';

/**
 * `portcullis start --config FILE`: the gateway alone; the file is watched, SIGHUP re-reads it,
 * SIGUSR2 reopens the audit file.
 */
export async function runStart(args: string[]): Promise<number> {
  const found = loadFromArgs(args, 'start');
  if (!found) return 1;
  // Keys that cannot sign refuse the start with one line each, as `check` prints them.
  const keyProblems = identityKeyProblems(found.loaded.config);
  if (keyProblems.length > 0) {
    for (const problem of keyProblems) process.stderr.write(`error: ${problem}\n`);
    return 1;
  }
  const gateway = await startGateway({
    config: found.loaded.config,
    configPath: found.path,
    configSource: found.loaded.source,
  });
  const onHangup = () => {
    gateway
      .reload()
      .catch((err: unknown) => process.stderr.write(`portcullis: reload failed: ${String(err)}\n`));
  };
  // logrotate moved the audit file: write to a new one at the configured path.
  const onRotate = () => gateway.reopenAudit();
  process.on('SIGHUP', onHangup);
  process.on('SIGUSR2', onRotate);
  await runUntilSignal(() => gateway.close());
  process.off('SIGHUP', onHangup);
  process.off('SIGUSR2', onRotate);
  return 0;
}
