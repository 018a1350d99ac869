import type { Logger } from 'pino';
import type { StdioUpstreamConfig } from '../../config/schema.js';
import { type Refusal, refuse } from '../../errors.js';
import type { Metrics } from '../../metrics/registry.js';
import type { Attribution, ServerFacts } from './connection.js';
import type { Account } from './environment.js';
import { HandshakeError } from './handshake.js';
import { ManagedProcess } from './process.js';

/** SIGKILL follows SIGTERM after this (DESIGN.md: 5 s). */
export const STOP_GRACE_MS = 5_000;

export interface PoolOptions {
  readonly route: string;
  readonly spec: StdioUpstreamConfig;
  readonly account: Account;
  readonly maxLineBytes: number;
  readonly maxJsonDepth: number;
  readonly logger: Logger;
  readonly metrics: Metrics | undefined;
}

/** A started, handshaken process and what it said about itself. */
export interface Ready {
  readonly process: ManagedProcess;
  readonly facts: ServerFacts;
}

/** Crash history of one key: the restart backoff (DESIGN.md "Timeouts and restarts"). */
interface Crashes {
  count: number;
  /** No start before this (epoch ms). */
  notBefore: number;
  at: number;
}

/**
 * A stdio route's processes by key (an identity, `shared`, or a session): started on first need,
 * at most `maxProcesses` at once (full: the least recently used idle one stops; none idle → 429),
 * stopped after `idleTimeoutSec` idle, restarted after a crash with backoff — the first restart at
 * once, then `backoffMs` doubling to `maxBackoffMs`; a call during backoff gets 503
 * `upstream_unavailable` with `Retry-After`.
 */
export class ProcessPool {
  private readonly processes = new Map<string, ManagedProcess>();
  private readonly crashes = new Map<string, Crashes>();
  private readonly idleTimers = new Map<ManagedProcess, NodeJS.Timeout>();
  private closed = false;
  /** Processes whose failure was counted once (an exit and a failed handshake are one crash). */
  private readonly counted = new WeakSet<ManagedProcess>();
  private readonly attribution: Attribution;

  private readonly labels: { readonly route: string };

  constructor(private readonly options: PoolOptions) {
    this.labels = { route: options.route };
    this.attribution = options.spec.processes === 'shared' ? 'only' : 'latest';
  }

  /** The process for `key`, started when there is none; a refusal when none can serve. */
  async acquire(key: string): Promise<Ready | Refusal> {
    if (this.closed) return refuse('draining', { headers: { 'retry-after': '1' } });
    let process = this.processes.get(key);
    if (process === undefined || !process.usable) {
      const refusal = this.startable(key);
      if (refusal !== undefined) return refusal;
      process = this.start(key);
    }
    this.touch(process);
    try {
      return { process, facts: await process.ready };
    } catch (err) {
      if (!(err instanceof HandshakeError)) throw err;
      return this.failedStart(process, err);
    }
  }

  /** The process for `key` if it is running (a legacy session's, which must not be restarted). */
  running(key: string): ManagedProcess | undefined {
    const process = this.processes.get(key);
    return process?.usable ? process : undefined;
  }

