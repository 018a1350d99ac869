import { Counter, type CounterConfiguration, type LabelValues } from 'prom-client';

interface Pending<T extends string> {
  readonly labels: LabelValues<T>;
  count: number;
}

/** One level per label name, keyed by that label's value; the last level holds the counts. */
type Level<T extends string> = Map<unknown, Level<T> | Pending<T>>;

/**
 * A prom-client Counter for the hot path (counted on every request): `inc` adds to a plain number
 * kept per label values, and the sums go into the counter's series when it is read (a scrape of
 * `/metrics`, `get()`), through prom-client's own `collect` hook. prom-client hashes and
 * validates the label object on every `inc` (~0.4 µs and ~0.5 KB of garbage each, three counters a
 * request); here a request costs one map lookup per label, by the value itself — no key string is
 * built, so nothing is allocated and no two sets of values can meet under one key.
 *
 * A new set of labels is validated by prom-client when it is first seen (`inc` by 0), so a wrong
 * label name still throws at the caller, not at a scrape.
 */
export function talliedCounter<T extends string>(config: CounterConfiguration<T>): Counter<T> {
  const names = (config.labelNames ?? []) as readonly T[];
  const root: Level<T> = new Map();
  const counter = new Counter<T>({
    ...config,
    collect() {
      fold(root, names.length);
    },
  });
  // prom-client sets `inc` on the instance in its constructor: the direct path, kept for folding.
  const direct = counter.inc.bind(counter) as (labels?: LabelValues<T> | number, value?: number) => void;
  const reset = counter.reset.bind(counter);
  const fold = (level: Level<T>, depth: number): void => {
    for (const next of level.values()) {
      if (depth > 1) fold(next as Level<T>, depth - 1);
      else {
        const entry = next as Pending<T>;
        if (entry.count === 0) continue;
        direct(entry.labels, entry.count);
        entry.count = 0;
      }
    }
  };
  const inc = (labels?: LabelValues<T> | number, value = 1): void => {
    if (typeof labels !== 'object' || names.length === 0 || !Number.isFinite(value) || value < 0) {
      // Unlabelled, or an invalid increment: prom-client's own path, checks and errors.
      direct(labels, value);
      return;
    }
    let level = root;
    const last = names.length - 1;
    for (let i = 0; i < last; i++) {
      const key = labels[names[i] as T];
      let next = level.get(key) as Level<T> | undefined;
      if (next === undefined) {
        next = new Map();
        level.set(key, next);
      }
      level = next;
    }
    const key = labels[names[last] as T];
    const entry = level.get(key) as Pending<T> | undefined;
    if (entry !== undefined) {
      entry.count += value;
      return;
    }
    direct(labels, 0);
    level.set(key, { labels: { ...labels }, count: value });
  };
  counter.inc = inc as Counter<T>['inc'];
  counter.reset = () => {
    root.clear();
    reset();
  };
  return counter;
}
