import { createHmac, timingSafeEqual } from 'node:crypto';
import { closeSync, openSync, readSync, statSync } from 'node:fs';

/**
 * Tamper evidence for the audit trail (DESIGN.md step 10). Each record carries `seq` (1, 2, …) and
 * `mac` = HMAC-SHA-256(chainKey, previous mac ‖ the record's own JSON without its mac), so an edited,
 * deleted, reordered or inserted record breaks the chain at that point, and nobody without the key
 * can forge a chain. The MAC covers the exact bytes written — the line up to `,"mac":` — so a
 * verifier never re-serializes anything. The first record's previous mac is the empty string.
 */
export interface ChainHead {
  readonly seq: number;
  readonly mac: string;
}

export const GENESIS: ChainHead = { seq: 0, mac: '' };

const MAC_FIELD = ',"mac":"';

function macOf(key: string, previous: string, body: string): string {
  return createHmac('sha256', key).update(previous).update(body).digest('hex');
}

/** Appends records to a chain that starts after `head`. */
export interface Chain {
  /** `record` (a JSON object without `seq`/`mac`) as its chained line, newline included. */
  seal(record: object): string;
  head(): ChainHead;
}

export function createChain(key: string, head: ChainHead = GENESIS): Chain {
  let { seq, mac } = head;
  return {
    seal(record) {
      seq++;
      // `seq` first, so it reads first. Spliced into the record's JSON rather than spread into a
      // copy of the record: this runs once per audit record.
      const json = JSON.stringify(record);
      const body = json === '{}' ? `{"seq":${seq}}` : `{"seq":${seq},${json.slice(1)}`;
      mac = macOf(key, mac, body);
      return `${body.slice(0, -1)}${MAC_FIELD}${mac}"}\n`;
    },
    head: () => ({ seq, mac }),
  };
}

/** A line split into the bytes its MAC covers and the MAC; undefined when it has no MAC. */
function splitLine(line: string): { body: string; mac: string } | undefined {
  const at = line.lastIndexOf(MAC_FIELD);
  if (at === -1 || !line.endsWith('"}')) return undefined;
  const mac = line.slice(at + MAC_FIELD.length, -2);
  if (!/^[0-9a-f]{64}$/.test(mac)) return undefined;
  return { body: `${line.slice(0, at)}}`, mac };
}

function seqOf(body: string): number | undefined {
  try {
    const seq = (JSON.parse(body) as { seq?: unknown }).seq;
    return typeof seq === 'number' && Number.isSafeInteger(seq) && seq > 0 ? seq : undefined;
  } catch {
    return undefined;
  }
}

/** Where a chain is broken: the line (1-based), the `seq` it claims if any, and why. */
export interface BrokenLink {
  readonly line: number;
  readonly seq: number | undefined;
  readonly why: string;
}

export interface Verification {
  /** Records checked and found linked. */
  readonly records: number;
  readonly head: ChainHead;
  readonly broken?: BrokenLink;
  /** Lines torn by a crash that the chain continues past (their record was never chained). */
  readonly skipped: readonly number[];
}

/** Checks lines one at a time, so a file of any size is verified as it is read. */
export interface Verifier {
  /** The next line; a broken link stops the check (later lines are not looked at). */
  check(line: string): void;
  result(): Verification;
}

/**
 * Checks a file's lines in order against `key`. A file that starts mid-chain (the rotated
 * continuation of another) is checked from `after` — the head of the file before it.
 */
