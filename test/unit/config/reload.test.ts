/**
 * config/reload.ts: the one directory watcher (one watch per directory, shared by the policy file
 * and the TLS files; a change in place, an editor's atomic rename and the kubelet's `..data`
 * symlink swap are all seen; a touch is not; contents a set cannot use yet are offered again; an
 * unreadable file is waited for) and the policy reload (an invalid or a refused file keeps the
 * running policy and is counted; a valid one is applied, counted and named by
 * `portcullis_policy_info`).
 */
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import {
  createFileWatch,
  createPolicyReload,
  type FileWatch,
  type FileWatchOptions,
  policyHash,
  type WatchDirectory,
} from '../../../src/config/reload.js';
import type { Config } from '../../../src/config/schema.js';
import { createMetrics, type Metrics } from '../../../src/metrics/registry.js';

let root: string;
let n = 0;
/** A fresh directory per test. */
const newDir = () => {
  const dir = join(root, `d${n++}`);
  mkdirSync(dir);
  return dir;
};
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'portcullis-reload-unit-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const silent = pino({ level: 'silent' });
const watches: FileWatch[] = [];
afterEach(() => {
  for (const watch of watches.splice(0)) watch.close();
});
/** A watch closed after the test. Polls rarely unless told: what is seen comes from the watcher. */
function fileWatch(options: Partial<FileWatchOptions> = {}): FileWatch {
  const watch = createFileWatch({ logger: silent, pollMs: 60_000, settleMs: 20, ...options });
  watches.push(watch);
  return watch;
}

/** A watchDirectory that records the directories watched and lets the test send events. */
function recordingWatcher(): {
  watchDirectory: WatchDirectory;
  dirs: string[];
  emit(dir: string, name: string | null): void;
} {
  const listeners = new Map<string, (name: string | null) => void>();
  const dirs: string[] = [];
  return {
    dirs,
    watchDirectory: (dir, onEvent) => {
      dirs.push(dir);
      listeners.set(dir, onEvent);
      return { close: () => listeners.delete(dir) };
    },
    emit: (dir, name) => listeners.get(dir)?.(name),
  };
}

