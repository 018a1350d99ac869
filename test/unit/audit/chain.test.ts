/**
 * The audit HMAC chain (src/audit/chain.ts) against its contract: a chain `createChain` writes
 * verifies, each line's MAC is HMAC-SHA-256(key, previous mac ‖ the line without its mac) as
 * computed here independently, and every single tampering — an edited character, a deleted,
 * swapped, duplicated or inserted record, a whole chain made with another key — is reported at the
 * first broken line, with the records before it counted as verified (also as a property over random
 * records and mutations). Only an unterminated last line may be torn: a torn line a restart ended is
 * accepted only when the next record declares it (length and SHA-256, under the MAC), and any other
 * complete line without a chain link — inserted anywhere, also next to a genuine torn line or at the
 * end — is named as the broken link. A rotated file verifies only from the previous file's head. `readTail`
 * finds the last head from a file's end (missing, empty, truncated mid-write, last line larger than
 * its 64 KiB read block) and `parseHead` takes `SEQ:<64 hex>` only.
 */
import { createHash, createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ChainHead,
  createChain,
  createVerifier,
  GENESIS,
  parseHead,
  readTail,
  tornLineRecord,
  verifyText,
} from '../../../src/audit/chain.js';

const KEY = 'unit-test-chain-key-0123456789';
const OTHER_KEY = 'someone-elses-key-9876543210';

/** The chained lines (no newline) of `records`, from `head`. */
function seal(records: readonly object[], key = KEY, head?: ChainHead): string[] {
  const chain = createChain(key, head);
  return records.map((record) => {
    const line = chain.seal(record);
    expect(line.endsWith('\n')).toBe(true);
    expect(line.indexOf('\n')).toBe(line.length - 1);
    return line.slice(0, -1);
  });
}

/** Records shaped like audit records, with distinct values. */
function sample(n: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => ({
    time: `2026-01-01T00:00:${String(i).padStart(2, '0')}.000Z`,
    requestId: `req-${i}`,
    method: 'tools/call',
    tool: i % 2 === 0 ? 'echo' : 'add',
    arguments: { text: `value number ${i}` },
    decision: 'allow',
    status: 200,
  }));
}

/** The head a line carries, read by JSON.parse (independently of the module). */
function headOf(line: string): ChainHead {
  const { seq, mac } = JSON.parse(line) as { seq: number; mac: string };
  return { seq, mac };
}

/** Complete lines (each ended by a newline), verified as `audit verify` reads a file. */
const verifyLines = (lines: readonly string[], key: string, after?: ChainHead) =>
  verifyText(lines.map((line) => `${line}\n`).join(''), key, after);

/** The head a restart continues the chain from. */
const headAt = (path: string) => readTail(path).head;

const hmac = (key: string, data: string) => createHmac('sha256', key).update(data).digest('hex');

