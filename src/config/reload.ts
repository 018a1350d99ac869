import { createHash } from 'node:crypto';
import { readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Metrics } from '../metrics/registry.js';
import { ConfigError, formatProblem, parseConfig } from './load.js';
import type { Config } from './schema.js';

// ---------------------------------------------------------------------------------------------
// Watch: one directory watcher for every file the gateway re-reads while running (the policy
// file, the listener's TLS files, and pin files).
// ---------------------------------------------------------------------------------------------

/** Files read together — the policy file alone, or a certificate, its key and the client CA. */
export interface WatchedFiles {
  /** Names the set in log lines (`policy`, `tls`). */
  readonly name: string;
  readonly paths: readonly string[];
  /** Their contents as the gateway runs on them now, in `paths` order: only a difference is a change. */
  readonly current: readonly Buffer[];
  /**
   * Called with the new contents, in `paths` order, when any file's content changed. Returns false
   * when they cannot be used yet (a new certificate whose new key is not written): the same
   * contents are offered again at the next event or poll. True settles them, used or refused (an
   * invalid policy is reported once, not at every poll).
   */
  readonly onChange: (contents: readonly Buffer[]) => boolean;
}

export interface FileWatch {
  add(files: WatchedFiles): void;
  /** Stops watching and polling (drain). */
  close(): void;
}

/** Starts watching one directory; `onEvent` hears the name of what changed in it (null: unknown). */
export type WatchDirectory = (dir: string, onEvent: (name: string | null) => void) => { close(): void };

export interface FileWatchOptions {
  readonly logger: Logger;
  /** Every set is re-read this often whatever the watcher says, in ms. Default 5000. */
  readonly pollMs?: number;
  /** After an event, how long to let the writer finish before reading, in ms. Default 200. */
  readonly settleMs?: number;
  /** Default: `fs.watch`, not keeping the process alive. */
  readonly watchDirectory?: WatchDirectory;
}

