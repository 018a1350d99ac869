import { parseArgs } from 'node:util';
import { type ChainHead, GENESIS, parseHead, type Verification, verifyFile } from '../audit/chain.js';
import { chainHeadText } from '../audit/stream.js';

const USAGE =
  'Usage: portcullis audit verify FILE [--key-env VAR] [--after SEQ:MAC]\n' +
  '  --key-env VAR     the environment variable holding audit.chainKey (default AUDIT_CHAIN_KEY)\n' +
  '  --after SEQ:MAC   the head of the file before this one (a rotated file starts mid-chain)\n';

/**
 * `portcullis audit verify FILE`: checks the HMAC chain of an audit file and reports the first
 * broken link (exit 1), or the number of records and the chain head to compare with the last
 * `audit chain head` line of the operational log — a truncated tail shows there (exit 0). Only an
 * unterminated last line, or a torn line the next record declares, may lack a chain link: any
 * other line without one is a broken link, named (the rule is in `audit/chain.ts`).
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
  let result: Verification;
  try {
    result = await verifyFile(file, key, after);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === undefined) throw err; // not the file but a bug: keep the stack
    process.stderr.write(`portcullis audit verify: cannot read ${file}: ${code}\n`);
    return 2;
  }
  if (result.broken !== undefined) {
    const { line, seq, why } = result.broken;
    process.stdout.write(
      `BROKEN at line ${line}${seq === undefined ? '' : ` (seq ${seq})`}: ${why}\n` +
        `${result.records} record(s) before it verified; last good head ${chainHeadText(result.head)}\n`,
    );
    return 1;
  }
  const torn =
    result.skipped
      .map(
        (line) =>
          `line ${line} is torn (a crash mid-write); the gateway ended it at restart and the next record declares it\n`,
      )
      .join('') +
    (result.tornTail === undefined
      ? ''
      : `line ${result.tornTail}, the last, is torn and has no newline: the gateway crashed while writing it (or is writing it now); it is no record\n`);
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