describe('createChain and the verifier: an untouched chain', () => {
  it('writes seq first and mac last, each mac the HMAC of the previous mac and the line without it', () => {
    const records = sample(5);
    const lines = seal(records);
    let previous = '';
    lines.forEach((line, i) => {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      const keys = Object.keys(parsed);
      expect(keys[0]).toBe('seq');
      expect(keys.at(-1)).toBe('mac');
      expect(parsed.seq).toBe(i + 1);
      const { mac, ...withoutMac } = parsed;
      expect(withoutMac).toEqual({ seq: i + 1, ...records[i] });
      // The covered bytes: exactly what JSON.stringify writes for the record with its seq.
      const body = JSON.stringify({ seq: i + 1, ...records[i] });
      expect(line).toBe(`${body.slice(0, -1)},"mac":"${mac as string}"}`);
      expect(mac).toBe(hmac(KEY, previous + body));
      previous = mac as string;
    });
  });

  it('verifies, counting every record, and ends at the last line’s head', () => {
    const lines = seal(sample(6));
    const result = verifyLines(lines, KEY);
    expect(result.broken).toBeUndefined();
    expect(result.records).toBe(6);
    expect(result.head).toEqual(headOf(lines[5]!));
  });

  it('reads a file’s text: the newline after the last line ends it, it starts no line', () => {
    const lines = seal(sample(3));
    const result = verifyText(`${lines.join('\n')}\n`, KEY);
    expect(result.broken).toBeUndefined();
    expect(result.records).toBe(3);
    expect(result.tornTail).toBeUndefined();
  });

  it('an empty line is a line without a chain link: broken there', () => {
    const lines = seal(sample(3));
    expect(verifyText(`${lines[0]}\n\n${lines[1]}\n${lines[2]}\n`, KEY).broken).toMatchObject({
      line: 2,
      why: expect.stringMatching(/empty line/),
    });
    expect(verifyText(`${lines.join('\n')}\n\n`, KEY).broken).toMatchObject({ line: 4 });
  });

  it('verifies an empty file as zero records at GENESIS', () => {
    expect(verifyLines([], KEY)).toEqual({ records: 0, head: GENESIS, skipped: [] });
  });

  it('is not confused by values and keys that look like the mac field or the line end', () => {
    const records = [
      { note: ',"mac":"', other: '"}' },
      { mac: 'a value named mac', text: `,"mac":"${'0'.repeat(64)}"}` },
      { ',"mac":"': 'key', nested: { mac: 'x"}' } },
    ];
    const lines = seal(records);
    const result = verifyLines(lines, KEY);
    expect(result.broken).toBeUndefined();
    expect(result.records).toBe(3);
    // Each line's real mac is the last one, as JSON.parse reads it.
    expect(result.head).toEqual(headOf(lines[2]!));
  });

  it('continues a chain from a given head exactly as one long chain would', () => {
    const records = sample(7);
    const whole = seal(records);
    const first = seal(records.slice(0, 4));
    const rest = seal(records.slice(4), KEY, headOf(first[3]!));
    expect([...first, ...rest]).toEqual(whole);
  });
});

