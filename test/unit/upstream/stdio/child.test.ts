import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { describe, expect, it } from 'vitest';
import {
  type BadLine,
  type ChildMessage,
  type ChildSpec,
  type LineEdges,
  StdioChild,
} from '../../../../src/upstream/stdio/child.js';

const NODE = process.execPath;

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly error: Error | undefined;
}

/** A real child running `script` under `node -e`, and everything its StdioChild reported. */
function start(script: string, over: Partial<ChildSpec> = {}) {
  const messages: ChildMessage[] = [];
  const bad: { why: BadLine; edges: LineEdges | undefined }[] = [];
  const stderr: string[] = [];
  const exits: Exit[] = [];
  let exited: () => void = () => undefined;
  const exit = new Promise<void>((resolve) => {
    exited = resolve;
  });
  const child = new StdioChild(
    {
      command: [NODE, '-e', script],
      env: {},
      cwd: tmpdir(),
      maxLineBytes: 1000,
      maxJsonDepth: 8,
      ...over,
    },
    {
      onMessage: (message) => messages.push(message),
      onBadLine: (why, edges) => bad.push({ why, edges }),
      onStderr: (line) => stderr.push(line),
      onExit: (code, signal, error) => {
        exits.push({ code, signal, error });
        exited();
      },
    },
  );
  return { child, messages, bad, stderr, exits, exit };
}

/**
 * A script writing each part to stdout (or stderr) as its own write, `gapMs` apart, so the
 * gateway reads them as separate chunks; then it exits.
 */
function writer(
  parts: readonly (string | Buffer)[],
  stream: 'stdout' | 'stderr' = 'stdout',
  gapMs = 40,
): string {
  const encoded = JSON.stringify(parts.map((p) => Buffer.from(p).toString('base64')));
  return `const parts = ${encoded}.map((p) => Buffer.from(p, 'base64'));
let i = 0;
const next = () => {
  if (i === parts.length) return;
  process.${stream}.write(parts[i++]);
  setTimeout(next, ${gapMs});
};
next();`;
}

const line = (message: Record<string, unknown>) => `${JSON.stringify({ jsonrpc: '2.0', ...message })}\n`;

