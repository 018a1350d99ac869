import { createHash, createHmac, createSecretKey, type KeyObject, timingSafeEqual } from 'node:crypto';
import { closeSync, createReadStream, openSync, readSync, statSync } from 'node:fs';

/**
 * Tamper evidence for the audit trail (DESIGN.md step 11). Each record carries `seq` (1, 2, …) and
 * `mac` = HMAC-SHA-256(chainKey, previous mac ‖ the record's own JSON without its mac), so an edited,
 * deleted, reordered or inserted record breaks the chain at that point, and nobody without the key
 * can forge a chain. The MAC covers the exact bytes written — the line up to `,"mac":` — so a
 * verifier never re-serializes anything. The first record's previous mac is the empty string.
 *
 * **Lines without a chain link.** A crash (SIGKILL, power loss) can leave the file's last line cut
 * mid-write. The rule that writer and verifier share:
 * - Only an *unterminated last line* may be torn. The verifier names it and accepts it (it asserts
 *   nothing: it is no record); everything before it must verify.
 * - When the gateway starts on a file whose last line is torn, it ends that line with a newline and
 *   writes, in the same write, a chained record that **declares** it:
 *   `{"seq":N,"time":…,"event":"torn-line","torn":{"bytes":L,"sha256":H}}` — the torn line's
 *   length and SHA-256 (of its bytes, without the newline). The declaration is under the chain's
 *   MAC, so only the key holder can declare a line.
 * - Any other *complete* (newline-terminated) line that is not a record with a valid chain link —
 *   an inserted forged record, a line with no mac, an empty line — is a broken link, unless it is
 *   the one line immediately before a valid record that declares exactly its bytes. A declaration
 *   with no such line before it is a broken link too (the torn line was removed).
 * So a forged line inserted between records, next to a genuine torn line, or at the end with a
 * newline fails verification at that line, while a genuine crash-and-restart file verifies. Files
 * written by gateways before this rule ended a torn line without declaring it: they fail at it.
 */
export interface ChainHead {
  readonly seq: number;
  readonly mac: string;
}

export const GENESIS: ChainHead = { seq: 0, mac: '' };

const MAC_FIELD = ',"mac":"';

/**
 * The chain key as a key object, made once per chain or verifier: a string key is imported into a
 * new key on every `createHmac` — one per audit record.
 */
function chainKeyOf(key: string): KeyObject {
  return createSecretKey(Buffer.from(key, 'utf8'));
}

function macOf(key: KeyObject, previous: string, body: string): string {
  return createHmac('sha256', key).update(previous).update(body).digest('hex');
}

/** Appends records to a chain that starts after `head`. */
export interface Chain {
  /** `record` (a JSON object without `seq`/`mac`) as its chained line, newline included. */
  seal(record: object): string;
  head(): ChainHead;
}

export function createChain(chainKey: string, head: ChainHead = GENESIS): Chain {
  const key = chainKeyOf(chainKey);
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
  return parseRecord(body)?.seq;
}

/** A record's `seq` and the torn line it declares; undefined when the body is no JSON or has no seq. */
function parseRecord(body: string): { seq: number; torn: TornLine | undefined } | undefined {
  let parsed: { seq?: unknown; torn?: unknown };
  try {
    parsed = JSON.parse(body) as { seq?: unknown; torn?: unknown };
  } catch {
    return undefined;
  }
  const { seq } = parsed;
  if (typeof seq !== 'number' || !Number.isSafeInteger(seq) || seq <= 0) return undefined;
  return { seq, torn: declaredTorn(parsed.torn) };
}

/** A torn line as a restart declares it: its length and SHA-256, of its bytes without a newline. */
export interface TornLine {
  readonly bytes: number;
  readonly sha256: string;
}

/** The record a restart writes after ending a torn last line (sealed into the chain). */
export function tornLineRecord(torn: TornLine, time = new Date()): object {
  return { time: time.toISOString(), event: 'torn-line', torn: { bytes: torn.bytes, sha256: torn.sha256 } };
}

/** A line's bytes as writer and verifier both see them: without its newline, nor a CR before it. */
function lineBytes(line: Buffer): Buffer {
  return line.length > 0 && line[line.length - 1] === CR ? line.subarray(0, -1) : line;
}