describe('the verifier: each tampering breaks the chain at its line', () => {
  const lines = seal(sample(6));
  const headAfter = (n: number) => (n === 0 ? GENESIS : headOf(lines[n - 1]!));

  it('an edited record: one character of a value changed', () => {
    const edited = [...lines];
    expect(edited[2]).toContain('"value number 2"');
    edited[2] = edited[2]!.replace('"value number 2"', '"value number 3"');
    const result = verifyLines(edited, KEY);
    expect(result.broken).toEqual({ line: 3, seq: 3, why: expect.stringMatching(/mac does not match/) });
    expect(result.records).toBe(2);
    expect(result.head).toEqual(headAfter(2));
  });

  it('an edited record: its seq changed to look like its neighbour', () => {
    const edited = [...lines];
    edited[3] = edited[3]!.replace('{"seq":4,', '{"seq":5,');
    const result = verifyLines(edited, KEY);
    expect(result.broken).toMatchObject({ line: 4, seq: 5 });
    expect(result.records).toBe(3);
  });

  it('an edited mac', () => {
    const edited = [...lines];
    const line = edited[1]!;
    const last = line.at(-3) === '0' ? '1' : '0';
    edited[1] = `${line.slice(0, -3)}${last}"}`;
    const result = verifyLines(edited, KEY);
    expect(result.broken).toEqual({ line: 2, seq: 2, why: expect.stringMatching(/mac does not match/) });
    expect(result.records).toBe(1);
  });

  it('a deleted record', () => {
    const deleted = lines.filter((_, i) => i !== 2);
    const result = verifyLines(deleted, KEY);
    expect(result.broken).toEqual({ line: 3, seq: 4, why: expect.stringMatching(/1 record\(s\) missing/) });
    expect(result.records).toBe(2);
    expect(result.head).toEqual(headAfter(2));
  });

  it('the first record deleted', () => {
    const result = verifyLines(lines.slice(1), KEY);
    expect(result.broken).toMatchObject({ line: 1, seq: 2 });
    expect(result.records).toBe(0);
    expect(result.head).toEqual(GENESIS);
  });

  it('two records swapped (adjacent and apart)', () => {
    const adjacent = [...lines];
    [adjacent[2], adjacent[3]] = [adjacent[3]!, adjacent[2]!];
    const a = verifyLines(adjacent, KEY);
    expect(a.broken).toEqual({ line: 3, seq: 4, why: expect.any(String) });
    expect(a.records).toBe(2);

    const apart = [...lines];
    [apart[1], apart[4]] = [apart[4]!, apart[1]!];
    const b = verifyLines(apart, KEY);
    expect(b.broken).toEqual({ line: 2, seq: 5, why: expect.any(String) });
    expect(b.records).toBe(1);
    expect(b.head).toEqual(headAfter(1));
  });

  it('a duplicated record', () => {
    const duplicated = [...lines.slice(0, 3), lines[2]!, ...lines.slice(3)];
    const result = verifyLines(duplicated, KEY);
    expect(result.broken).toEqual({
      line: 4,
      seq: 3,
      why: expect.stringMatching(/repeated or reordered/),
    });
    expect(result.records).toBe(3);
    expect(result.head).toEqual(headAfter(3));
  });

  it('an inserted forged record (right seq and previous mac, but MACed without the key)', () => {
    const forged = seal(
      [{ method: 'tools/call', tool: 'delete_everything', decision: 'allow' }],
      OTHER_KEY,
      headAfter(2),
    )[0]!;
    expect(headOf(forged).seq).toBe(3);
    const inserted = [...lines.slice(0, 2), forged, ...lines.slice(2)];
    const result = verifyLines(inserted, KEY);
    expect(result.broken).toEqual({ line: 3, seq: 3, why: expect.stringMatching(/mac does not match/) });
    expect(result.records).toBe(2);
  });

  it('an inserted forged record followed by the later records renumbered and re-MACed without the key', () => {
    const tail = seal([{ tool: 'delete_everything' }, ...sample(6).slice(2)], OTHER_KEY, headAfter(2));
    const result = verifyLines([...lines.slice(0, 2), ...tail], KEY);
    expect(result.broken).toMatchObject({ line: 3, seq: 3 });
    expect(result.records).toBe(2);
  });

  it('a line that is not a chained record, where the chain does not continue past it', () => {
    // Inserted in place of record 5: record 6 chains from 5, not from 4.
    const replaced = [...lines.slice(0, 4), JSON.stringify({ seq: 5, tool: 'echo' }), ...lines.slice(5)];
    const result = verifyLines(replaced, KEY);
    expect(result.broken).toEqual({ line: 5, seq: undefined, why: expect.stringMatching(/no mac/) });
    expect(result.records).toBe(4);
    // Two such lines in a row are no crash either.
    const two = [...lines.slice(0, 4), 'torn {"seq":5', 'also torn', ...lines.slice(4)];
    expect(verifyLines(two, KEY).broken).toMatchObject({ line: 5 });
  });

  it('a complete line without a chain link that the chain continues past, undeclared: broken there', () => {
    // What `verify` used to accept as "torn": a line inserted between records 4 and 5.
    const inserted = [...lines.slice(0, 4), lines[4]!.slice(0, 40), ...lines.slice(4)];
    const result = verifyLines(inserted, KEY);
    expect(result.broken).toMatchObject({ line: 5, why: expect.stringMatching(/does not declare it torn/) });
    expect(result.records).toBe(4);
    // A forged record that is valid JSON with a seq and a plausible mac, inserted the same way.
    const forged = `${JSON.stringify({ seq: 5, tool: 'echo' }).slice(0, -1)},"mac":"${'a'.repeat(64)}"}`;
    const withForged = verifyLines([...lines.slice(0, 4), forged, ...lines.slice(4)], KEY);
    expect(withForged.broken).toMatchObject({ line: 5, seq: 5 });
  });

  it('an unterminated last line is torn: named, not broken, and not counted', () => {
    const text = `${lines.slice(0, 4).join('\n')}\n${lines[4]!.slice(0, 40)}`;
    const result = verifyText(text, KEY);
    expect(result.broken).toBeUndefined();
    expect(result.tornTail).toBe(5);
    expect(result.records).toBe(4);
    expect(result.head).toEqual(headAfter(4));
    // The same line with a newline is complete: broken.
    expect(verifyText(`${text}\n`, KEY).broken).toMatchObject({ line: 5 });
  });

  it('a chain forged entirely with another key: broken at line 1, nothing verified', () => {
    const forged = seal(sample(6), OTHER_KEY);
    // Well-formed under its own key…
    expect(verifyLines(forged, OTHER_KEY).broken).toBeUndefined();
    // …but not under the real one.
    const result = verifyLines(forged, KEY);
    expect(result.broken).toEqual({ line: 1, seq: 1, why: expect.stringMatching(/another key/) });
    expect(result.records).toBe(0);
    expect(result.head).toEqual(GENESIS);
  });

  it('a deleted last record is not a broken link (the operational log’s head shows it)', () => {
    const result = verifyLines(lines.slice(0, -1), KEY);
    expect(result.broken).toBeUndefined();
    expect(result.records).toBe(5);
    expect(result.head).toEqual(headAfter(5));
  });
});