interface Entry {
  readonly files: WatchedFiles;
  /** For each directory holding one of the files, the base names watched in it. */
  readonly names: ReadonlyMap<string, ReadonlySet<string>>;
  fingerprint: string;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Directories are watched, not files: Kubernetes replaces a mounted ConfigMap or Secret by swapping
 * a symlink (`..data`), and editors save by renaming a new file over the old one — a watch on the
 * old file's inode would never see either. One watch per directory, shared by every set with a file
 * in it. Files are compared by content, so touches and swaps that change nothing are ignored; a
 * slow poll backs the watcher up (filesystems without events, missed events).
 */
export function createFileWatch({
  logger,
  pollMs = 5_000,
  settleMs = 200,
  watchDirectory = (dir, onEvent) => watchWithFs(dir, onEvent, logger),
}: FileWatchOptions): FileWatch {
  const entries: Entry[] = [];
  const directories = new Map<string, { close(): void } | undefined>();
  let closed = false;

  const check = (entry: Entry) => {
    entry.timer = undefined;
    let contents: Buffer[];
    try {
      contents = entry.files.paths.map((path) => readFileSync(path));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (typeof code !== 'string') throw err;
      // Mid-swap a file can be briefly absent: look again at the next event or poll.
      const level = code === 'ENOENT' ? 'debug' : 'warn';
      logger[level]({ files: entry.files.name, code }, 'watched file unreadable; keeping what is running');
      return;
    }
    const next = fingerprint(contents);
    if (next === entry.fingerprint) return;
    let settled: boolean;
    try {
      settled = entry.files.onChange(contents);
    } catch (err) {
      // Not a bad file but a bug in applying it: logged with its stack, the running state kept,
      // and the process goes on serving.
      logger.error({ err, files: entry.files.name }, 'applying a changed file failed');
      return;
    }
    if (settled) entry.fingerprint = next;
  };
  const soon = (entry: Entry) => {
    if (entry.timer === undefined && !closed) entry.timer = setTimeout(() => check(entry), settleMs);
  };
  const onEvent = (dir: string, name: string | null) => {
    for (const entry of entries) {
      const names = entry.names.get(dir);
      // `..data`, `..data_tmp`, `..2026_…`: the kubelet's swap of the directory's contents.
      if (names !== undefined && (name === null || name.startsWith('..') || names.has(name))) soon(entry);
    }
  };
  const watchOnce = (dir: string) => {
    if (directories.has(dir)) return;
    let handle: { close(): void } | undefined;
    try {
      handle = watchDirectory(dir, (name) => onEvent(dir, name));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (typeof code !== 'string') throw err;
      logger.warn({ dir, code }, 'cannot watch directory; polling only');
    }
    directories.set(dir, handle);
  };
  const poll = setInterval(() => {
    for (const entry of entries) check(entry);
  }, pollMs);
  poll.unref();

  return {
    add(files) {
      if (closed) return;
      const names = new Map<string, Set<string>>();
      for (const path of files.paths) {
        const dir = dirname(path);
        const inDir = names.get(dir) ?? new Set<string>();
        inDir.add(basename(path));
        names.set(dir, inDir);
      }
      entries.push({ files, names, fingerprint: fingerprint(files.current), timer: undefined });
      for (const dir of names.keys()) watchOnce(dir);
    },
    close() {
      closed = true;
      clearInterval(poll);
      for (const entry of entries) if (entry.timer !== undefined) clearTimeout(entry.timer);
      for (const handle of directories.values()) handle?.close();
      directories.clear();
    },
  };
}

function watchWithFs(dir: string, onEvent: (name: string | null) => void, logger: Logger): { close(): void } {
  const watcher = watch(dir, { persistent: false }, (_event, name) => onEvent(name));
  // A watched directory removed or unmounted: the poll carries on alone, and the process with it.
  watcher.on('error', (err: NodeJS.ErrnoException) => {
    logger.warn({ dir, code: err.code }, 'directory watch failed; polling only');
    watcher.close();
  });
  return watcher;
}

function fingerprint(contents: readonly Buffer[]): string {
  const hash = createHash('sha256');
  for (const content of contents) hash.update(content).update('\0');
  return hash.digest('hex');
}

/** SHA-256 of a policy text, hex: what `portcullis_policy_info` names and a reload compares. */
export function policyHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

// ---------------------------------------------------------------------------------------------
// Validate and swap: the policy file.
// ---------------------------------------------------------------------------------------------

export type ReloadResult = 'applied' | 'unchanged' | 'invalid' | 'refused';

/** What may change while running; listeners, TLS paths, limits, Redis, audit and the rest need a restart. */
const LIVE_FIELDS: ReadonlySet<string> = new Set(['routes', 'identities', 'gatewayIdentity']);

export interface PolicyReloadOptions {
  /** The running configuration. */
  readonly config: Config;
  /** The policy file: watched and re-read on change and on `reload()` (SIGHUP); none → nothing to reload. */
  readonly path?: string | undefined;
  /** The file's text as loaded, to tell a real change from a touch. Default: read from `path`. */
  readonly source?: string | undefined;
  readonly watch: FileWatch;
  readonly logger: Logger;
  readonly metrics: Pick<Metrics, 'reloads' | 'policyInfo'>;
  /**
   * Puts a validated configuration in force. Its synchronous part swaps (requests arriving after it
   * see the new policy); the promise covers what follows (closing answers the new policy revokes).
   */
  readonly apply: (next: Config) => Promise<void>;
  /**
   * What the file is checked against beyond its schema: facts of the machine it runs on (a stdio
   * route's `user` exists). A problem makes the file invalid, like a schema error.
   */
  readonly machineProblems?: ((next: Config) => readonly string[]) | undefined;
}

export interface PolicyReload {
  /** Re-reads the policy file: validated completely, then swapped atomically, or refused. */
  reload(): Promise<ReloadResult>;
}

/**
 * Hot reload (DESIGN.md, the policy file): a new file is validated completely before it can
 * replace the running one; only `routes` and `identities` change live — any other change is
 * refused, naming the field. Every attempt is counted (`portcullis_policy_reloads_total`), and
 * `portcullis_policy_info` names the hash of the file in force.
 */
export function createPolicyReload({
  config,
  path,
  source: loaded,
  watch: files,
  logger,
  metrics,
  apply,
  machineProblems,
}: PolicyReloadOptions): PolicyReload {
  let active = config;
  let source = loaded ?? (path === undefined ? undefined : readFileSync(path, 'utf8'));
  const setPolicyInfo = (text: string) => {
    metrics.policyInfo.reset();
    metrics.policyInfo.set({ hash: policyHash(text).slice(0, 16) }, 1);
  };
  setPolicyInfo(source ?? JSON.stringify(config));

  const reloadFrom = async (text: string): Promise<ReloadResult> => {
    if (source !== undefined && policyHash(text) === policyHash(source)) return 'unchanged';
    let next: Config;
    try {
      next = parseConfig(text, { file: basename(path ?? 'portcullis.yaml') });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      logger.error(
        { problems: err.problems.map(formatProblem) },
        'policy reload failed: the file is invalid; keeping the running policy',
      );
      metrics.reloads.inc({ result: 'invalid' });
      return 'invalid';
    }
    const problems = machineProblems?.(next) ?? [];
    if (problems.length > 0) {
      logger.error({ problems }, 'policy reload failed: the file is invalid; keeping the running policy');
      metrics.reloads.inc({ result: 'invalid' });
      return 'invalid';
    }
    const fixed = Object.keys(next).filter(
      (field) =>
        !LIVE_FIELDS.has(field) &&
        JSON.stringify(next[field as keyof Config]) !== JSON.stringify(active[field as keyof Config]),
    );
    if (fixed.length > 0) {
      logger.error(
        { fields: fixed },
        `policy reload refused: ${fixed.join(', ')} cannot change while running (restart to apply)`,
      );
      metrics.reloads.inc({ result: 'refused' });
      return 'refused';
    }
    active = next;
    source = text;
    const settled = apply(next);
    metrics.reloads.inc({ result: 'applied' });
    setPolicyInfo(text);
    logger.info({ routes: next.routes.map((route) => route.route) }, 'policy reloaded');
    await settled;
    return 'applied';
  };

  if (path !== undefined && source !== undefined) {
    files.add({
      name: 'policy',
      paths: [path],
      current: [Buffer.from(source, 'utf8')],
      onChange: (contents) => {
        reloadFrom(Buffer.concat(contents).toString('utf8')).catch((err: unknown) =>
          logger.error({ err }, 'policy reload failed'),
        );
        return true;
      },
    });
  }

  return {
    reload: async () => (path === undefined ? 'unchanged' : reloadFrom(readFileSync(path, 'utf8'))),
  };
}
