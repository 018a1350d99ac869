import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { type ChainHead, createVerifier, GENESIS, parseHead } from '../audit/chain.js';
import { chainHeadText } from '../audit/stream.js';

const USAGE =
  'Usage: portcullis audit verify FILE [--key-env VAR] [--after SEQ:MAC]\n' +
  '  --key-env VAR     the environment variable holding audit.chainKey (default AUDIT_CHAIN_KEY)\n' +
  '  --after SEQ:MAC   the head of the file before this one (a rotated file starts mid-chain)\n';

/**
 * `portcullis audit verify FILE`: checks the HMAC chain of an audit file and reports the first
 * broken link (exit 1), or the number of records and the chain head to compare with the last
 * `audit chain head` line of the operational log — a truncated tail shows there (exit 0).
 */
export async function runAudit(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub !== 'verify') {
    process.stderr.write(USAGE);
    return 2;
  }
  let parsed: ReturnType<typeof parseVerifyArgs>;
  try {
    parsed = parseVerifyArgs(rest);
  } catch (err) {
    process.stderr.write(`portcullis audit verify: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  const { file, keyEnv, after } = parsed;
  const key = process.env[keyEnv];
  if (key === undefined || key === '') {
    process.stderr.write(
      `portcullis audit verify: ${keyEnv} is not set (the audit.chainKey the gateway used)\n`,
    );
    return 2;
  }
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Number.POSITIVE_INFINITY });
  const verifier = createVerifier(key, after);
  try {
    for await (const line of lines) verifier.check(line);
  } catch (err) {
    process.stderr.write(
      `portcullis audit verify: cannot read ${file}: ${(err as NodeJS.ErrnoException).code}\n`,
    );
    return 2;
  }
  const result = verifier.result();
  if (result.broken !== undefined) {
    const { line, seq, why } = result.broken;
    process.stdout.write(
      `BROKEN at line ${line}${seq === undefined ? '' : ` (seq ${seq})`}: ${why}\n` +
        `${result.records} record(s) before it verified; last good head ${chainHeadText(result.head)}\n`,
    );
    return 1;
  }
  const torn = result.skipped
    .map((line) => `line ${line} is torn (a crash mid-write); the chain continues past it\n`)
    .join('');
  process.stdout.write(
    `${torn}OK: ${result.records} record(s) verified; chain head ${chainHeadText(result.head)}\n` +
      'Compare the head with the last "audit chain head" line of the operational log: a later head there means records are missing from the end.\n',
  );
  return 0;
}

function parseVerifyArgs(args: string[]): { file: string; keyEnv: string; after: ChainHead } {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { 'key-env': { type: 'string' }, after: { type: 'string' } },
  });
  const [file, ...extra] = positionals;
  if (file === undefined || extra.length > 0) throw new Error('one FILE is required');
  let after = GENESIS;
  if (values.after !== undefined) {
    const head = parseHead(values.after);
    if (head === undefined) throw new Error('--after takes SEQ:MAC (64 hex digits), as the log prints it');
    after = head;
  }
  return { file, keyEnv: values['key-env'] ?? 'AUDIT_CHAIN_KEY', after };
}
