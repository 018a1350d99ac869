import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Logger } from 'pino';
import type { FileWatch } from '../config/reload.js';
import type { Config } from '../config/schema.js';
import { PinSet, parsePins } from './pins.js';

/**
 * The pin files of the routes in force, read at start and re-read when they change (the one
 * directory watcher), by the routes' `pins` paths relative to the policy file. A missing file is
 * an empty pin set (every definition unpinned: hidden under `block`); a file that does not read
 * (another format, a hand-edited definition) keeps the pins in force — or none, at start — and is
 * logged.
 */
export class PinStore {
  private readonly sets = new Map<string, PinSet>();
  private readonly watched = new Set<string>();
  /** Each file's `volatileMeta` as the policy in force says (a reload may change it). */
  private readonly volatile = new Map<string, ReadonlySet<string>>();

  constructor(
    private readonly base: string,
    private readonly logger: Logger,
    private readonly watch: FileWatch | undefined,
  ) {}

  /** The base directory of a policy file's `pins` paths: the file's own, or the working directory. */
  static baseOf(policyPath: string | undefined): string {
    return policyPath === undefined ? process.cwd() : dirname(resolve(policyPath));
  }

  /** Reads (and watches) the pin file of every route of `config` that names one. */
  sync(config: Config): void {
    for (const route of config.routes) {
      if (route.pins === undefined) continue;
      const path = resolve(this.base, route.pins);
      const volatileMeta = new Set(route.volatileMeta);
      this.volatile.set(path, volatileMeta);
      this.load(path, readOrEmpty(path), volatileMeta);
      if (this.watch === undefined || this.watched.has(path)) continue;
      this.watched.add(path);
      this.watch.add({
        name: `pins ${route.pins}`,
        paths: [path],
        current: [Buffer.from(readOrEmpty(path))],
        onChange: (contents) => {
          this.load(path, Buffer.concat(contents).toString('utf8'), this.volatile.get(path) ?? volatileMeta);
          return true;
        },
      });
    }
  }

  /** The pins a route's `pins` path holds now (empty until read). */
  get(pins: string): PinSet {
    return this.sets.get(resolve(this.base, pins)) ?? EMPTY;
  }

  /** What a route reads on each call: its `pins` path resolved once, the set it holds now. */
  current(pins: string): () => PinSet {
    const path = resolve(this.base, pins);
    return () => this.sets.get(path) ?? EMPTY;
  }

  private load(path: string, text: string, volatileMeta: ReadonlySet<string>): void {
    if (text === '') {
      if (!this.sets.has(path))
        this.logger.warn({ pins: path }, 'pin file missing or empty: every tool and prompt is unpinned');
      this.sets.set(path, EMPTY);
      return;
    }
    const parsed = parsePins(text, volatileMeta);
    if (!(parsed instanceof PinSet)) {
      this.logger.error(
        { pins: path, problem: parsed.problem },
        'pin file does not read: keeping the pins in force',
      );
      return;
    }
    this.sets.set(path, parsed);
    this.logger.info({ pins: path, count: parsed.size }, 'pins loaded');
  }
}

const EMPTY = new PinSet([]);

function readOrEmpty(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw err;
  }
}
