import { parseArgs } from 'node:util';
import { newApiKey } from '../auth/api-key.js';

const USAGE =
  'Usage: portcullis keys new [--prefix pk_live_] [--id NAME]\n       portcullis keys jwks --config FILE\n';

/**
 * `portcullis keys new [--prefix pk_live_] [--id NAME]`: a new 256-bit API key and the policy line
 * that accepts it. The key is printed once, to stdout; only its hash goes into the policy.
 * `portcullis keys jwks` is keys-jwks.ts.
 */
export async function runKeys(args: string[]): Promise<number> {
  if (args[0] === 'jwks') return (await import('./keys-jwks.js')).runKeysJwks(args.slice(1));
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
