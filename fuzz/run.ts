/**
 * `npm run fuzz`: seeded, bounded, single-process fuzzing of the code that reads hostile bytes.
 *
 *   npm run fuzz                          the full run (1 100 000 inputs across every target)
 *   npm run fuzz -- --quick               the CI slice (a fixed seed, 1/20 of the inputs)
 *   npm run fuzz -- --seed 7 --inputs 1e5 --target sse-rewriter,list-filter
 *   npm run fuzz -- --target resource-uri --seed 7 --replay 1234   one input, printed whole
 *
 * `--inputs N` is the total, shared by weight between the targets run. Any throw, oracle
 * failure or call slower than 100 ms prints the target, seed, iteration and input, and the run
 * exits 1.
 */

import { type Failure, printInputsWhole, runTarget, type Target, type TargetResult } from './harness.js';
import { answerOutcomeTarget } from './targets/answer-outcome.js';
import { jsonRpcTarget } from './targets/jsonrpc.js';
import { listFilterTarget } from './targets/list-filter.js';
import { mirroredHeadersTarget } from './targets/mirrored-headers.js';
import { sseTarget } from './targets/sse.js';
import { uriTarget } from './targets/uri.js';

const TARGETS: readonly Target<never>[] = [
  jsonRpcTarget,
  mirroredHeadersTarget,
  uriTarget,
  sseTarget,
  answerOutcomeTarget,
  listFilterTarget,
] as unknown as readonly Target<never>[];

const DEFAULT_SEED = 20_260_728;
const FULL_INPUTS = 1_100_000;
const QUICK_INPUTS = 60_000;

interface Options {
  seed: number;
  inputs: number;
  targets: readonly Target<never>[];
  replay: number | undefined;
  limitMs: number;
  maxFailures: number;
  /** Failures printed in full per (target, oracle); the rest are counted. */
  shown: number;
}

function usage(message: string): never {
  process.stderr.write(`fuzz: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv: readonly string[]): Options {
  const options: Options = {
    seed: DEFAULT_SEED,
    inputs: FULL_INPUTS,
    targets: TARGETS,
    replay: undefined,
    limitMs: 100,
    maxFailures: 50,
    shown: 1,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const next = (): number => {
      const value = Number(argv[++i]);
      if (!Number.isFinite(value) || value < 0) usage(`${arg} needs a non-negative number`);
      return Math.floor(value);
    };
    if (arg === '--quick') options.inputs = QUICK_INPUTS;
    else if (arg === '--seed') options.seed = next() >>> 0;
    else if (arg === '--inputs') options.inputs = next();
    else if (arg === '--replay') options.replay = next();
    else if (arg === '--limit-ms') options.limitMs = next();
    else if (arg === '--max-failures') options.maxFailures = Math.max(1, next());
    else if (arg === '--show') options.shown = next();
    else if (arg === '--target') {
      const names = (argv[++i] ?? '').split(',');
      const chosen = TARGETS.filter((t) => names.includes(t.name));
      if (chosen.length !== names.length)
        usage(`unknown target in ${names.join(',')}; targets: ${TARGETS.map((t) => t.name).join(', ')}`);
      options.targets = chosen;
    } else usage(`unknown option ${arg}`);
  }
  return options;
}

function table(results: readonly TargetResult[]): string {
  const rows = [
    ['target', 'inputs', 'failures', 'slowest ms', 'slowest at', 'seconds'],
    ...results.map((r) => [
      r.name,
      String(r.inputs),
      `${r.failures}${r.stopped ? ' (stopped)' : ''}`,
      r.slowestMs.toFixed(2),
      String(r.slowestIteration),
      r.seconds.toFixed(1),
    ]),
  ];
  const total = results.reduce((sum, r) => sum + r.inputs, 0);
  const failures = results.reduce((sum, r) => sum + r.failures, 0);
  const seconds = results.reduce((sum, r) => sum + r.seconds, 0);
  const slowest = Math.max(0, ...results.map((r) => r.slowestMs));
  rows.push(['total', String(total), String(failures), slowest.toFixed(2), '', seconds.toFixed(1)]);
  const widths = rows[0]?.map((_, c) => Math.max(...rows.map((row) => (row[c] ?? '').length))) ?? [];
  return rows
    .map((row) =>
      row
        .map((cell, c) => (c === 0 ? cell.padEnd(widths[c] ?? 0) : cell.padStart(widths[c] ?? 0)))
        .join('  '),
    )
    .join('\n');
}

async function main(): Promise<void> {
  const options = parseArgs(process.argv.slice(2));
  // A replay prints its input whole.
  if (options.replay !== undefined) printInputsWhole();
  const weight = options.targets.reduce((sum, t) => sum + t.weight, 0);
  const perOracle = new Map<string, number>();
  const onFailure = (failure: Failure) => {
    const oracle = `${failure.target} ${failure.message.split(':')[0]}`;
    const seen = perOracle.get(oracle) ?? 0;
    perOracle.set(oracle, seen + 1);
    if (options.replay === undefined && seen >= options.shown) return;
    process.stdout.write(
      `\nFAIL ${failure.target} seed=${failure.seed} iteration=${failure.iteration}\n  ${failure.message}\n  input: ${failure.input}\n  replay: npm run fuzz -- --target ${failure.target} --seed ${failure.seed} --replay ${failure.iteration}\n`,
    );
  };
  process.stdout.write(
    `fuzz: seed ${options.seed}, ${options.replay === undefined ? `${options.inputs} inputs` : `replay of iteration ${options.replay}`}, limit ${options.limitMs} ms per call\n`,
  );
  const results: TargetResult[] = [];
  for (const target of options.targets) {
    const inputs =
      options.replay !== undefined
        ? 1
        : options.targets.length === 1
          ? options.inputs
          : Math.ceil((options.inputs * target.weight) / weight);
    const result = await runTarget(target, {
      seed: options.seed,
      inputs,
      from: options.replay ?? 0,
      limitMs: options.limitMs,
      maxFailures: options.replay !== undefined ? 1 : options.maxFailures,
      onFailure,
    });
    results.push(result);
  }
  process.stdout.write(`\n${table(results)}\n`);
  if (perOracle.size > 0) {
    process.stdout.write('\nfailures by oracle:\n');
    for (const [oracle, count] of perOracle) process.stdout.write(`  ${count}\t${oracle}\n`);
  }
  process.exitCode = results.some((r) => r.failures > 0) ? 1 : 0;
}

await main();