function tornLineOf(line: Buffer): TornLine {
  const bytes = lineBytes(line);
  return { bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** The torn line a record's `torn` field declares, when it is well-formed. */
function declaredTorn(torn: unknown): TornLine | undefined {
  if (typeof torn !== 'object' || torn === null) return undefined;
  const { bytes, sha256 } = torn as { bytes?: unknown; sha256?: unknown };
  return Number.isSafeInteger(bytes) && typeof sha256 === 'string' && /^[0-9a-f]{64}$/.test(sha256)
    ? { bytes: bytes as number, sha256 }
    : undefined;
}

const CR = 0x0d;
const LF = 0x0a;

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
  /** Torn lines that the next record declares (a crash, then a restart): passed over, named. */
  readonly skipped: readonly number[];
  /** The last line, when it is torn and has no newline: a crash the gateway has not restarted from. */
  readonly tornTail?: number;
}

/** Checks lines one at a time, so a file of any size is verified as it is read. */
export interface Verifier {
  /**
   * The next line, without its newline. `terminated` is false only for a file's last line when no
   * newline ends it. A broken link stops the check (later lines are not looked at).
   */
  check(line: string | Buffer, terminated?: boolean): void;
  result(): Verification;
}

/**
 * A complete line without a valid chain link — no record, or a record whose seq or mac does not
 * follow — held until the next linked record says whether it declares it torn.
 */
interface Unlinked {
  /** The broken link it is, unless declared. */
  readonly link: BrokenLink;
  readonly torn: TornLine;
}

/**
 * Checks a file's lines in order against `key` (the rule is in this module's comment). A file that
 * starts mid-chain (the rotated continuation of another) is checked from `after` — the head of the
 * file before it.
 */
export function createVerifier(chainKey: string, after: ChainHead = GENESIS): Verifier {
  const key = chainKeyOf(chainKey);
  let head = after;
  let number = 0;
  let records = 0;
  let broken: BrokenLink | undefined;
  let tornTail: number | undefined;
  const skipped: number[] = [];
  /**
   * The unlinked lines since the last linked record. The first two are enough: at most one can be
   * declared (the first), so the first that is not declared is the broken link. A file broken for
   * good keeps this run open to its end, holding two entries at most.
   */
  const unlinked: Unlinked[] = [];
  const fail = (link: BrokenLink) => {
    broken = link;
  };
  const hold = (link: BrokenLink, raw: Buffer) => {
    if (unlinked.length < 2) unlinked.push({ link, torn: tornLineOf(raw) });
  };
  return {
    check(line, terminated = true) {
      if (broken !== undefined) return;
      number++;
      if (tornTail !== undefined) {
        // Nothing follows an unterminated line in a file; a caller that passes more is wrong.
        broken = { line: number, seq: undefined, why: 'a line after the unterminated last line' };
        return;
      }
      const raw = typeof line === 'string' ? Buffer.from(line, 'utf8') : line;
      const text = lineBytes(raw).toString('utf8');
      const split = text === '' ? undefined : splitLine(text);
      const record = split === undefined ? undefined : parseRecord(split.body);
      if (split === undefined || record === undefined) {
        if (!terminated && unlinked.length === 0) {
          // The one line that may be torn: the last, with no newline. It asserts nothing.
          tornTail = number;
          return;
        }
        const what =
          text === ''
            ? 'an empty line'
            : split === undefined
              ? 'not a chained record (no mac)'
              : 'no valid seq';
        return hold(
          {
            line: number,
            seq: undefined,
            why: `${what}: a complete line without a chain link, and the next record does not declare it torn (inserted, or edited)`,
          },
          raw,
        );
      }
      const { seq } = record;
      if (seq !== head.seq + 1) {
        return hold(
          {
            line: number,
            seq,
            why:
              seq <= head.seq
                ? `seq ${seq} after ${head.seq}: a record repeated or reordered`
                : `seq ${seq} after ${head.seq}: ${seq - head.seq - 1} record(s) missing${head.seq === 0 ? ' (a rotated file? pass --after SEQ:MAC of the file before)' : ''}`,
          },
          raw,
        );
      }
      const expected = Buffer.from(macOf(key, head.mac, split.body), 'hex');
      if (!timingSafeEqual(expected, Buffer.from(split.mac, 'hex'))) {
        return hold(
          {
            line: number,
            seq,
            why: 'mac does not match: the record was changed, or the chain was made with another key',
          },
          raw,
        );
      }
      // A linked record: it settles the unlinked lines before it.
      const [first, second] = unlinked;
      if (record.torn === undefined) {
        if (first !== undefined) return fail(first.link);
      } else {
        if (first === undefined) {
          broken = {
            line: number,
            seq,
            why: 'declares a torn line before it, and there is none: a line was removed',
          };
          return;
        }
        if (!sameTorn(first.torn, record.torn)) return fail(first.link);
        if (second !== undefined) return fail(second.link);
        skipped.push(first.link.line);
      }
      unlinked.length = 0;
      head = { seq, mac: split.mac };
      records++;
    },
    result() {
      // Unlinked lines that no linked record followed: the first is the broken link.
      const last = broken ?? unlinked[0]?.link;
      return {
        records,
        head,
        skipped,
        ...(last === undefined ? {} : { broken: last }),
        ...(tornTail === undefined || last !== undefined ? {} : { tornTail }),
      };
    },
  };
}

function sameTorn(a: TornLine, b: TornLine): boolean {
  return a.bytes === b.bytes && a.sha256 === b.sha256;
}

/** A whole file's content: lines split at `\n`; a last piece without one is unterminated. */
export function verifyText(text: string | Buffer, key: string, after: ChainHead = GENESIS): Verification {
  const verifier = createVerifier(key, after);
  const bytes = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  let start = 0;
  for (let at = bytes.indexOf(LF); at !== -1; at = bytes.indexOf(LF, start)) {
    verifier.check(bytes.subarray(start, at));
    start = at + 1;
  }
  if (start < bytes.length) verifier.check(bytes.subarray(start), false);
  return verifier.result();
}

/** A file, streamed (any size): as `verifyText`. Rejects when the file cannot be read. */
export async function verifyFile(
  path: string,
  key: string,
  after: ChainHead = GENESIS,
): Promise<Verification> {
  const verifier = createVerifier(key, after);
  let pending: Buffer[] = [];
  for await (const chunk of createReadStream(path)) {
    const bytes = chunk as Buffer;
    let start = 0;
    for (let at = bytes.indexOf(LF); at !== -1; at = bytes.indexOf(LF, start)) {
      const piece = bytes.subarray(start, at);
      verifier.check(pending.length === 0 ? piece : Buffer.concat([...pending, piece]));
      pending = [];
      start = at + 1;
    }
    if (start < bytes.length) pending.push(bytes.subarray(start));
  }
  if (pending.length > 0) verifier.check(Buffer.concat(pending), false);
  return verifier.result();
}

/** What a restart needs to know about the end of its audit file. */
export interface Tail {
  /**
   * The chain's last record: GENESIS for a missing or empty file, undefined when no chained record
   * ends it (passing over one line that is no record) — records written without a key: the caller
   * says so and starts a new chain.
   */
  readonly head: ChainHead | undefined;
  /** The file does not end with a newline: appending must start on a new line. */
  readonly midLine: boolean;
  /** The last line, unterminated and no record: torn by a crash; the next record must declare it. */
  readonly torn: TornLine | undefined;
}

/**
 * The file's chain head, whether it ends mid-line, and the torn last line if there is one. Reads
 * backwards in blocks, line by line from the end, to the last chained record, passing over at most
 * one line that is no record (the torn one, or one written without a key).
 */
export function readTail(path: string): Tail {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT')
      return { head: GENESIS, midLine: false, torn: undefined };
    throw err;
  }
  if (size === 0) return { head: GENESIS, midLine: false, torn: undefined };
  const fd = openSync(path, 'r');
  try {
    const lastByte = Buffer.alloc(1);
    readSync(fd, lastByte, 0, 1, size - 1);
    const midLine = lastByte[0] !== LF;
    const block = 65_536;
    /** Bytes [position, size) of the file. */
    let tail = Buffer.alloc(0);
    let position = size;
    /** Exclusive end (file offset) of the line looked at next. */
    let end = size;
    let torn: TornLine | undefined;
    let passed = 0;
    for (;;) {
      const from = end - position - 1;
      const newline = from < 0 ? -1 : tail.lastIndexOf(LF, from);
      if (newline === -1 && position > 0) {
        // The line starts in an earlier block: read one more, up to the scan limit.
        if (size - position >= MAX_TAIL_SCAN) return { head: undefined, midLine, torn };
        const length = Math.min(block, position);
        position -= length;
        const chunk = Buffer.alloc(length);
        readSync(fd, chunk, 0, length, position);
        tail = Buffer.concat([chunk, tail]);
        continue;
      }
      const start = newline === -1 ? position : position + newline + 1;
      const line = tail.subarray(start - position, end - position);
      const text = lineBytes(line).toString('utf8');
      if (text !== '') {
        const split = splitLine(text);
        const seq = split === undefined ? undefined : seqOf(split.body);
        if (split !== undefined && seq !== undefined) return { head: { seq, mac: split.mac }, midLine, torn };
        if (end === size && midLine) torn = tornLineOf(line);
        // One line that is no record is passed over (the torn one); more is no crash.
        if (++passed > 1) return { head: undefined, midLine, torn };
      }
      if (newline === -1) {
        // The start of the file: nothing but a torn line (or nothing) before it is a fresh chain.
        return { head: passed === 0 || torn !== undefined ? GENESIS : undefined, midLine, torn };
      }
      end = start - 1;
    }
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
