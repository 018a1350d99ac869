import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, watch } from 'node:fs';
import { basename, dirname } from 'node:path';

/**
 * Calls `onChange(text)` when the policy file's content changes. The directory is watched, not the
 * file: Kubernetes replaces a mounted ConfigMap by swapping a symlink (`..data`), which a watch on
 * the old file would never see. Content is compared by hash, so touches and swaps that change
 * nothing are ignored; a slow poll backs the watcher up.
 */
export function watchConfigFile(
  path: string,
  initial: string,
  onChange: (text: string) => void,
  pollMs = 5_000,
): () => void {
  let current = hash(initial);
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    timer = undefined;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      // Mid-swap the file can be briefly absent: look again on the next event or poll.
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    const next = hash(text);
    if (next === current) return;
    current = next;
    onChange(text);
  };
  const soon = () => {
    if (timer === undefined) timer = setTimeout(check, 100);
  };
  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(path), { persistent: false }, (_event, name) => {
      if (name === null || name === basename(path) || name.startsWith('..')) soon();
    });
  } catch (err) {
    // A filesystem without watch support: polling alone still works.
    if (typeof (err as NodeJS.ErrnoException).code !== 'string') throw err;
    watcher = undefined;
  }
  const poll = setInterval(check, pollMs);
  poll.unref();
  return () => {
    clearInterval(poll);
    if (timer !== undefined) clearTimeout(timer);
    watcher?.close();
  };
}

export function hash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
