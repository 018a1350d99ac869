/**
 * Runs the official MCP conformance suite (`@modelcontextprotocol/conformance`) against a server URL
 * and reads its machine-readable results.
 *
 * The suite's CLI is spawned under the Node running the tests (CI runs them on Node 22 and on
 * Node 26). `--requirements <revision>` runs exactly the
 * server scenarios that revision requires (plus a few "not scored" ones, reported but never counted),
 * each on that revision's wire: 2025-11-25 with the `initialize` handshake and sessions, 2026-07-28
 * stateless with the per-request `_meta` envelope. `-o <dir>` makes the CLI write one
 * `server-<scenario>-<timestamp>/checks.json` per scenario; those files are what we parse, never the
 * coloured console output.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse as parseYaml } from 'yaml';

/** The spec revisions the suite has frozen requirement sets for. */
export type Requirements = '2025-11-25' | '2026-07-28';

/** One check of a scenario, as the suite reports it. */
export interface Check {
  id: string;
  name: string;
  /** `SUCCESS` and `FAILURE` count; `WARNING` (SHOULD-level), `INFO` and `SKIPPED` do not. */
  status: string;
  description?: string;
  errorMessage?: string;
}

/** The outcome of one scenario. */
export interface ScenarioResult {
  passed: number;
  failed: number;
  /**
   * SHOULD-level misses. They never fail the suite's own verdict, yet two scored 2026 scenarios
   * (`input-required-result-missing-input-response`, `-ignore-extra-params`) consist only of such a
   * check, so "no failure" alone would pass them even against a dead server.
   */
  warnings: number;
  /** Whether the revision's requirement set scores this scenario (false: run for visibility only). */
  scored: boolean;
  /** Ids of the checks that failed, e.g. `sep-2575-server-implements-discover`. */
  failedChecks: string[];
  /** Ids of the checks that ended in a WARNING. */
  warningChecks: string[];
  checks: Check[];
}

export interface RunOptions {
  /** Upper bound for the whole CLI run; default 120 s. */
  timeoutMs?: number;
}

const localRequire = createRequire(import.meta.url);
const CONFORMANCE_DIR = dirname(localRequire.resolve('@modelcontextprotocol/conformance/package.json'));
const CONFORMANCE_CLI = join(CONFORMANCE_DIR, 'dist', 'index.js');
const DEFAULT_TIMEOUT_MS = 120_000;
/** `createResultDir` in the suite: `server-<scenario>-<ISO timestamp with : and . replaced by ->`. */
const RESULT_DIR = /^server-(.+)-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}-\d{3}Z$/;

