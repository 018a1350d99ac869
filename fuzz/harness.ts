import { performance } from 'node:perf_hooks';
import { Prng } from './prng.js';

/** Times each call of the code under test: the slowest call of an input is what the limit bounds. */
export interface Clock {
  time<T>(call: () => T): T;
  timeAsync<T>(call: () => Promise<T>): Promise<T>;
}

/** An oracle's verdict on one input: undefined when every oracle holds, else what broke. */
export type Verdict = string | undefined;

/**
 * One fuzz target: a generator and the oracles that judge the code under test on what it made.
 * `check` returns a verdict; a throw from it (the code under test threw) is a failure too.
 */
export interface Target<I> {
  readonly name: string;
  /** Share of the total inputs this target gets. */
  readonly weight: number;
  generate(rng: Prng): I;
  check(input: I, clock: Clock): Verdict | Promise<Verdict>;
  /** The input as printed in a failure: escaped, truncated. */
  describe(input: I): string;
}

export interface Failure {
  readonly target: string;
  readonly seed: number;
  readonly iteration: number;
  readonly message: string;
  readonly input: string;
}

export interface TargetResult {
  readonly name: string;
  readonly inputs: number;
  readonly failures: number;
  readonly slowestMs: number;
  readonly slowestIteration: number;
  readonly seconds: number;
  /** The target stopped early: it reached the failure cap. */
  readonly stopped: boolean;
}

export interface RunOptions {
  readonly seed: number;
  readonly inputs: number;
  /** First iteration to run (a replay runs one). */
  readonly from: number;
  /** A call slower than this fails the input. */
  readonly limitMs: number;
  /** Stop a target after this many failures: a broken target must not run for hours. */
  readonly maxFailures: number;
  readonly onFailure: (failure: Failure) => void;
}

/**
 * Times each call by the wall clock. A call over the limit is judged again with `withCpu`: then
 * its duration is the lesser of wall time and the process's CPU time over it, because on a
 * machine shared with other work wall time counts other processes' turns (and CPU time counts
 * the collector's helper threads): the lesser is what the call itself held the event loop.
 * (`process.cpuUsage` is a system call: too dear to make around every call.)
 */
class CallClock implements Clock {
  slowest = 0;
  constructor(private readonly withCpu: boolean) {}
  private record(wallStart: number, cpuStart: NodeJS.CpuUsage | undefined): void {
    const wall = performance.now() - wallStart;
    let elapsed = wall;
    if (cpuStart !== undefined) {
      const cpu = process.cpuUsage(cpuStart);
      elapsed = Math.min(wall, (cpu.user + cpu.system) / 1000);
    }
    if (elapsed > this.slowest) this.slowest = elapsed;
  }
  time<T>(call: () => T): T {
    const cpu = this.withCpu ? process.cpuUsage() : undefined;
    const start = performance.now();
    try {
      return call();
    } finally {
      this.record(start, cpu);
    }
  }
  async timeAsync<T>(call: () => Promise<T>): Promise<T> {
    const cpu = this.withCpu ? process.cpuUsage() : undefined;
    const start = performance.now();
    try {
      return await call();
    } finally {
      this.record(start, cpu);
    }
  }
}

/** A stable stream number per target name: adding a target never changes another's inputs. */
export function streamOf(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

export async function runTarget<I>(target: Target<I>, opts: RunOptions): Promise<TargetResult> {
  const stream = streamOf(target.name);
  let failures = 0;
  let slowestMs = 0;
  let slowestIteration = -1;
  let stopped = false;
  let inputs = 0;
  const started = performance.now();
  const end = opts.from + opts.inputs;
  for (let iteration = opts.from; iteration < end; iteration++) {
    const input = target.generate(new Prng(opts.seed, stream, iteration));
    let { verdict, slowest } = await judge(target, input, false);
    inputs++;
    if (verdict === undefined && slowest > opts.limitMs) {
      // Once more, timed by CPU too, before calling it slow (another process or a major garbage
      // collection can land in any one call), unless it was far over.
      const first = slowest;
      if (first < opts.limitMs * 5) ({ verdict, slowest } = await judge(target, input, true));
      if (verdict === undefined && slowest > opts.limitMs)
        verdict = `slow: one call took ${first.toFixed(1)} ms${first === slowest ? '' : `, then ${slowest.toFixed(1)} ms`} (limit ${opts.limitMs} ms)`;
    }
    if (slowest > slowestMs) {
      slowestMs = slowest;
      slowestIteration = iteration;
    }
    if (verdict !== undefined) {
      failures++;
      opts.onFailure({
        target: target.name,
        seed: opts.seed,
        iteration,
        message: verdict,
        input: target.describe(input),
      });
      if (failures >= opts.maxFailures) {
        stopped = true;
        break;
      }
    }
  }
  return {
    name: target.name,
    inputs,
    failures,
    slowestMs,
    slowestIteration,
    seconds: (performance.now() - started) / 1000,
    stopped,
  };
}

async function judge<I>(
  target: Target<I>,
  input: I,
  withCpu: boolean,
): Promise<{ verdict: Verdict; slowest: number }> {
  const clock = new CallClock(withCpu);
  let verdict: Verdict;
  try {
    const result = target.check(input, clock);
    verdict = result instanceof Promise ? await result : result;
  } catch (err) {
    verdict = `threw ${describeError(err)}`;
  }
  return { verdict, slowest: clock.slowest };
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const frame = err.stack?.split('\n').find((line) => line.trimStart().startsWith('at ')) ?? '';
    return `${err.name}: ${err.message.slice(0, 200)} ${frame.trim()}`;
  }
  return String(err).slice(0, 200);
}

let whole = false;

/** From now on `shown` cuts nothing (a replay shows its one input whole). */
export function printInputsWhole(): void {
  whole = true;
}

/** A string as a JSON literal (every control character escaped), its middle cut when long. */
export function shown(text: string, max = 600): string {
  if (whole || text.length <= max) return JSON.stringify(text);
  const head = JSON.stringify(text.slice(0, Math.floor(max * 0.7)));
  const tail = JSON.stringify(text.slice(text.length - Math.floor(max * 0.2)));
  return `${head} …(${text.length} chars in all)… ${tail}`;
}