// The rule writer and verifier share (chain.ts): only an unterminated last line may be torn; at a
// restart the gateway ends it and declares it — length and SHA-256 — in the next chained record.
// Every other complete line without a chain link is a broken link, named.
describe('a crash, a restart, and lines inserted by someone without the key', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-torn-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * A file as the gateway leaves it: two records, a third cut mid-write (the crash), then what a
   * restart appends — read with `readTail` as the writer does, a newline and the declaring record
   * in one write — and two more records. Lines: r1, r2, torn, declaration, r4, r5.
   */
  function crashedAndRestarted(): { lines: string[]; torn: string } {
    const path = join(dir, `crash-${Math.random().toString(36).slice(2)}.jsonl`);
    const before = createChain(KEY);
    const whole = before.seal(sample(1)[0]!) + before.seal(sample(2)[1]!);
    const torn = before.seal(sample(3)[2]!).slice(0, 57);
    writeFileSync(path, whole + torn);
    const tail = readTail(path);
    expect(tail.midLine).toBe(true);
    expect(tail.torn).toEqual({
      bytes: Buffer.byteLength(torn),
      sha256: createHash('sha256').update(torn).digest('hex'),
    });
    const after = createChain(KEY, tail.head);
    const appended = `\n${after.seal(tornLineRecord(tail.torn!))}${after.seal(sample(4)[3]!)}${after.seal(sample(5)[4]!)}`;
    const text = whole + torn + appended;
    expect(text.endsWith('\n')).toBe(true);
    return { lines: text.slice(0, -1).split('\n'), torn };
  }

  const check = (lines: readonly string[]) => verifyText(`${lines.join('\n')}\n`, KEY);
  const FORGED = `${JSON.stringify({ seq: 3, tool: 'admin_reset', decision: 'allow' }).slice(0, -1)},"mac":"${'f'.repeat(64)}"}`;
  const insert = (lines: readonly string[], at: number, line = FORGED) => [
    ...lines.slice(0, at),
    line,
    ...lines.slice(at),
  ];

  it('the genuine file verifies: the torn line is named as declared, every record counted', () => {
    const { lines } = crashedAndRestarted();
    expect(lines).toHaveLength(6);
    expect(JSON.parse(lines[3]!)).toMatchObject({ seq: 3, event: 'torn-line', torn: { bytes: 57 } });
    const result = check(lines);
    expect(result.broken).toBeUndefined();
    expect(result.skipped).toEqual([3]);
    expect(result.records).toBe(5);
    expect(result.head).toEqual(headOf(lines[5]!));
  });

  it.each([
    ['between two records before the crash', 1, 2],
    ['right before the torn line', 2, 3],
    ['right after the torn line (before its declaration)', 3, 4],
    ['right after the declaration', 4, 5],
    ['between the records after the restart', 5, 6],
    ['at the end, with a newline', 6, 7],
  ])('a forged line inserted %s: broken, naming it', (_, at, line) => {
    const { lines } = crashedAndRestarted();
    const result = check(insert(lines, at));
    expect(result.broken).toMatchObject({ line });
  });

  it('a copy of the torn line inserted next to it: broken at the copy', () => {
    const { lines, torn } = crashedAndRestarted();
    expect(check(insert(lines, 3, torn)).broken).toMatchObject({ line: 4 });
  });

  it('the torn line removed: broken at the record that declares it', () => {
    const { lines } = crashedAndRestarted();
    const result = check([...lines.slice(0, 2), ...lines.slice(3)]);
    expect(result.broken).toMatchObject({
      line: 3,
      seq: 3,
      why: expect.stringMatching(/a line was removed/),
    });
  });

  it('the torn line edited or replaced: broken at it', () => {
    const { lines, torn } = crashedAndRestarted();
    const edited = [...lines];
    edited[2] = `${torn.slice(0, -1)}${torn.endsWith('x') ? 'y' : 'x'}`;
    expect(check(edited).broken).toMatchObject({ line: 3 });
    edited[2] = FORGED;
    expect(check(edited).broken).toMatchObject({ line: 3 });
  });

  it('a declaration forged without the key: broken', () => {
    const { lines } = crashedAndRestarted();
    // The attacker's own line, declared by a record sealed under another key.
    const forgedHead = { seq: 2, mac: headOf(lines[1]!).mac };
    const declaration = seal(
      [
        tornLineRecord({
          bytes: Buffer.byteLength(FORGED),
          sha256: createHash('sha256').update(FORGED).digest('hex'),
        }),
      ],
      OTHER_KEY,
      forgedHead,
    )[0]!;
    const result = check([...lines.slice(0, 2), FORGED, declaration, ...lines.slice(2)]);
    expect(result.broken).toMatchObject({ line: 3 });
  });

  it('an unterminated last line after the restart is torn again: named, not broken', () => {
    const { lines } = crashedAndRestarted();
    const result = verifyText(`${lines.join('\n')}\n${lines[5]!.slice(0, 30)}`, KEY);
    expect(result.broken).toBeUndefined();
    expect(result.tornTail).toBe(7);
    expect(result.skipped).toEqual([3]);
  });

  it('property: any line inserted anywhere is named exactly', () => {
    const { lines, torn } = crashedAndRestarted();
    const noNewline = fc
      .string({ maxLength: 80 })
      .filter((l) => !l.includes('\n') && !l.includes('\r') && l !== torn);
    fc.assert(
      fc.property(fc.integer({ min: 0, max: lines.length }), noNewline, (at, line) => {
        expect(check(insert(lines, at, line)).broken?.line).toBe(at + 1);
      }),
      { numRuns: 1_000, seed: 11 },
    );
  });
});

