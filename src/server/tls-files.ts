import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';

export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
}

/** Reads the listener's certificate, key and client CA as configured. */
export function readTlsMaterial(tls: NonNullable<Config['tls']>): TlsMaterial {
  return {
    cert: readFileSync(tls.cert),
    key: readFileSync(tls.key),
    ...(tls.clientCA === undefined ? {} : { ca: readFileSync(tls.clientCA) }),
  };
}

/**
 * Re-reads the TLS files when they change on disk (cert-manager rotation) and hands the new
 * material to `apply` — which swaps the server's secure context: open connections keep theirs, new
 * handshakes get the new one, nothing restarts. Directories are watched, not files, because
 * Kubernetes replaces a mounted Secret by swapping a symlink; a slow poll backs the watcher up.
 * A half-written or mismatched pair is logged and the old material kept.
 */
export function watchTlsFiles(
  tls: NonNullable<Config['tls']>,
  apply: (material: TlsMaterial) => void,
  logger: Logger,
  pollMs = 10_000,
): () => void {
  let current = fingerprint(readTlsMaterial(tls));
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    timer = undefined;
    let material: TlsMaterial;
    try {
      material = readTlsMaterial(tls);
    } catch (err) {
      logger.warn(
        { code: (err as NodeJS.ErrnoException).code },
        'tls files unreadable; keeping the current certificate',
      );
      return;
    }
    const next = fingerprint(material);
    if (next === current) return;
    try {
      apply(material);
      current = next;
      logger.info('tls certificate, key or client CA reloaded');
    } catch (err) {
      // A new certificate without its new key (or the reverse) is refused until both are in place.
      logger.warn(
        { err: (err as Error).message },
        'tls files do not form a valid pair yet; keeping the current certificate',
      );
    }
  };
  const soon = () => {
    if (timer === undefined) timer = setTimeout(check, 200);
  };
  const files = [tls.cert, tls.key, ...(tls.clientCA === undefined ? [] : [tls.clientCA])];
  const watchers: FSWatcher[] = [];
  for (const dir of new Set(files.map((file) => dirname(file)))) {
    try {
      watchers.push(watch(dir, { persistent: false }, soon));
    } catch (err) {
      logger.warn(
        { dir, code: (err as NodeJS.ErrnoException).code },
        'cannot watch tls directory; polling only',
      );
    }
  }
  const poll = setInterval(check, pollMs);
  poll.unref();
  return () => {
    clearInterval(poll);
    if (timer !== undefined) clearTimeout(timer);
    for (const watcher of watchers) watcher.close();
  };
}

function fingerprint(material: TlsMaterial): string {
  const hash = createHash('sha256');
  for (const part of [material.cert, material.key, material.ca ?? Buffer.alloc(0)])
    hash.update(part).update('\0');
  return hash.digest('hex');
}
