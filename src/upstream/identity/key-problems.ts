import type { Config } from '../../config/schema.js';
import { signingKeyProblems } from './signing-keys.js';
import { clientKeyProblems } from './token-exchange.js';

/**
 * Every key file the policy names for identity to the upstream that cannot be used — the
 * gateway's signing keys and token-exchange client keys — one line each. `start` and `check`
 * refuse the file, a reload keeps the running policy.
 */
export function identityKeyProblems(config: Config): string[] {
  return [...signingKeyProblems(config), ...clientKeyProblems(config)];
}
