/**
 * The audit stream's failure behaviour: a destination that cannot be opened fails the start (a
 * gateway must not run without its audit); SIGUSR2 after shutdown is harmless. Restarting on a file
 * a crash left torn: the torn line is ended and declared by the next record, so the file verifies —
 * and nothing else at the end of a file is ever declared (a line appended with a newline stays a
 * broken link).
 */

import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { createChain, verifyText } from '../../../src/audit/chain.js';
import { createAuditStream } from '../../../src/audit/stream.js';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-audit-stream-'));
const logger = pino({ level: 'silent' });
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('createAuditStream', () => {
  it('throws at creation when the file cannot be opened', () => {
    const notADirectory = join(dir, 'plain-file');
    writeFileSync(notADirectory, '');
    expect(() => createAuditStream({ destination: join(notADirectory, 'audit.jsonl'), logger })).toThrow(
      /EEXIST|ENOTDIR/,
    );
  });

  it('is enabled for a file and for stdout, and not for `none`', async () => {
    const file = join(dir, 'enabled.jsonl');
    const toFile = createAuditStream({ destination: file, logger });
    const toStdout = createAuditStream({ destination: 'stdout', logger });
    const none = createAuditStream({ destination: 'none', logger });
    expect([toFile.enabled, toStdout.enabled, none.enabled]).toEqual([true, true, false]);
    await Promise.all([toFile.close(), toStdout.close(), none.close()]);
  });

  it('writes what it holds on close, and ignores a reopen after it', async () => {
    const file = join(dir, 'audit.jsonl');
    const stream = createAuditStream({ destination: file, logger });
    await new Promise((resolve) => setTimeout(resolve, 20));
    stream.write({ requestId: 'r1' } as never);
    await stream.close();
    expect(readFileSync(file, 'utf8')).toBe('{"requestId":"r1"}\n');
    expect(() => stream.reopen()).not.toThrow();
  });

  it('writes a lone record within the flush bound, without a close', async () => {
    const file = join(dir, 'bound.jsonl');
    const stream = createAuditStream({
      destination: file,
      chainKey: 'stream-test-chain-key-bound-0001',
      logger,
    });
    stream.write({ requestId: 'alone' } as never);
    // README promises at least every 100 ms; allow for a loaded machine, never for a close.
    const deadline = Date.now() + 2_000;
    while (!readFileSync(file, 'utf8').includes('"alone"') && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(readFileSync(file, 'utf8')).toContain('"requestId":"alone"');
    await stream.close();
  });

  it('keeps every record, in order, across many batches: the chain verifies', async () => {
    const file = join(dir, 'many.jsonl');
    const key = 'stream-test-chain-key-many-00001';
    const stream = createAuditStream({ destination: file, chainKey: key, logger });
    // ~80 bytes a record: thousands of them span many 8 KiB batches and SonicBoom's own queue.
    for (let i = 0; i < 5_000; i++) stream.write({ requestId: `r${i}`, note: 'é'.repeat(i % 7) } as never);
    await stream.close();
    const text = readFileSync(file, 'utf8');
    const ids = text
      .trimEnd()
      .split('\n')
      .map((line) => (JSON.parse(line) as { requestId: string }).requestId);
    expect(ids).toEqual(Array.from({ length: 5_000 }, (_, i) => `r${i}`));
    const result = verifyText(text, key);
    expect(result).toMatchObject({ records: 5_000, skipped: [] });
    expect(result.broken).toBeUndefined();
  });
});

describe('createAuditStream on a file a crash left behind', () => {
  const KEY = 'stream-test-chain-key-000000001';
  let n = 0;
  /** Starts a stream on `content`, writes one record, closes; the file's text. */
  async function restartOn(content: string): Promise<string> {
    const file = join(dir, `restart-${n++}.jsonl`);
    writeFileSync(file, content);
    const stream = createAuditStream({ destination: file, chainKey: KEY, logger });
    stream.write({ requestId: 'after-restart' } as never);
    await stream.close();
    return readFileSync(file, 'utf8');
  }
  const chain = createChain(KEY);
  const records = chain.seal({ requestId: 'r1' }) + chain.seal({ requestId: 'r2' });
  const cut = chain.seal({ requestId: 'r3-cut-by-a-crash' }).slice(0, 30);

  it('ends a torn last line and declares it in the next record: the file verifies', async () => {
    const text = await restartOn(records + cut);
    const lines = text.split('\n');
    expect(lines[2]).toBe(cut);
    expect(JSON.parse(lines[3]!)).toMatchObject({
      seq: 3,
      event: 'torn-line',
      torn: { bytes: 30, sha256: createHash('sha256').update(cut).digest('hex') },
    });
    expect(JSON.parse(lines[4]!)).toMatchObject({ seq: 4, requestId: 'after-restart' });
    const result = verifyText(text, KEY);
    expect(result.broken).toBeUndefined();
    expect(result.skipped).toEqual([3]);
    expect(result.records).toBe(4);
  });

  it('a torn first line: a fresh chain that declares it', async () => {
    const text = await restartOn(cut);
    expect(JSON.parse(text.split('\n')[1]!)).toMatchObject({ seq: 1, event: 'torn-line' });
    expect(verifyText(text, KEY)).toMatchObject({ records: 2, skipped: [1] });
  });

  it('a last record cut only before its newline: ended, nothing declared', async () => {
    const text = await restartOn(records.slice(0, -1));
    expect(text).not.toContain('torn-line');
    expect(verifyText(text, KEY)).toMatchObject({ records: 3, skipped: [] });
  });

  it('never declares a complete line: one appended with a newline stays a broken link', async () => {
    const forged = '{"seq":3,"tool":"admin_reset","decision":"allow"}';
    const text = await restartOn(`${records}${forged}\n`);
    expect(text).not.toContain('torn-line');
    expect(verifyText(text, KEY).broken).toMatchObject({ line: 3 });
  });
});