describe('createVerifier', () => {
  it('checks line by line and ignores everything after the first broken link', () => {
    const lines = seal(sample(5));
    const verifier = createVerifier(KEY);
    verifier.check(lines[0]!);
    verifier.check(lines[1]!);
    expect(verifier.result()).toEqual({ records: 2, head: headOf(lines[1]!), skipped: [] });
    verifier.check(lines[3]!); // lines[2] skipped
    const broken = verifier.result();
    expect(broken.broken).toMatchObject({ line: 3, seq: 4 });
    verifier.check(lines[2]!);
    verifier.check(lines[3]!);
    expect(verifier.result()).toEqual(broken);
  });
});

describe('a rotated file (the continuation of another)', () => {
  const lines = seal(sample(8));
  const before = lines.slice(0, 5);
  const after = lines.slice(5);

  it('fails from GENESIS, naming the missing records and --after', () => {
    const result = verifyLines(after, KEY);
    expect(result.broken).toEqual({
      line: 1,
      seq: 6,
      why: expect.stringMatching(/5 record\(s\) missing.*--after/),
    });
    expect(result.records).toBe(0);
  });

  it('passes from the previous file’s head, as verifying that file reports it', () => {
    const previous = verifyLines(before, KEY);
    expect(previous.broken).toBeUndefined();
    const result = verifyLines(after, KEY, previous.head);
    expect(result.broken).toBeUndefined();
    expect(result.records).toBe(3);
    expect(result.head).toEqual(headOf(lines[7]!));
    // …and from the head as `--after` reads it.
    const text = `${previous.head.seq}:${previous.head.mac}`;
    expect(verifyLines(after, KEY, parseHead(text)).broken).toBeUndefined();
  });

  it('fails from any other head: an earlier one, or the right seq with another mac', () => {
    expect(verifyLines(after, KEY, headOf(before[3]!)).broken).toMatchObject({ line: 1, seq: 6 });
    const wrongMac = { seq: 5, mac: headOf(before[3]!).mac };
    expect(verifyLines(after, KEY, wrongMac).broken).toMatchObject({
      line: 1,
      seq: 6,
      why: expect.stringMatching(/mac does not match/),
    });
  });
});