export function createVerifier(key: string, after: ChainHead = GENESIS): Verifier {
  let head = after;
  let number = 0;
  let records = 0;
  let broken: BrokenLink | undefined;
  /** A line that is no record, waiting to see whether the chain continues past it. */
  let torn: BrokenLink | undefined;
  const skipped: number[] = [];
  return {
    check(line) {
      if (broken !== undefined) return;
      number++;
      if (line === '') return;
      const split = splitLine(line);
      const seq = split === undefined ? undefined : seqOf(split.body);
      // A pending torn line is the first broken link when the chain does not continue past it.
      const fail = (why: string) => {
        broken = torn ?? { line: number, seq, why };
      };
      if (split === undefined || seq === undefined) {
        // Perhaps a line torn by a crash: acceptable only if the next record continues the chain
        // from the record before it (so it was never part of the chain).
        if (torn !== undefined) return fail('not a chained record');
        torn = {
          line: number,
          seq,
          why: split === undefined ? 'not a chained record (no mac)' : 'no valid seq',
        };
        return;
      }
      if (seq !== head.seq + 1) {
        return fail(
          seq <= head.seq
            ? `seq ${seq} after ${head.seq}: a record repeated or reordered`
            : `seq ${seq} after ${head.seq}: ${seq - head.seq - 1} record(s) missing${head.seq === 0 ? ' (a rotated file? pass --after SEQ:MAC of the file before)' : ''}`,
        );
      }
      const expected = Buffer.from(macOf(key, head.mac, split.body), 'hex');
      if (!timingSafeEqual(expected, Buffer.from(split.mac, 'hex')))
        return fail('mac does not match: the record was changed, or the chain was made with another key');
      if (torn !== undefined) skipped.push(torn.line);
      torn = undefined;
      head = { seq, mac: split.mac };
      records++;
    },
    result() {
      // A torn last line is a broken link too: a crash the gateway never recovered from, or a file
      // cut or edited there.
      const last =
        broken ??
        (torn === undefined
          ? undefined
          : { ...torn, why: `${torn.why}; the last line, and no record continues the chain past it` });
      return { records, head, skipped, ...(last === undefined ? {} : { broken: last }) };
    },
  };
}

export function verifyChain(lines: Iterable<string>, key: string, after: ChainHead = GENESIS): Verification {
  const verifier = createVerifier(key, after);
  for (const line of lines) verifier.check(line);
  return verifier.result();
}

/**
 * The head of the chain a file ends with, read from its end without reading it whole; GENESIS for
 * a missing or empty file, undefined when no chained record ends it (passing over one torn last
 * line): records written without a key — the caller says so and starts a new chain.
 */
export function readChainHead(path: string): ChainHead | undefined {
  return readTail(path).head;
}

/**
 * The file's chain head (as `readChainHead`), and whether it ends in the middle of a line (a crash
 * mid-write: appending must start on a new line, or the next record is glued onto the torn one).
 */
export function readTail(path: string): { head: ChainHead | undefined; midLine: boolean } {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { head: GENESIS, midLine: false };
    throw err;
  }
  if (size === 0) return { head: GENESIS, midLine: false };
  const fd = openSync(path, 'r');
  try {
    const last = Buffer.alloc(1);
    readSync(fd, last, 0, 1, size - 1);
    const midLine = last[0] !== 0x0a;
    // Read backwards in blocks, line by line from the end, to the last chained record: a line torn
    // by a crash is passed over, so the chain continues from the record before it (and `verify`
    // accepts the torn line only because the next record continues that chain).
    const block = 65_536;
    let tail = Buffer.alloc(0);
    let position = size;
    while (position > 0 && size - position < MAX_TAIL_SCAN) {
      const length = Math.min(block, position);
      position -= length;
      const chunk = Buffer.alloc(length);
      readSync(fd, chunk, 0, length, position);
      tail = Buffer.concat([chunk, tail]);
      const lines = tail.toString('utf8').split('\n');
      // The first piece may be the end of a line that starts in an earlier block.
      const complete = position === 0 ? lines : lines.slice(1);
      let passed = 0;
      for (let i = complete.length - 1; i >= 0; i--) {
        const line = complete[i] as string;
        if (line === '') continue;
        const split = splitLine(line);
        const seq = split === undefined ? undefined : seqOf(split.body);
        if (split !== undefined && seq !== undefined) return { head: { seq, mac: split.mac }, midLine };
        // One torn last line is passed over, as `verify` passes over one; more is no crash.
        if (++passed > 1) return { head: undefined, midLine };
      }
    }
    return { head: undefined, midLine };
  } finally {
    closeSync(fd);
  }
}

/** How far back from the end a restart looks for the last chained record. */
const MAX_TAIL_SCAN = 4 * 1024 * 1024;

/** `SEQ:MAC` as `--after` takes it and the operational log prints it. */
export function parseHead(text: string): ChainHead | undefined {
  const match = /^(\d+):([0-9a-f]{64})$/.exec(text);
  const seq = Number(match?.[1]);
  return match === null || !Number.isSafeInteger(seq) || seq < 1
    ? undefined
    : { seq, mac: match[2] as string };
}
