import type { Logger } from 'pino';
import type { StdioUpstreamConfig } from '../../config/schema.js';
import { LIST_CHANGED_FILTERS, RESOURCES_UNSUBSCRIBE, RESOURCES_UPDATED } from '../../jsonrpc/methods.js';
import type { Metrics } from '../../metrics/registry.js';
import { GATEWAY_CAPABILITIES, modernMeta } from '../gateway-client.js';
import { type ChildMessage, StdioChild } from './child.js';
import { type Attribution, Connection, type Dropped, type ServerFacts } from './connection.js';
import {
  type Account,
  childEnvironment,
  makeProcessDirs,
  type ProcessDirs,
  removeProcessDirs,
} from './environment.js';
import { handshake } from './handshake.js';
import { ResourceSubscriptions } from './subscriptions.js';

/** stderr lines logged per process per window; the rest are counted in one line. */
const STDERR_LINES = 50;
const STDERR_WINDOW_MS = 10_000;

export interface ProcessOptions {
  readonly route: string;
  /** The pool's key: an identity, `shared`, or a session. Logged, never a secret. */
  readonly key: string;
  readonly spec: StdioUpstreamConfig;
  readonly account: Account;
  readonly attribution: Attribution;
  readonly maxLineBytes: number;
  readonly maxJsonDepth: number;
  readonly logger: Logger;
  readonly metrics: Metrics | undefined;
  /** The process ended, whoever ended it (`crashed`: not stopped by the gateway). */
  readonly onExit: (process: ManagedProcess, crashed: boolean) => void;
}

/** A GET stream listening to what the process says to everyone. */
export interface Listener {
  /** The legacy session it belongs to: resource updates reach only the sessions that subscribed. */
  readonly session: string;
  push(message: Readonly<Record<string, unknown>>): void;
  /** The process is gone: the stream ends (its session has ended with it). */
  end(): void;
}

/**
 * One running stdio server: the child, the connection the gateway speaks over it, its own
 * directories, and what keeps it from being idle (calls in flight, open streams).
 */
export class ManagedProcess {
  readonly connection: Connection;
  /** The handshake's outcome: the server's facts, or why it could not be used. */
  readonly ready: Promise<ServerFacts>;
  readonly startedAt = Date.now();
  lastUsed = Date.now();
  readonly listeners = new Set<Listener>();
  /** Resource subscriptions of its legacy sessions, reference-counted toward the process. */
  readonly subscriptions = new ResourceSubscriptions();
  /** Legacy sessions bound to this process: they end with it. */
  readonly sessions = new Set<string>();
  private readonly child: StdioChild;
  private readonly dirs: ProcessDirs;
  private stopping = false;
  private exited = false;
  /** Until the handshake settles: a starting process is busy, never idle (never evicted as idle). */
  private starting = true;
  /** The gateway's own subscription on a 2026-07-28 process, and the filter it was opened with. */
  private followId: number | undefined = undefined;
  private followKey = '{}';
  private stderrLines = 0;
  private stderrDropped = 0;
  private stderrWindow = 0;

  constructor(private readonly options: ProcessOptions) {
    const { spec, account, logger } = options;
    this.dirs = makeProcessDirs(account);
    this.connection = new Connection(
      {
        write: (message) => this.child.write(message),
        broadcast: (message) => this.broadcast(message),
        dropped: (why, method) => this.dropped(why, method),
        pressure: (blocked) => this.child.pauseReading(blocked),
      },
      options.attribution,
      spec.clientCapabilities?.roots,
    );
    this.child = new StdioChild(
      {
        command: spec.command,
        env: childEnvironment(spec, this.dirs),
        cwd: spec.cwd ?? this.dirs.home,
        uid: account.uid,
        gid: account.gid,
        maxLineBytes: options.maxLineBytes,
        maxJsonDepth: options.maxJsonDepth,
      },
      {
        onMessage: (message) => this.connection.receive(message),
        onBadLine: (why, edges) => {
          // An answer too long to read fails the call waiting for it, when it can be named.
          if (why === 'too_large') this.connection.tooLarge(edges);
          options.metrics?.stdioDropped.inc({ route: options.route, kind: why });
          logger.warn(
            { route: options.route, process: options.key, why },
            'stdio server wrote a line that is not a message',
          );
        },
        onStderr: (line) => this.stderr(line),
        onExit: (code, signal, error) => this.onExit(code, signal, error),
      },
    );
    this.ready = handshake(
      this.connection,
      spec.startTimeoutMs,
      spec.clientCapabilities === undefined ? GATEWAY_CAPABILITIES : { ...GATEWAY_CAPABILITIES, roots: {} },
    );
    this.ready.then(
      (facts) => {
        this.connection.facts = facts;
        this.starting = false;
      },
      // Observed here so a failed start is never an unhandled rejection; callers await it too.
      () => {
        this.starting = false;
      },
    );
  }

