import { type ChildProcess, spawn } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { checkStrictJson } from '../../jsonrpc/strict-json.js';

/** A message the child wrote: one JSON object per line, checked before anything reads it. */
export type ChildMessage = Readonly<Record<string, unknown>>;

/** Why a line of the child's stdout was not a message (logged and counted, never fatal). */
export type BadLine = 'too_large' | 'not_json' | 'too_deep' | 'not_jsonrpc';

/** The two ends of a line too long to read. */
export interface LineEdges {
  readonly head: string;
  readonly tail: string;
}

export interface ChildSpec {
  /** argv: the program, then its arguments. No shell ever reads it. */
  readonly command: readonly string[];
  /** The child's whole environment. */
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
  readonly uid?: number | undefined;
  readonly gid?: number | undefined;
  /** The longest line read (`limits.maxResponseBytes`): a longer one is skipped whole. */
  readonly maxLineBytes: number;
  /** The deepest JSON nesting read (`limits.maxJsonDepth`). */
  readonly maxJsonDepth: number;
}

export interface ChildListener {
  onMessage(message: ChildMessage): void;
  /** `edges`: for a `too_large` line, its first and last bytes, to name whose answer it was. */
  onBadLine(why: BadLine, edges?: LineEdges): void;
  /** One line of the child's stderr, decoded; the caller bounds how many it logs. */
  onStderr(line: string): void;
  /** The child exited (or could not be started: `error` says why). Called once. */
  onExit(code: number | null, signal: NodeJS.Signals | null, error?: Error): void;
}

/** How much of each end of an over-long line is kept to tell whose answer it was. */
const EDGE_BYTES = 256;
const EMPTY = Buffer.alloc(0);

/** Longest stderr line kept: a log line, not a dump. */
const MAX_STDERR_LINE = 4096;

/**
 * One spawned stdio MCP server and its framing (the stdio transport: one JSON-RPC message per
 * line, UTF-8, stderr for logs). It knows nothing of MCP: it writes messages, reads lines, checks
 * each is strict JSON within the depth limit and the size cap, and reports what the child does.
 *
 * The child leads its own process group, so stopping it also stops what it started (`npx` runs the
 * server as a grandchild): stdin is closed first — the transport's graceful shutdown — with
 * SIGTERM to the group, then SIGKILL to the group after the grace period, and after any exit, so no
 * grandchild is left behind.
 */
export class StdioChild {
  readonly pid: number | undefined;
  private readonly child: ChildProcess;
  private exited = false;
  private readonly exitWaiters: (() => void)[] = [];
  // stdout framing
  private pieces: Buffer[] = [];
  private pending = 0;
  private skipping = false;
  private skipHead: Buffer = EMPTY;
  private skipTail: Buffer = EMPTY;
  private readonly fatal = new TextDecoder('utf-8', { fatal: true });
  // stderr framing
  private readonly stderr = new StringDecoder('utf8');
  private stderrLine = '';

  constructor(
    private readonly spec: ChildSpec,
    private readonly listener: ChildListener,
  ) {
    const [program, ...args] = spec.command as [string, ...string[]];
    this.child = spawn(program, args, {
      env: { ...spec.env },
      cwd: spec.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
      shell: false,
      windowsHide: true,
      ...(spec.uid === undefined ? {} : { uid: spec.uid }),
      ...(spec.gid === undefined ? {} : { gid: spec.gid }),
    });
    this.pid = this.child.pid;
    this.child.stdout?.on('data', (chunk: Buffer) => this.onStdout(chunk));
    this.child.stderr?.on('data', (chunk: Buffer) => this.onStderrData(chunk));
    // A child that exits while a write is queued: EPIPE is the exit's business, reported there.
    this.child.stdin?.on('error', () => undefined);
    this.child.once('error', (err) => this.finish(null, null, err));
    this.child.once('exit', (code, signal) => this.finish(code, signal));
  }

  get running(): boolean {
    return !this.exited;
  }

  /**
   * Writes one message as one line. False when the pipe's buffer is full: the caller may keep
   * writing (Node queues it) but should slow down; `drained` says when the buffer emptied.
   */
  write(message: unknown): boolean {
    const stdin = this.child.stdin;
    if (this.exited || stdin === null || stdin.destroyed || stdin.writableEnded) return false;
    // JSON.stringify escapes every newline inside strings: one message is always one line.
    return stdin.write(`${JSON.stringify(message)}\n`);
  }

  /** Bytes written to stdin that the child has not read yet. */
  get unread(): number {
    return this.child.stdin?.writableLength ?? 0;
  }

  /**
   * Back-pressure from the clients: while one cannot take more, stdout is not read, so the
   * pipe fills and the child's own writes wait — nothing piles up in the gateway.
   */
  pauseReading(paused: boolean): void {
    if (paused) this.child.stdout?.pause();
    else this.child.stdout?.resume();
  }