/** Whether `pid` is a live process (a zombie waiting for its reaper is not). */
function alive(pid: number): boolean {
  const stat = `/proc/${pid}/stat`;
  if (!existsSync(stat)) return false;
  try {
    const text = readFileSync(stat, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** The pid a child reported in its first message. */
function pidOf(messages: readonly ChildMessage[]): number {
  const pid = (messages[0]?.params as { pid?: unknown } | undefined)?.pid;
  if (typeof pid !== 'number') throw new Error('the child reported no pid');
  return pid;
}

async function until(check: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('StdioChild: framing', () => {
  it('joins a line split across chunks, and splits chunks holding several lines', async () => {
    const { messages, bad, exit } = start(
      writer([
        '{"jsonrpc":"2.0",',
        '"id":1,"result":{}}\n{"jsonrpc":"2.0","method":"notifications/message"}\n{"json',
        'rpc":"2.0","id":2,"result":null}\n',
      ]),
    );
    await exit;
    expect(messages).toEqual([
      { jsonrpc: '2.0', id: 1, result: {} },
      { jsonrpc: '2.0', method: 'notifications/message' },
      { jsonrpc: '2.0', id: 2, result: null },
    ]);
    expect(bad).toEqual([]);
  });

  it('decodes a UTF-8 character split across chunks', async () => {
    const text = Buffer.from('{"jsonrpc":"2.0","id":1,"result":"héllo ✓"}\n');
    const cut = text.indexOf(0xc3) + 1; // inside the two bytes of é
    const { messages, bad, exit } = start(writer([text.subarray(0, cut), text.subarray(cut)]));
    await exit;
    expect(messages).toEqual([{ jsonrpc: '2.0', id: 1, result: 'héllo ✓' }]);
    expect(bad).toEqual([]);
  });

  it('tolerates CRLF line ends and blank lines', async () => {
    const { messages, bad, exit } = start(
      writer([
        '{"jsonrpc":"2.0","id":1,"result":{}}\r\n\n   \n\r\n',
        '{"jsonrpc":"2.0","id":2,"result":{}}\r\n',
      ]),
    );
    await exit;
    expect(messages).toEqual([
      { jsonrpc: '2.0', id: 1, result: {} },
      { jsonrpc: '2.0', id: 2, result: {} },
    ]);
    expect(bad).toEqual([]);
  });

  it('reports each line that is not a message by why, and goes on reading', async () => {
    const deep = (n: number) =>
      `{"jsonrpc":"2.0","id":1,"result":${'['.repeat(n - 1)}${']'.repeat(n - 1)}}\n`;
    const { messages, bad, exit } = start(
      writer([
        'not json at all\n',
        Buffer.concat([
          Buffer.from('{"jsonrpc":"2.0","id":1,"result":"'),
          Buffer.from([0xff, 0xfe]),
          Buffer.from('"}\n'),
        ]),
        deep(8),
        deep(9),
        '{"jsonrpc":"2.0","id":1,"id":2,"result":{}}\n',
        '[{"jsonrpc":"2.0","id":1,"result":{}}]\n',
        '{"jsonrpc":"1.0","id":1,"result":{}}\n',
        '{"id":1,"result":{}}\n',
        '42\n',
        '"text"\n',
        'null\n',
        '{"jsonrpc":"2.0","id":12345678901234567890,"result":{}}\n',
        line({ id: 3, result: 'still reading' }),
      ]),
    );
    await exit;
    expect(bad.map((b) => b.why)).toEqual([
      'not_json',
      'not_json',
      'too_deep',
      'not_jsonrpc',
      'not_jsonrpc',
      'not_jsonrpc',
      'not_jsonrpc',
      'not_jsonrpc',
      'not_jsonrpc',
      'not_jsonrpc',
      'not_jsonrpc',
    ]);
    expect(bad.every((b) => b.edges === undefined)).toBe(true);
    expect(messages).toHaveLength(2);
    expect(messages[1]).toEqual({ jsonrpc: '2.0', id: 3, result: 'still reading' });
  });

  it('reads a line of exactly maxLineBytes; one byte more is too_large, with its two ends', async () => {
    const exact = `{"jsonrpc":"2.0","id":1,"result":"${'a'.repeat(1000 - 36)}"}`;
    expect(Buffer.byteLength(exact)).toBe(1000);
    const over = `{"jsonrpc":"2.0","id":2,"result":"${'b'.repeat(1000 - 35)}"}`;
    expect(Buffer.byteLength(over)).toBe(1001);
    const { messages, bad, exit } = start(
      writer([`${exact}\n`, `${over}\n`, line({ id: 3, result: 'after' })]),
    );
    await exit;
    expect(messages.map((m) => m.id)).toEqual([1, 3]);
    expect(bad).toEqual([{ why: 'too_large', edges: { head: over.slice(0, 256), tail: over.slice(-256) } }]);
  });

  it('skips a long line written in many chunks whole, keeping its first and last 256 bytes', async () => {
    const long = `{"jsonrpc":"2.0","id":7,"result":"${'x'.repeat(200_000)}${'y'.repeat(300)}","id":7}`;
    // Built in the child (an argument that long is E2BIG): one write, which the pipe splits in 64 KiB chunks.
    const { messages, bad, exit } = start(
      `const long = '{"jsonrpc":"2.0","id":7,"result":"' + 'x'.repeat(200000) + 'y'.repeat(300) + '","id":7}';
process.stdout.write(long.slice(0, 500));
setTimeout(() => {
  process.stdout.write(long.slice(500) + '\\n');
  setTimeout(() => process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: 8, result: 1 }) + '\\n'), 40);
}, 40);`,
    );
    await exit;
    expect(bad).toEqual([{ why: 'too_large', edges: { head: long.slice(0, 256), tail: long.slice(-256) } }]);
    expect(messages).toEqual([{ jsonrpc: '2.0', id: 8, result: 1 }]);
  });

  it('keeps the last 256 bytes of an over-long line even when it crosses the limit in its last few bytes', async () => {
    // 999 bytes read, then "2}\n": the line is 1001 bytes; its tail must still show `"id":12}`.
    const body = `{"jsonrpc":"2.0","result":"${'z'.repeat(1000)}`;
    const first = `${body.slice(0, 999 - ',"id":1'.length - 1)}","id":1`;
    expect(Buffer.byteLength(first)).toBe(999);
    const whole = `${first}2}`;
    const { bad, exit } = start(writer([first, '2}\n']));
    await exit;
    expect(bad).toHaveLength(1);
    expect(bad[0]?.edges?.tail).toBe(whole.slice(-256));
  });
});

describe('StdioChild: stderr', () => {
  it('reports stderr line by line, across chunks and with multi-byte characters split', async () => {
    const accent = Buffer.from('café\n');
    const { stderr, exit } = start(
      writer(
        ['first\nsec', 'ond\n', accent.subarray(0, 4), accent.subarray(4), 'x'.repeat(5000), 'y\n'],
        'stderr',
      ),
    );
    await exit;
    expect(stderr).toEqual(['first', 'second', 'café', 'x'.repeat(4096)]);
  });
});

describe('StdioChild: process', () => {
  it('writes one message per line, newlines inside strings escaped, and the child reads exactly that', async () => {
    const { child, messages, exit } = start(
      `let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  let n;
  while ((n = buf.indexOf('\\n')) !== -1) {
    const text = buf.slice(0, n);
    buf = buf.slice(n + 1);
    process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { text } }) + '\\n');
  }
});
process.stdin.on('end', () => process.exit(0));`,
    );
    expect(child.write({ jsonrpc: '2.0', id: 1, method: 'x', params: { s: 'a\nb' } })).toBe(true);
    await until(() => messages.length === 1);
    expect(messages[0]).toEqual({
      jsonrpc: '2.0',
      id: 1,
      result: { text: '{"jsonrpc":"2.0","id":1,"method":"x","params":{"s":"a\\nb"}}' },
    });
    expect(child.unread).toBe(0);
    await child.stop(5_000);
    await exit;
    expect(child.write({ jsonrpc: '2.0', method: 'late' })).toBe(false);
  });

  it('gives the child exactly the environment it is given, in its cwd', async () => {
    const { messages, exit } = start(
      `process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: 1, result: { env: process.env, cwd: process.cwd() } }) + '\\n');`,
      { env: { ONLY: 'this', PATH: '/usr/bin' }, cwd: '/' },
    );
    await exit;
    expect(messages).toEqual([
      { jsonrpc: '2.0', id: 1, result: { env: { ONLY: 'this', PATH: '/usr/bin' }, cwd: '/' } },
    ]);
  });

  it('reports an exit once, with its code; stop() after it resolves at once', async () => {
    const { child, exits, exit } = start('process.exit(3)');
    await exit;
    expect(child.running).toBe(false);
    await child.stop(5_000);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(exits).toEqual([{ code: 3, signal: null, error: undefined }]);
  });

  it('closes stdin first: a child that ignores SIGTERM still ends gracefully on EOF', async () => {
    const { child, exits } = start(
      `process.on('SIGTERM', () => undefined);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));`,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    await child.stop(10_000);
    expect(exits).toEqual([{ code: 0, signal: null, error: undefined }]);
  });

  it('SIGKILLs a child that ignores SIGTERM and stdin after the grace period', async () => {
    const { child, exits } = start(
      `process.on('SIGTERM', () => undefined); setInterval(() => undefined, 1000);`,
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    const began = Date.now();
    await child.stop(300);
    expect(Date.now() - began).toBeGreaterThanOrEqual(250);
    expect(exits).toEqual([{ code: null, signal: 'SIGKILL', error: undefined }]);
  });

  it('stop() kills the whole process group: a grandchild that ignores SIGTERM dies too', async () => {
    const grandchild = `process.on('SIGTERM', () => undefined); setInterval(() => undefined, 1000); process.stdout.write('ready');`;
    const { child, messages } = start(
      `const { spawn } = require('node:child_process');
const g = spawn(process.execPath, ['-e', ${JSON.stringify(grandchild)}], { stdio: ['ignore', 'pipe', 'ignore'] });
// Its pid is told once it runs (and ignores SIGTERM): only then is the test meaningful.
g.stdout.once('data', () =>
  process.stdout.write(JSON.stringify({ jsonrpc: '2.0', method: 'pid', params: { pid: g.pid } }) + '\\n'),
);
setInterval(() => undefined, 1000);`,
    );
    await until(() => messages.length === 1);
    const pid = pidOf(messages);
    expect(alive(pid)).toBe(true);
    await child.stop(5_000);
    await until(() => !alive(pid));
    expect(alive(pid)).toBe(false);
  });

  it('kills what a child left behind when it exits on its own', async () => {
    const grandchild = `setInterval(() => undefined, 1000); process.stdout.write('ready');`;
    const { messages, exit } = start(
      `const { spawn } = require('node:child_process');
const g = spawn(process.execPath, ['-e', ${JSON.stringify(grandchild)}], { stdio: ['ignore', 'pipe', 'ignore'] });
// Its pid is told once it runs (and ignores SIGTERM): only then is the test meaningful.
g.stdout.once('data', () =>
  process.stdout.write(JSON.stringify({ jsonrpc: '2.0', method: 'pid', params: { pid: g.pid } }) + '\\n'),
);
g.stdout.once('data', () => setTimeout(() => process.exit(0), 50));`,
    );
    await exit;
    const pid = pidOf(messages);
    await until(() => !alive(pid));
    expect(alive(pid)).toBe(false);
  });

  it('reports a program that does not exist as an exit with an error', async () => {
    const messages: ChildMessage[] = [];
    const exits: Exit[] = [];
    const child = new StdioChild(
      { command: ['/nonexistent/mcp-server'], env: {}, cwd: tmpdir(), maxLineBytes: 1000, maxJsonDepth: 8 },
      {
        onMessage: (m) => messages.push(m),
        onBadLine: () => undefined,
        onStderr: () => undefined,
        onExit: (code, signal, error) => exits.push({ code, signal, error }),
      },
    );
    expect(child.pid).toBeUndefined();
    await until(() => exits.length > 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(exits).toHaveLength(1);
    expect(exits[0]?.code).toBeNull();
    expect(exits[0]?.signal).toBeNull();
    expect((exits[0]?.error as NodeJS.ErrnoException | undefined)?.code).toBe('ENOENT');
    expect(child.running).toBe(false);
    expect(child.write({ jsonrpc: '2.0', method: 'x' })).toBe(false);
    await child.stop(1_000);
  });

  it('holds stdout unread while paused, and reads it again when resumed', async () => {
    const { child, messages, exit } = start(
      `setTimeout(() => {
  for (let i = 1; i <= 3; i++) process.stdout.write(JSON.stringify({ jsonrpc: '2.0', id: i, result: {} }) + '\\n');
}, 200);
setTimeout(() => undefined, 600);`,
    );
    child.pauseReading(true);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(messages).toEqual([]);
    child.pauseReading(false);
    await exit;
    expect(messages.map((m) => m.id)).toEqual([1, 2, 3]);
  });
});