describe('readTail: the chain head a restart continues from', () => {
  let dir: string;
  let n = 0;
  const file = (content: string | Buffer) => {
    const path = join(dir, `audit-${n++}.jsonl`);
    writeFileSync(path, content);
    return path;
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-chain-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is GENESIS for a missing file and for an empty one', () => {
    expect(headAt(join(dir, 'no-such-file.jsonl'))).toEqual(GENESIS);
    expect(headAt(file(''))).toEqual(GENESIS);
  });

  it('is the last record’s head for a normal file, with or without trailing newlines', () => {
    const lines = seal(sample(4));
    const expected = headOf(lines[3]!);
    expect(headAt(file(`${lines.join('\n')}\n`))).toEqual(expected);
    expect(headAt(file(lines.join('\n')))).toEqual(expected);
    expect(headAt(file(`${lines.join('\n')}\n\n\n`))).toEqual(expected);
    expect(headAt(file(`${lines[0]}\n`))).toEqual(headOf(lines[0]!));
  });

  it('is the record before a last line cut anywhere mid-write (the chain continues past it)', () => {
    const lines = seal(sample(4));
    const complete = `${lines.slice(0, 3).join('\n')}\n`;
    const last = lines[3]!;
    for (let cut = 1; cut < last.length; cut++) {
      const head = headAt(file(complete + last.slice(0, cut)));
      if (head?.seq !== 3) throw new Error(`a cut after ${cut} characters read as ${JSON.stringify(head)}`);
    }
    // The same cuts as the only line of the file: a fresh chain.
    for (let cut = 1; cut < last.length; cut += 7) expect(headAt(file(last.slice(0, cut)))).toEqual(GENESIS);
  });

  it('is undefined when the file ends with records written without a key (more than one torn line)', () => {
    const lines = seal(sample(2));
    const unchained = JSON.stringify(sample(1)[0]);
    expect(headAt(file(`${lines.join('\n')}\n${unchained}\n${unchained}\n`))).toBeUndefined();
  });

  describe('a last line larger than the 64 KiB read block', () => {
    const BLOCK = 65_536;
    /** A file of two small records then one whose line (newline included) is `bytes` long. */
    function withLastLine(bytes: number, unit: string, pad: number) {
      const chain = createChain(KEY);
      const small = chain.seal(sample(1)[0]!) + chain.seal(sample(2)[1]!);
      const probe = createChain(KEY, chain.head()).seal({ big: '', pad: '' });
      const unitBytes = Buffer.byteLength(unit);
      const count = Math.floor((bytes - Buffer.byteLength(probe) - pad) / unitBytes);
      const big = chain.seal({
        big: unit.repeat(count),
        pad: 'x'.repeat(bytes - Buffer.byteLength(probe) - count * unitBytes),
      });
      expect(Buffer.byteLength(big)).toBe(bytes);
      return { text: small + big, head: chain.head() };
    }

    it.each([BLOCK - 1, BLOCK, BLOCK + 1, BLOCK + 2, 2 * BLOCK - 1, 2 * BLOCK, 2 * BLOCK + 1, 300_000])(
      'ASCII, last line of %i bytes',
      (bytes) => {
        const { text, head } = withLastLine(bytes, 'a', 0);
        expect(headAt(file(text))).toEqual(head);
      },
    );

    it.each([0, 1, 2])('multi-byte characters split by the block boundary (padding %i)', (pad) => {
      for (const bytes of [BLOCK + 10, 2 * BLOCK + 10, 200_001]) {
        const { text, head } = withLastLine(bytes + pad, '€', pad);
        expect(headAt(file(text))).toEqual(head);
      }
    });

    it('a single line larger than a block (no line before it)', () => {
      const chain = createChain(KEY);
      const text = chain.seal({ big: 'z'.repeat(3 * BLOCK) });
      expect(headAt(file(text))).toEqual(chain.head());
      expect(headAt(file(`${text}\n`))).toEqual(chain.head());
    });

    it('a large last line cut mid-write: the head is the record before it', () => {
      const { text } = withLastLine(2 * BLOCK + 5, 'a', 0);
      expect(headAt(file(text.slice(0, -2)))?.seq).toBe(2);
      expect(headAt(file(text.slice(0, -BLOCK)))?.seq).toBe(2);
    });
  });
});