  /**
   * Stops the child: stdin closed and SIGTERM to its group, SIGKILL to the group after `graceMs`
   * (and once it exited, for anything it left behind). Resolves when it has exited.
   */
  stop(graceMs: number): Promise<void> {
    if (this.exited) {
      this.killGroup('SIGKILL');
      return Promise.resolve();
    }
    this.child.stdin?.end();
    this.killGroup('SIGTERM');
    const timer = setTimeout(() => this.killGroup('SIGKILL'), graceMs);
    timer.unref();
    return new Promise((resolve) => {
      this.exitWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private killGroup(signal: NodeJS.Signals): void {
    if (this.pid === undefined) return;
    try {
      process.kill(-this.pid, signal);
    } catch {
      // ESRCH: the group is gone already. EPERM cannot happen for a group the gateway started.
    }
  }

  private finish(code: number | null, signal: NodeJS.Signals | null, error?: Error): void {
    if (this.exited) return;
    this.exited = true;
    // Whatever the leader started dies with it: no orphaned grandchildren holding files or ports.
    this.killGroup('SIGKILL');
    this.listener.onExit(code, signal, error);
    for (const waiter of this.exitWaiters.splice(0)) waiter();
  }

  private onStdout(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline;
      if (!this.skipping) {
        this.pending += end - start;
        if (this.pending > this.spec.maxLineBytes) {
          // Too long to be read: skipped to its end, whatever it held; its two ends are kept to
          // tell whose answer it was (the top-level id is first or last in every serializer).
          this.skipping = true;
          this.skipHead = Buffer.concat([...this.pieces, chunk.subarray(start, end)]).subarray(0, EDGE_BYTES);
          this.skipTail = lastBytes([...this.pieces, chunk.subarray(start, end)], EDGE_BYTES);
          this.pieces = [];
        } else if (end > start) this.pieces.push(chunk.subarray(start, end));
      } else if (end > start) {
        const seen = Buffer.concat([this.skipTail, chunk.subarray(start, end)]);
        this.skipTail = seen.subarray(Math.max(0, seen.length - EDGE_BYTES));
      }
      if (newline === -1) return;
      if (this.skipping) {
        this.listener.onBadLine('too_large', {
          head: this.skipHead.toString('latin1'),
          tail: this.skipTail.toString('latin1'),
        });
        this.skipHead = EMPTY;
        this.skipTail = EMPTY;
      } else this.line();
      this.skipping = false;
      this.pieces = [];
      this.pending = 0;
      start = newline + 1;
    }
  }

  private line(): void {
    const bytes = this.pieces.length === 1 ? (this.pieces[0] as Buffer) : Buffer.concat(this.pieces);
    let text: string;
    try {
      text = this.fatal.decode(bytes);
    } catch {
      this.listener.onBadLine('not_json');
      return;
    }
    // Windows-style line ends and blank lines are tolerated, as most clients do.
    if (text.endsWith('\r')) text = text.slice(0, -1);
    if (text.trim() === '') return;
    const problem = checkStrictJson(text, { maxDepth: this.spec.maxJsonDepth });
    if (problem === 'syntax') {
      this.listener.onBadLine('not_json');
      return;
    }
    if (problem === 'too_deep') {
      this.listener.onBadLine('too_deep');
      return;
    }
    // Duplicate or case-folded keys, inexact numbers: the child's message is not what it seems.
    if (problem !== undefined) {
      this.listener.onBadLine('not_jsonrpc');
      return;
    }
    const value: unknown = JSON.parse(text);
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      this.listener.onBadLine('not_jsonrpc');
      return;
    }
    if ((value as ChildMessage).jsonrpc !== '2.0') {
      this.listener.onBadLine('not_jsonrpc');
      return;
    }
    this.listener.onMessage(value as ChildMessage);
  }

  private onStderrData(chunk: Buffer): void {
    let text = this.stderrLine + this.stderr.write(chunk);
    let newline = text.indexOf('\n');
    while (newline !== -1) {
      this.listener.onStderr(text.slice(0, Math.min(newline, MAX_STDERR_LINE)));
      text = text.slice(newline + 1);
      newline = text.indexOf('\n');
    }
    this.stderrLine = text.length > MAX_STDERR_LINE ? text.slice(0, MAX_STDERR_LINE) : text;
  }
}

/** The last `n` bytes of the pieces of a line, without copying the rest. */
function lastBytes(pieces: readonly Buffer[], n: number): Buffer {
  const tail: Buffer[] = [];
  let length = 0;
  for (let i = pieces.length - 1; i >= 0 && length < n; i--) {
    const piece = pieces[i] as Buffer;
    tail.unshift(piece);
    length += piece.length;
  }
  const joined = Buffer.concat(tail);
  return joined.subarray(Math.max(0, joined.length - n));
}