/** Collects what `onChange` is called with, as text; answers `settle` (default true). */
function changes(settle: () => boolean = () => true) {
  const seen: string[][] = [];
  return {
    seen,
    onChange: (contents: readonly Buffer[]) => {
      seen.push(contents.map((content) => content.toString('utf8')));
      return settle();
    },
  };
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('createFileWatch: one directory watcher', () => {
  it('watches each directory once, whichever sets of files are in it', () => {
    const [a, b] = [newDir(), newDir()];
    for (const [dir, name] of [
      [a, 'portcullis.yaml'],
      [a, 'tls.crt'],
      [a, 'tls.key'],
      [b, 'ca.crt'],
    ] as const)
      writeFileSync(join(dir, name), name);
    const recorder = recordingWatcher();
    const watch = fileWatch({ watchDirectory: recorder.watchDirectory });
    watch.add({ name: 'policy', paths: [join(a, 'portcullis.yaml')], current: [], ...changes() });
    watch.add({
      name: 'tls',
      paths: [join(a, 'tls.crt'), join(a, 'tls.key'), join(b, 'ca.crt')],
      current: [],
      ...changes(),
    });
    expect(recorder.dirs).toEqual([a, b]);
  });

  it('re-reads only the sets with a file of the event’s name, or at a `..` swap, or at an unnamed event', async () => {
    const dir = newDir();
    const [policy, cert, key] = ['portcullis.yaml', 'tls.crt', 'tls.key'].map((name) => join(dir, name)) as [
      string,
      string,
      string,
    ];
    writeFileSync(policy, 'p1');
    writeFileSync(cert, 'c1');
    writeFileSync(key, 'k1');
    const recorder = recordingWatcher();
    const watch = fileWatch({ watchDirectory: recorder.watchDirectory });
    const policyChanges = changes();
    const tlsChanges = changes();
    watch.add({ name: 'policy', paths: [policy], current: [Buffer.from('p1')], ...policyChanges });
    watch.add({
      name: 'tls',
      paths: [cert, key],
      current: [Buffer.from('c1'), Buffer.from('k1')],
      ...tlsChanges,
    });

    writeFileSync(policy, 'p2');
    writeFileSync(key, 'k2');
    recorder.emit(dir, 'tls.key');
    await vi.waitFor(() => expect(tlsChanges.seen).toEqual([['c1', 'k2']]));
    await pause(60);
    expect(policyChanges.seen, 'the policy set has no file named tls.key').toEqual([]);
    recorder.emit(dir, 'unrelated.txt');
    await pause(60);
    expect(policyChanges.seen).toEqual([]);
    recorder.emit(dir, '..data');
    await vi.waitFor(() => expect(policyChanges.seen).toEqual([['p2']]));
    writeFileSync(policy, 'p3');
    recorder.emit(dir, null);
    await vi.waitFor(() => expect(policyChanges.seen).toEqual([['p2'], ['p3']]));
    expect(tlsChanges.seen).toEqual([['c1', 'k2']]);
  });

  it('sees a file changed in place through the directory watch', async () => {
    const file = join(newDir(), 'portcullis.yaml');
    writeFileSync(file, 'one');
    const seen = changes();
    fileWatch().add({ name: 'policy', paths: [file], current: [Buffer.from('one')], ...seen });
    writeFileSync(file, 'two');
    await vi.waitFor(() => expect(seen.seen).toEqual([['two']]));
  });

  it('sees an editor’s atomic save: a new file renamed over the old one', async () => {
    const dir = newDir();
    const file = join(dir, 'portcullis.yaml');
    writeFileSync(file, 'one');
    const seen = changes();
    fileWatch().add({ name: 'policy', paths: [file], current: [Buffer.from('one')], ...seen });
    writeFileSync(join(dir, '.portcullis.yaml.swp'), 'two');
    renameSync(join(dir, '.portcullis.yaml.swp'), file);
    await vi.waitFor(() => expect(seen.seen).toEqual([['two']]));
  });

  it('sees the kubelet’s swap of a mounted ConfigMap or Secret (`..data` symlink renamed over)', async () => {
    // The mount: tls.crt -> ..data/tls.crt, tls.key -> ..data/tls.key, ..data -> ..v1/
    const mount = newDir();
    mkdirSync(join(mount, '..v1'));
    writeFileSync(join(mount, '..v1', 'tls.crt'), 'cert-1');
    writeFileSync(join(mount, '..v1', 'tls.key'), 'key-1');
    symlinkSync('..v1', join(mount, '..data'));
    for (const name of ['tls.crt', 'tls.key']) symlinkSync(join('..data', name), join(mount, name));
    const seen = changes();
    fileWatch().add({
      name: 'tls',
      paths: [join(mount, 'tls.crt'), join(mount, 'tls.key')],
      current: [Buffer.from('cert-1'), Buffer.from('key-1')],
      ...seen,
    });
    mkdirSync(join(mount, '..v2'));
    writeFileSync(join(mount, '..v2', 'tls.crt'), 'cert-2');
    writeFileSync(join(mount, '..v2', 'tls.key'), 'key-2');
    symlinkSync('..v2', join(mount, '..data_tmp'));
    renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
    await vi.waitFor(() => expect(seen.seen).toEqual([['cert-2', 'key-2']]));
  });

  it('ignores a touch or a rewrite with the same content', async () => {
    const dir = newDir();
    const file = join(dir, 'portcullis.yaml');
    writeFileSync(file, 'same');
    const recorder = recordingWatcher();
    const seen = changes();
    fileWatch({ watchDirectory: recorder.watchDirectory }).add({
      name: 'policy',
      paths: [file],
      current: [Buffer.from('same')],
      ...seen,
    });
    writeFileSync(file, 'same');
    recorder.emit(dir, 'portcullis.yaml');
    await pause(80);
    expect(seen.seen).toEqual([]);
    // The control: a real change through the same path is seen.
    writeFileSync(file, 'other');
    recorder.emit(dir, 'portcullis.yaml');
    await vi.waitFor(() => expect(seen.seen).toEqual([['other']]));
  });

  it('offers contents again while the set cannot use them (a certificate before its key), then no more', async () => {
    const dir = newDir();
    const file = join(dir, 'tls.crt');
    writeFileSync(file, 'old');
    let usable = false;
    /** How many calls there were when one first answered true. */
    let settledAt: number | undefined;
    const seen = changes(() => {
      if (usable) settledAt ??= seen.seen.length;
      return usable;
    });
    fileWatch({ pollMs: 30, watchDirectory: () => ({ close: () => undefined }) }).add({
      name: 'tls',
      paths: [file],
      current: [Buffer.from('old')],
      ...seen,
    });
    writeFileSync(file, 'new');
    await vi.waitFor(() => expect(seen.seen.length).toBeGreaterThanOrEqual(2));
    expect(seen.seen.every(([text]) => text === 'new')).toBe(true);
    usable = true;
    await vi.waitFor(() => expect(settledAt).toBeDefined());
    await pause(150);
    expect(seen.seen.length, 'settled contents are not offered again').toBe(settledAt);
  });

  it('waits for a file that is briefly missing, keeping what runs, and polls without any watcher', async () => {
    const dir = newDir();
    const file = join(dir, 'portcullis.yaml');
    writeFileSync(file, 'one');
    const seen = changes();
    const cannotWatch: WatchDirectory = () => {
      throw Object.assign(new Error('no inotify here'), { code: 'ENOSPC' });
    };
    fileWatch({ pollMs: 30, watchDirectory: cannotWatch }).add({
      name: 'policy',
      paths: [file],
      current: [Buffer.from('one')],
      ...seen,
    });
    unlinkSync(file);
    await pause(100);
    expect(seen.seen).toEqual([]);
    writeFileSync(file, 'two');
    await vi.waitFor(() => expect(seen.seen).toEqual([['two']]));
  });

  it('stops at close: no event or poll reads the files after it', async () => {
    const file = join(newDir(), 'portcullis.yaml');
    writeFileSync(file, 'one');
    const seen = changes();
    const watch = fileWatch({ pollMs: 30 });
    watch.add({ name: 'policy', paths: [file], current: [Buffer.from('one')], ...seen });
    watch.close();
    writeFileSync(file, 'two');
    await pause(150);
    expect(seen.seen).toEqual([]);
  });
});

function policyText(opts: { adminPort?: number; scope?: string } = {}): string {
  return `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: ${opts.adminPort ?? 0} }
identities: { anonymous: {} }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: http://127.0.0.1:9/mcp
    authentication: { methods: [anonymous] }
    tools: { echo: ${opts.scope ?? 'files:read'} }
`;
}

async function reloadCount(metrics: Metrics, result: string): Promise<number> {
  return (await metrics.reloads.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
}

async function policyInfo(metrics: Metrics): Promise<string[]> {
  return (await metrics.policyInfo.get()).values.map((v) => String(v.labels.hash));
}

describe('createPolicyReload: validate, then swap or keep', () => {
  function setUp(watchOptions: Partial<FileWatchOptions> = {}) {
    const dir = newDir();
    const path = join(dir, 'portcullis.yaml');
    const source = policyText();
    writeFileSync(path, source);
    const metrics = createMetrics('test');
    const applied: Config[] = [];
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const reload = createPolicyReload({
      config: parseConfig(source),
      path,
      source,
      watch: fileWatch(watchOptions),
      logger,
      metrics,
      apply: async (next) => {
        applied.push(next);
      },
    });
    return { path, source, metrics, applied, lines, reload };
  }

  it('names the running file in portcullis_policy_info from the start', async () => {
    const { metrics, source } = setUp();
    expect(await policyInfo(metrics)).toEqual([policyHash(source).slice(0, 16)]);
  });

  it('keeps the running policy when the new file is invalid: nothing applied, counted, logged with its position', async () => {
    const { path, source, metrics, applied, lines, reload } = setUp();
    writeFileSync(path, `${policyText()}\n  - route: [broken`);
    expect(await reload.reload()).toBe('invalid');
    expect(applied).toEqual([]);
    expect(await reloadCount(metrics, 'invalid')).toBeGreaterThanOrEqual(1);
    expect(await policyInfo(metrics)).toEqual([policyHash(source).slice(0, 16)]);
    expect(lines.join('')).toContain('portcullis.yaml:');
  });

  it('refuses a change to a field that cannot change live, naming it, and keeps the running policy', async () => {
    const { path, metrics, applied, lines, reload } = setUp();
    writeFileSync(path, policyText({ adminPort: 1 }));
    expect(await reload.reload()).toBe('refused');
    expect(applied).toEqual([]);
    expect(await reloadCount(metrics, 'refused')).toBeGreaterThanOrEqual(1);
    expect(lines.join('')).toMatch(/admin cannot change while running/);
  });

  it('applies a valid change to routes: swapped, counted once, and named by portcullis_policy_info', async () => {
    const { path, metrics, applied, reload } = setUp();
    const next = policyText({ scope: 'files:admin' });
    writeFileSync(path, next);
    expect(['applied', 'unchanged']).toContain(await reload.reload());
    expect(applied).toHaveLength(1);
    expect(applied[0]?.routes[0]?.tools).toEqual({ echo: 'files:admin' });
    expect(await reloadCount(metrics, 'applied')).toBe(1);
    expect(await policyInfo(metrics)).toEqual([policyHash(next).slice(0, 16)]);
    expect(await reload.reload(), 'the same text again is no change').toBe('unchanged');
    expect(applied).toHaveLength(1);
  });

  it('applies a change the directory watch sees, with no SIGHUP', async () => {
    const { path, applied } = setUp();
    writeFileSync(path, policyText({ scope: 'files:admin' }));
    await vi.waitFor(() => expect(applied).toHaveLength(1));
  });

  it('reports an invalid file the watch sees once, not at every poll', async () => {
    const { path, metrics, applied } = setUp({ pollMs: 30 });
    writeFileSync(path, 'routes: [');
    await vi.waitFor(async () => expect(await reloadCount(metrics, 'invalid')).toBe(1));
    await pause(200);
    expect(await reloadCount(metrics, 'invalid')).toBe(1);
    expect(applied).toEqual([]);
  });

  it('without a policy file there is nothing to reload', async () => {
    const metrics = createMetrics('test');
    const config = parseConfig(policyText());
    const reload = createPolicyReload({
      config,
      watch: fileWatch(),
      logger: silent,
      metrics,
      apply: () => Promise.reject(new Error('never applied')),
    });
    expect(await reload.reload()).toBe('unchanged');
    expect(await policyInfo(metrics)).toEqual([policyHash(JSON.stringify(config)).slice(0, 16)]);
  });
});
