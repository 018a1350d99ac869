import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { findExecutable } from '../../../../src/upstream/stdio/executable.js';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-exec-'));
const bin = join(dir, 'bin');
mkdirSync(bin);
writeFileSync(join(bin, 'server'), '#!/bin/sh\n');
chmodSync(join(bin, 'server'), 0o755);
writeFileSync(join(bin, 'notes.txt'), 'not a program');
chmodSync(join(bin, 'notes.txt'), 0o644);
mkdirSync(join(bin, 'adir'));

const spec = (command: string[], env: Record<string, string> = {}, cwd?: string) => ({
  command,
  env,
  ...(cwd === undefined ? {} : { cwd }),
});

describe('findExecutable', () => {
  it('finds a bare name on the child’s PATH, which env.PATH replaces', () => {
    expect(findExecutable(spec(['server'], { PATH: bin }), '/nowhere')).toBe(join(bin, 'server'));
    expect(findExecutable(spec(['server']), `/nowhere:${bin}`)).toBe(join(bin, 'server'));
    expect(findExecutable(spec(['server'], { PATH: '/nowhere' }), bin)).toBeUndefined();
  });

  it('takes a name with a slash as a path, relative to cwd', () => {
    expect(findExecutable(spec([join(bin, 'server')]), '')).toBe(join(bin, 'server'));
    expect(findExecutable(spec(['bin/server'], {}, dir), '')).toBe(join(bin, 'server'));
    expect(findExecutable(spec(['./server'], {}, dir), '')).toBeUndefined();
  });

  it('refuses files that are not executable, directories and missing names', () => {
    expect(findExecutable(spec(['notes.txt'], { PATH: bin }))).toBeUndefined();
    expect(findExecutable(spec(['adir'], { PATH: bin }))).toBeUndefined();
    expect(findExecutable(spec(['no-such-server'], { PATH: bin }))).toBeUndefined();
  });
});
