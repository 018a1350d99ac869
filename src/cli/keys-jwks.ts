import { createAssertions } from '../upstream/identity/assertions.js';
import { signingKeyProblems } from '../upstream/identity/signing-keys.js';
import { loadFromArgs } from './config-arg.js';

/**
 * `portcullis keys jwks --config FILE`: the JWKS of `gatewayIdentity.signingKeys` — public halves
 * only, as the gateway serves it at `/.well-known/jwks.json` — for upstreams that verify the
 * gateway's assertions with keys they are given rather than fetch.
 */
export async function runKeysJwks(args: string[]): Promise<number> {
  const found = loadFromArgs(args, 'keys jwks');
  if (!found) return 1;
  const identity = found.loaded.config.gatewayIdentity;
  if (identity === undefined) {
    process.stderr.write(`portcullis keys jwks: ${found.path} has no gatewayIdentity\n`);
    return 1;
  }
  const problems = signingKeyProblems(found.loaded.config);
  if (problems.length > 0) {
    for (const problem of problems) process.stderr.write(`error: ${problem}\n`);
    return 1;
  }
  process.stdout.write(`${(await createAssertions(identity)).jwks}\n`);
  return 0;
}
