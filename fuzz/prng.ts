/**
 * A small, fast, seedable PRNG (sfc32, seeded through splitmix32). Every input is generated from
 * its own stream, derived from (seed, target, iteration): any failing input is reproduced by
 * `--seed S --target T --replay I` without re-running the iterations before it.
 */
export class Prng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number, target: number, iteration: number) {
    let s = mix(mix(mix(seed >>> 0) ^ target) ^ iteration);
    const next = () => {
      s = (s + 0x9e3779b9) >>> 0;
      return mix(s);
    };
    this.a = next();
    this.b = next();
    this.c = next();
    this.d = next();
    for (let i = 0; i < 8; i++) this.next();
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** An integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.next() / 0x1_0000_0000) * n);
  }

  /** An integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)] as T;
  }

  /** A length biased toward small values: mostly under 8, sometimes up to `max`. */
  size(max: number): number {
    const r = this.int(100);
    if (r < 60) return this.int(Math.min(8, max + 1));
    if (r < 90) return this.int(Math.min(64, max + 1));
    return this.int(max + 1);
  }
}

/** splitmix32's finalizer: spreads every input bit over the output. */
function mix(x: number): number {
  let z = x >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
  z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
  return (z ^ (z >>> 16)) >>> 0;
}
