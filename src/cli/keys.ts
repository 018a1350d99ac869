import { parseArgs } from 'node:util';
import { newApiKey } from '../auth/api-key.js';
import { createAssertions } from '../upstream/identity/assertions.js';
import { signingKeyProblems } from '../upstream/identity/signing-keys.js';
import { loadFromArgs } from './config-arg.js';

const USAGE =
  'Usage: portcullis keys new [--prefix pk_live_] [--id NAME]\n       portcullis keys jwks --config FILE\n';

/**
 * `portcullis keys new [--prefix pk_live_] [--id NAME]`: a new 256-bit API key and the policy line
 * that accepts it. The key is printed once, to stdout; only its hash goes into the policy.
 * `portcullis keys jwks --config FILE`: the JWKS of `gatewayIdentity.signingKeys` (public halves
 * only), for upstreams that verify the gateway's assertions without fetching it.
 */
export async function runKeys(args: string[]): Promise<number> {
  if (args[0] === 'jwks') return writeJwks(args.slice(1));
  const { positionals, values } = parseArgs({
    args,
    options: { prefix: { type: 'string', default: '' }, id: { type: 'string', default: 'my-client' } },
    allowPositionals: true,
    strict: true,
  });
  if (positionals[0] !== 'new' || positionals.length !== 1) {
    process.stderr.write(USAGE);
    return 2;
  }
  if (!/^[A-Za-z0-9_-]*$/.test(values.prefix)) {
    process.stderr.write('portcullis keys: --prefix may contain only letters, digits, _ and -\n');
    return 2;
  }
  const { key, hash } = newApiKey(values.prefix);
  process.stdout.write(
    `key (give it to the client; it is not stored anywhere):\n${key}\n\n` +
      `policy line (identities.apiKeys):\n- { id: ${values.id}, hash: "${hash}", scopes: [] }\n`,
  );
  return 0;
}

async function writeJwks(args: string[]): Promise<number> {
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
