/**
 * The audit stream's failure behaviour: a destination that cannot be opened fails the start (a
 * gateway must not run without its audit); SIGUSR2 after shutdown is harmless.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
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

  it('writes what it holds on close, and ignores a reopen after it', async () => {
    const file = join(dir, 'audit.jsonl');
    const stream = createAuditStream({ destination: file, logger });
    await new Promise((resolve) => setTimeout(resolve, 20));
    stream.write({ requestId: 'r1' } as never);
    await stream.close();
    expect(readFileSync(file, 'utf8')).toBe('{"requestId":"r1"}\n');
    expect(() => stream.reopen()).not.toThrow();
  });
});