/** The server scenarios a revision scores, from the suite's own frozen requirement file. */
export async function scoredScenarios(requirements: Requirements): Promise<string[]> {
  const text = await readFile(join(CONFORMANCE_DIR, 'requirements', `${requirements}.yaml`), 'utf8');
  const parsed: unknown = parseYaml(text);
  const server = isRecord(parsed) ? parsed.server : undefined;
  if (!Array.isArray(server) || !server.every((name) => typeof name === 'string')) {
    throw new Error(`requirements/${requirements}.yaml has no list of server scenarios`);
  }
  return server;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface CliRun {
  code: number | null;
  output: string;
}

/** Runs the CLI, killing it when `timeoutMs` passes. Resolves with its exit code and output. */
function runCli(args: string[], cwd: string, timeoutMs: number): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CONFORMANCE_CLI, ...args], {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const collect = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`conformance ${args.join(' ')} timed out after ${timeoutMs} ms\n${tail(output)}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

function tail(text: string, lines = 40): string {
  return text.split('\n').slice(-lines).join('\n');
}

function toCheck(value: unknown): Check | undefined {
  if (!isRecord(value) || typeof value.id !== 'string' || typeof value.status !== 'string') return undefined;
  const check: Check = {
    id: value.id,
    name: typeof value.name === 'string' ? value.name : value.id,
    status: value.status,
  };
  if (typeof value.description === 'string') check.description = value.description;
  if (typeof value.errorMessage === 'string') check.errorMessage = value.errorMessage;
  return check;
}

function summarize(checks: Check[], scored: boolean): ScenarioResult {
  const ids = (status: string): string[] =>
    checks.filter((check) => check.status === status).map((check) => check.id);
  const failedChecks = ids('FAILURE');
  const warningChecks = ids('WARNING');
  return {
    passed: ids('SUCCESS').length,
    failed: failedChecks.length,
    warnings: warningChecks.length,
    scored,
    failedChecks,
    warningChecks,
    checks,
  };
}

async function readChecks(file: string): Promise<Check[]> {
  const parsed: unknown = JSON.parse(await readFile(file, 'utf8'));
  if (!Array.isArray(parsed)) throw new Error(`${file} is not an array of checks`);
  return parsed.map((value, index) => {
    const check = toCheck(value);
    if (check === undefined) throw new Error(`${file}: entry ${index} is not a check`);
    return check;
  });
}

/** A scenario that ran but left no checks.json: the suite crashed inside it. */
function noResult(scored: boolean, output: string): ScenarioResult {
  const check: Check = {
    id: 'no-result',
    name: 'NoResult',
    status: 'FAILURE',
    errorMessage: `The suite wrote no checks.json for this scenario\n${tail(output, 10)}`,
  };
  return summarize([check], scored);
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/**
 * Reads every `server-<scenario>-<timestamp>/checks.json` under `dir`. A scenario the suite crashed
 * in (it creates the directory first and writes no checks.json, or no directory at all when it
 * fails even earlier) is recorded as one failed `no-result` check, so it can never read as a pass.
 */
async function readResults(
  dir: string,
  scored: string[],
  output: string,
): Promise<Map<string, ScenarioResult>> {
  const results = new Map<string, ScenarioResult>();
  for (const entry of (await readdir(dir)).sort()) {
    const scenario = RESULT_DIR.exec(entry)?.[1];
    if (scenario === undefined) continue;
    const file = join(dir, entry, 'checks.json');
    const isScored = scored.includes(scenario);
    results.set(
      scenario,
      (await exists(file)) ? summarize(await readChecks(file), isScored) : noResult(isScored, output),
    );
  }
  for (const scenario of scored) {
    if (!results.has(scenario)) results.set(scenario, noResult(true, output));
  }
  return results;
}

/**
 * Runs the server scenarios `requirements` names against `url`. Resolves with one entry per
 * scenario (scored ones and the "not scored" ones the suite runs for visibility); a scenario that
 * produced no result is reported with a single failed `no-result` check. Rejects when the CLI
 * cannot run, times out, or writes no results at all.
 */
export async function runConformance(
  url: string,
  requirements: Requirements,
  options: RunOptions = {},
): Promise<Map<string, ScenarioResult>> {
  const scored = await scoredScenarios(requirements);
  const dir = await mkdtemp(join(tmpdir(), 'portcullis-conformance-'));
  try {
    const args = ['server', '--url', url, '--requirements', requirements, '--output-dir', dir];
    const run = await runCli(args, dir, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    if ((await readdir(dir)).length === 0) {
      throw new Error(`conformance exited ${run.code} without writing results\n${tail(run.output)}`);
    }
    return await readResults(dir, scored, run.output);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function cell(result: ScenarioResult | undefined): string {
  if (result === undefined) return '—';
  const total = result.passed + result.failed;
  const score = result.failed === 0 ? `${result.passed}/${total}` : `**${result.passed}/${total}**`;
  return result.warnings === 0 ? score : `${score} ⚠${result.warnings}`;
}

/**
 * A markdown table comparing two runs: `scenario | direct pass/total | gateway pass/total`.
 * Scenarios the requirement set does not score are marked "(not scored)"; a score with failures is
 * bold, `⚠N` counts SHOULD-level warnings, and `—` means the scenario did not run on that side.
 */
export function formatTable(
  direct: Map<string, ScenarioResult>,
  gateway: Map<string, ScenarioResult>,
): string {
  const names = [...new Set([...direct.keys(), ...gateway.keys()])];
  const rows = names.map((name) => {
    const scored = (direct.get(name) ?? gateway.get(name))?.scored ?? true;
    const label = scored ? name : `${name} (not scored)`;
    return `| ${label} | ${cell(direct.get(name))} | ${cell(gateway.get(name))} |`;
  });
  return ['| scenario | direct pass/total | gateway pass/total |', '| --- | --- | --- |', ...rows].join('\n');
}
