import { startGateway } from '../server/gateway.js';
import { loadFromArgs } from './config-arg.js';
import { runUntilSignal } from './signals.js';

/** `portcullis start --config FILE`: the gateway alone. */
export async function runStart(args: string[]): Promise<number> {
  const found = loadFromArgs(args, 'start');
  if (!found) return 1;
  const gateway = await startGateway({ config: found.loaded.config });
  await runUntilSignal(() => gateway.close());
  return 0;
}