  get key(): string {
    return this.options.key;
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Alive and not being stopped: new calls may use it. */
  get usable(): boolean {
    return !this.exited && !this.stopping;
  }

  /** Started and handshaken, with nothing in flight and no open stream. */
  get idle(): boolean {
    return !this.starting && this.connection.inFlight === 0 && this.listeners.size === 0;
  }

  /** The gateway stopped it (idle, evicted, session ended, reload, shutdown): no crash. */
  get stopped(): boolean {
    return this.stopping;
  }

  /** Bytes queued for the child's stdin that it has not read yet. */
  get unread(): number {
    return this.child.unread;
  }

  /** Stops the process (stdin closed, SIGTERM, then SIGKILL after `graceMs`). */
  stop(graceMs: number): Promise<void> {
    this.stopping = true;
    return this.child.stop(graceMs);
  }

  /** A legacy session bound to it ended: the subscriptions only it held are ended on the process. */
  endSession(session: string): void {
    this.sessions.delete(session);
    const ended = this.subscriptions.dropSession(session);
    if (this.connection.facts?.era === 'modern') {
      if (ended.length > 0) this.followModern();
      return;
    }
    for (const uri of ended) if (this.usable) void this.connection.ask(RESOURCES_UNSUBSCRIBE, { uri });
  }

  /**
   * For a 2026-07-28 process serving legacy sessions: the gateway's own `subscriptions/listen`,
   * asking for every list_changed the process offers and the URIs its sessions subscribed to, so
   * their GET streams hear what a legacy server would have sent them. Re-opened when the URIs
   * change (a subscription's filter is fixed when it opens).
   */
  followModern(): void {
    const facts = this.connection.facts;
    if (facts?.era !== 'modern' || !this.usable) return;
    const capabilities = facts.capabilities as Record<string, Record<string, unknown> | undefined>;
    const notifications: Record<string, unknown> = {};
    for (const row of LIST_CHANGED_FILTERS)
      if (capabilities[row.capability]?.listChanged === true) notifications[row.filter] = true;
    const uris = this.subscriptions.uris();
    if (uris.length > 0 && capabilities.resources?.subscribe === true)
      notifications.resourceSubscriptions = uris;
    const key = JSON.stringify(notifications);
    if (key === this.followKey) return;
    this.followKey = key;
    if (this.followId !== undefined) this.connection.cancelOwn(this.followId);
    this.followId =
      Object.keys(notifications).length === 0
        ? undefined
        : this.connection.listenOwn({ _meta: modernMeta(), notifications });
  }

  /**
   * A notification about the server as a whole: a resource update to the sessions that subscribed
   * to that URI, anything else (the `list_changed` ones) to every open GET stream.
   */
  private broadcast(message: ChildMessage): void {
    const method = message.method as string;
    const uri = (message.params as { uri?: unknown } | undefined)?.uri;
    let delivered = false;
    for (const listener of this.listeners) {
      if (
        method === RESOURCES_UPDATED &&
        (typeof uri !== 'string' || !this.subscriptions.holds(uri, listener.session))
      )
        continue;
      listener.push(message);
      delivered = true;
    }
    if (!delivered) this.dropped('broadcast', method);
  }

  private onExit(code: number | null, signal: NodeJS.Signals | null, error?: Error): void {
    this.exited = true;
    const crashed = !this.stopping;
    const fields = {
      route: this.options.route,
      process: this.options.key,
      pid: this.child.pid,
      code,
      signal,
    };
    if (error !== undefined)
      this.options.logger.error({ ...fields, err: error }, 'stdio server could not be started');
    else if (crashed) this.options.logger.warn(fields, 'stdio server exited');
    this.connection.close();
    // The legacy sessions bound to it are over: their GET streams end now, not at an idle timeout.
    for (const listener of this.listeners) listener.end();
    this.listeners.clear();
    removeProcessDirs(this.dirs);
    this.options.onExit(this, crashed);
  }

  private dropped(why: Dropped, method: string | undefined): void {
    this.options.metrics?.stdioDropped.inc({ route: this.options.route, kind: why });
    // A list_changed with no GET stream open is the normal case: counted, logged only at debug.
    const level = why === 'broadcast' ? 'debug' : 'info';
    this.options.logger[level](
      { route: this.options.route, process: this.options.key, why, method },
      'stdio message dropped',
    );
  }

  private stderr(line: string): void {
    const now = Date.now();
    if (now - this.stderrWindow > STDERR_WINDOW_MS) {
      if (this.stderrDropped > 0)
        this.options.logger.info(
          { route: this.options.route, process: this.options.key, dropped: this.stderrDropped },
          'stdio server stderr lines not logged',
        );
      this.stderrWindow = now;
      this.stderrLines = 0;
      this.stderrDropped = 0;
    }
    if (++this.stderrLines > STDERR_LINES) {
      this.stderrDropped++;
      return;
    }
    this.options.logger.info(
      { route: this.options.route, process: this.options.key, stderr: line },
      'stdio server',
    );
  }
}
