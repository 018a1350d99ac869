/**
 * Linearity without a wall-clock budget: a machine under load slows every run alike, so the test
 * compares the cost of an input with the cost of one `factor` times larger (best of `rounds` each,
 * which drops a run that a GC pause or a busy neighbour stretched). The inputs are built before the
 * clock starts. Linear work grows about `factor`-fold (a little more: larger strings leave the
 * caches), quadratic work `factor`²-fold; callers put the bound between the two.
 */
export function growthRatio<T>(
  make: (size: number) => T,
  run: (input: T) => void,
  size: number,
  factor = 10,
  rounds = 5,
): number {
  const best = (n: number) => {
    const input = make(n);
    let fastest = Number.POSITIVE_INFINITY;
    for (let i = 0; i < rounds; i++) {
      const started = performance.now();
      run(input);
      fastest = Math.min(fastest, performance.now() - started);
    }
    return fastest;
  };
  best(size); // warm up: the first runs also compile
  return best(size * factor) / Math.max(best(size), 0.01);
}