  /** Marks a process as used now; its idle timer starts again when it is idle. */
  touch(process: ManagedProcess): void {
    process.lastUsed = Date.now();
    const timer = this.idleTimers.get(process);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.idleTimers.delete(process);
    }
  }

  /** Called when a call ends or a stream closes: an idle process stops after `idleTimeoutSec`. */
  settled(process: ManagedProcess): void {
    // Least recently used counts from when its last call ended, not when it began.
    process.lastUsed = Date.now();
    if (!process.idle || !process.usable || this.idleTimers.has(process)) return;
    const timer = setTimeout(() => {
      this.idleTimers.delete(process);
      if (process.idle) this.retire(process);
    }, this.options.spec.idleTimeoutSec * 1000);
    timer.unref();
    this.idleTimers.set(process, timer);
  }

  /** Stops one process (a legacy session ended with DELETE on a `perSession` route). */
  retire(process: ManagedProcess): Promise<void> {
    if (this.processes.get(process.key) === process) this.processes.delete(process.key);
    this.options.metrics?.stdioProcesses.set(this.labels, this.processes.size);
    return process.stop(STOP_GRACE_MS);
  }

  /** Processes running now (metrics, tests). */
  get size(): number {
    return this.processes.size;
  }

  /** Every process stopped: SIGTERM, SIGKILL 5 s later; resolves when all have exited. */
  async close(): Promise<void> {
    this.closed = true;
    for (const timer of this.idleTimers.values()) clearTimeout(timer);
    this.idleTimers.clear();
    const all = [...this.processes.values()];
    this.processes.clear();
    await Promise.all(all.map((process) => process.stop(STOP_GRACE_MS)));
  }

  /** Whether a process for `key` may start now: backoff after crashes, `maxProcesses`. */
  private startable(key: string): Refusal | undefined {
    const crashes = this.crashes.get(key);
    const wait = crashes === undefined ? 0 : crashes.notBefore - Date.now();
    if (wait > 0)
      return refuse('upstream_unavailable', { headers: { 'retry-after': String(Math.ceil(wait / 1000)) } });
    if (this.processes.size < this.options.spec.maxProcesses) return undefined;
    let oldest: ManagedProcess | undefined;
    for (const process of this.processes.values())
      if (process.idle && (oldest === undefined || process.lastUsed < oldest.lastUsed)) oldest = process;
    if (oldest === undefined) return refuse('concurrency_limited', { headers: { 'retry-after': '1' } });
    void this.retire(oldest);
    return undefined;
  }

  private start(key: string): ManagedProcess {
    const process = new ManagedProcess({
      ...this.options,
      key,
      attribution: this.attribution,
      onExit: (exited, crashed) => this.onExit(exited, crashed),
    });
    this.processes.set(key, process);
    const metrics = this.options.metrics;
    if (metrics !== undefined) {
      const restart = String(this.crashes.has(key));
      metrics.stdioProcesses.set(this.labels, this.processes.size);
      process.ready.then(
        () => metrics.stdioStarts.inc({ ...this.labels, result: 'started', restart }),
        () => metrics.stdioStarts.inc({ ...this.labels, result: 'failed', restart }),
      );
    }
    return process;
  }

  private failedStart(process: ManagedProcess, err: HandshakeError): Refusal {
    // Stopped by the gateway while it started (shutdown, reload): not the server's failure.
    if (process.stopped && !this.counted.has(process)) return refuse('upstream_unreachable');
    if (!this.counted.has(process)) {
      this.options.logger.error(
        { route: this.options.route, process: process.key, err: err.message },
        'stdio server did not start',
      );
      this.crashed(process);
      void this.retire(process);
    }
    return refuse(err.timedOut ? 'upstream_timeout' : 'upstream_unreachable');
  }

  private onExit(process: ManagedProcess, crashed: boolean): void {
    if (this.processes.get(process.key) === process) this.processes.delete(process.key);
    this.options.metrics?.stdioExits.inc({ ...this.labels, reason: crashed ? 'crashed' : 'stopped' });
    this.options.metrics?.stdioProcesses.set(this.labels, this.processes.size);
    const timer = this.idleTimers.get(process);
    if (timer !== undefined) clearTimeout(timer);
    this.idleTimers.delete(process);
    if (crashed) this.crashed(process);
  }

  /** One more crash for the process's key (once per process): the next start waits, the first restart does not. */
  private crashed(process: ManagedProcess): void {
    if (this.counted.has(process)) return;
    this.counted.add(process);
    const { key, startedAt } = process;
    const { backoffMs, maxBackoffMs } = this.options.spec.restart;
    const now = Date.now();
    const earlier = this.crashes.get(key);
    // A process that ran longer than the longest backoff was not in a crash loop: start over.
    const count = earlier === undefined || now - startedAt > maxBackoffMs ? 1 : earlier.count + 1;
    const delay = count === 1 ? 0 : Math.min(backoffMs * 2 ** (count - 2), maxBackoffMs);
    this.crashes.set(key, { count, notBefore: now + delay, at: now });
    // Forget keys whose history no longer matters, so identities that come and go leave nothing.
    if (this.crashes.size > this.options.spec.maxProcesses * 4)
      for (const [other, entry] of this.crashes)
        if (now - entry.at > maxBackoffMs * 2) this.crashes.delete(other);
  }
}