describe('parseHead', () => {
  const hex = 'c0ffee'.repeat(10).concat('abcd');

  it('reads SEQ:<64 lowercase hex>', () => {
    expect(hex).toHaveLength(64);
    expect(parseHead(`12:${hex}`)).toEqual({ seq: 12, mac: hex });
    expect(parseHead(`1:${'0'.repeat(64)}`)).toEqual({ seq: 1, mac: '0'.repeat(64) });
    const lines = seal(sample(3));
    const head = headOf(lines[2]!);
    expect(parseHead(`${head.seq}:${head.mac}`)).toEqual(head);
  });

  it.each([
    '',
    '12',
    '12:',
    `:${hex}`,
    `-1:${hex}`,
    `+1:${hex}`,
    `1.5:${hex}`,
    `1e3:${hex}`,
    `0x1:${hex}`,
    `12:${hex.slice(1)}`,
    `12:${hex}0`,
    `12:${'g'.repeat(64)}`,
    `12:${hex.slice(2)}zz`,
    ` 12:${hex}`,
    `12:${hex} `,
    `12:${hex}\n`,
    `12 :${hex}`,
    `12:${hex}:13`,
    `12;${hex}`,
    `0:${hex}`,
    `9007199254740993:${hex}`,
  ])('refuses %j', (text) => {
    expect(parseHead(text)).toBeUndefined();
  });
});

describe('property: any single-record mutation is detected at the mutated position', () => {
  const key = fc.string({ maxLength: 8 }).filter((k) => k !== 'seq');
  const recordArb = fc.dictionary(key, fc.jsonValue({ maxDepth: 2 }), { maxKeys: 5 });
  // Printable ASCII without newline: an edit never splits a line.
  const printable = fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c));

  it('edit (one character anywhere), delete (not the last), swap, duplicate', () => {
    fc.assert(
      fc.property(
        fc.array(recordArb, { minLength: 2, maxLength: 10 }),
        fc.constantFrom('edit', 'delete', 'swap', 'duplicate'),
        fc.nat(),
        fc.nat(),
        printable,
        (records, kind, r1, r2, char) => {
          const lines = seal(records);
          const clean = verifyLines(lines, KEY);
          expect(clean.broken).toBeUndefined();
          expect(clean.records).toBe(records.length);

          const n = lines.length;
          const mutated = [...lines];
          let at: number; // 0-based index of the first line that differs
          switch (kind) {
            case 'edit': {
              at = r1 % n;
              const line = lines[at]!;
              const p = r2 % line.length;
              const replacement = char === line[p] ? (char === 'x' ? 'y' : 'x') : char;
              mutated[at] = line.slice(0, p) + replacement + line.slice(p + 1);
              break;
            }
            case 'delete':
              at = r1 % (n - 1);
              mutated.splice(at, 1);
              break;
            case 'swap': {
              const a = r1 % n;
              const b = (a + 1 + (r2 % (n - 1))) % n;
              at = Math.min(a, b);
              [mutated[a], mutated[b]] = [mutated[b]!, mutated[a]!];
              break;
            }
            default:
              at = r1 % n;
              mutated.splice(at + 1, 0, lines[at]!);
              at += 1;
          }
          const result = verifyLines(mutated, KEY);
          expect(result.broken).toBeDefined();
          expect(result.broken!.line).toBeLessThanOrEqual(at + 1);
          // Nothing before the mutation is wrong, so the first broken line is exactly it.
          expect(result.broken!.line).toBe(at + 1);
          expect(result.broken!.why).not.toBe('');
          expect(result.records).toBe(at);
          expect(result.head).toEqual(at === 0 ? GENESIS : headOf(lines[at - 1]!));
        },
      ),
      { numRuns: 300 },
    );
  });
});
