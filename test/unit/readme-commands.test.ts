/**
 * Every `portcullis …` and `npm …` command README tells a reader to run is (a) a real one — a
 * command and options the CLI accepts, a script package.json has — and (b) run by a test or by CI
 * (`.ci/run`), or listed below with the reason it is not.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from '../../src/cli/commands.js';
import { type ReadmeCommand, readmeCommands, readmeSection } from '../support/readme.js';

const ROOT = join(import.meta.dirname, '../..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/**
 * README commands no test runs, and why. Keep it short and true: the test fails when a command
 * here is no longer in README, or when a test starts running it.
 */
const NOT_RUN: Record<string, string> = {
  'npm install': 'CI installs the same lockfile with npm ci',
  'npm run schema': 'it rewrites the committed schema file; `portcullis schema` is tested against that file',
  'npm run conformance': 'its suite runs inside npm test (the once project)',
  'npm run bench': 'a load run of minutes; its figures are recorded in README',
  'npm run bench:auth': 'a load run of minutes',
  'npm run bench:policy': 'a load run of minutes',
  'npm run bench:ratelimit': 'a load run of minutes',
  'npm run bench:observability': 'a load run of minutes',
  'npm run fuzz': 'the full run takes minutes; CI runs its seeded slice, npm run fuzz:ci',
  'npm run soak': 'kills and restarts Redis for minutes',
};

/** npm's own commands README uses; everything else must be a package.json script. */
const NPM_BUILTINS = new Set(['install', 'ci']);

interface CliCommand {
  readonly name: string;
  readonly sub?: string;
  readonly options: ReadonlySet<string>;
}

/**
 * The CLI as its source defines it: the commands of USAGE (printed by `runCli([])`), each one's
 * subcommand word (`keys new`, `audit verify`), and the options its `parseArgs` declares.
 */
async function cliCommands(): Promise<Map<string, CliCommand>> {
  let usage = '';
  const write = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    usage += String(chunk);
    return true;
  });
  expect(await runCli([])).toBe(0);
  write.mockRestore();
  const source = read('src/cli/commands.ts');
  const modules = new Map(
    [...source.matchAll(/(\w+): async \(\) => \(await import\('\.\/([\w-]+)\.js'\)\)/g)].map((m) => [
      m[1] as string,
      m[2] as string,
    ]),
  );
  const optionsIn = (file: string) =>
    [
      ...read(`src/cli/${file}.ts`).matchAll(
        /['"]?([a-z][a-z-]*)['"]?\s*:\s*\{\s*type:\s*'(?:string|boolean)'/g,
      ),
    ].map((m) => m[1] as string);
  const commands = new Map<string, CliCommand>();
  for (const m of usage.slice(usage.indexOf('Commands:')).matchAll(/^ {2}([a-z]+)(?: ([a-z]+)\b)?/gm)) {
    const name = m[1] as string;
    const sub = m[2];
    const loaded = modules.get(name);
    if (loaded === undefined) throw new Error(`USAGE lists ${name}, which commands.ts does not load`);
    // A subcommand with a module of its own (`keys jwks` → keys-jwks.ts) takes that module's options.
    const module =
      sub !== undefined && existsSync(join(ROOT, `src/cli/${loaded}-${sub}.ts`))
        ? `${loaded}-${sub}`
        : loaded;
    const text = read(`src/cli/${module}.ts`);
    const options = new Set([
      ...optionsIn(module),
      ...(text.includes('loadFromArgs(') ? optionsIn('config-arg') : []),
    ]);
    commands.set(sub === undefined ? name : `${name} ${sub}`, {
      name,
      ...(sub === undefined ? {} : { sub }),
      options,
    });
  }
  return commands;
}

/** Every test file but this one, with its text. */
function testFiles(): { path: string; text: string }[] {
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.test.ts') && entry.name !== 'readme-commands.test.ts') files.push(path);
    }
  };
  walk(join(ROOT, 'test'));
  return files.map((path) => ({ path: relative(ROOT, path), text: readFileSync(path, 'utf8') }));
}

/** Options of a command line: `--name` words, `--name=value` included. */
const optionsOf = (words: readonly string[]) =>
  words.filter((w) => /^--[a-z]/.test(w)).map((w) => w.slice(2).replace(/=.*$/, ''));

const quoted = (word: string) => `['"]${word.replace(/[-/:]/g, '\\$&')}['"]`;

let cli: Map<string, CliCommand>;
let scripts: Record<string, string>;
let tests: { path: string; text: string }[];
/** The test files that run the CLI: the built one, or through test/support/cli.ts. */
let cliTests: { path: string; text: string }[];
let ci: string;
beforeAll(async () => {
  cli = await cliCommands();
  scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
  tests = testFiles();
  cliTests = tests.filter(
    ({ text }) =>
      text.includes('dist/cli/main.js') ||
      text.includes('support/cli.js') ||
      text.includes('support/gateway-process.js'),
  );
  ci = read('.ci/run');
});
afterEach(() => vi.restoreAllMocks());

/** The command a `portcullis …` line runs: `keys new` by its subcommand, `start` by its name. */
function commandOf(words: readonly string[]): CliCommand | undefined {
  const [, name = '', second] = words;
  return cli.get(name) ?? cli.get(`${name} ${second}`);
}

/** Why a `portcullis …` line is not a command the CLI accepts, or undefined when it is. */
function cliProblem(words: readonly string[]): string | undefined {
  const [, name = '', second] = words;
  const command = commandOf(words);
  if (command === undefined) {
    const subs = [...cli.values()].filter((c) => c.name === name && c.sub !== undefined).map((c) => c.sub);
    return subs.length === 0 ? `no command ${name}` : `${name} needs ${subs.join(' or ')}, not ${second}`;
  }
  const unknown = optionsOf(words).filter((option) => !command.options.has(option));
  return unknown.length === 0
    ? undefined
    : `${name} has no option ${unknown.map((o) => `--${o}`).join(', ')}`;
}

/** The test that runs this `portcullis …` line: its command, subcommand and every option. */
function cliTestOf(words: readonly string[]): string | undefined {
  const [, name = '', second] = words;
  const sub = commandOf(words)?.sub;
  const call = new RegExp(
    sub === undefined ? quoted(name) : `${quoted(name)},\\s*${quoted(sub ?? second ?? '')}`,
  );
  return cliTests.find(
    ({ text }) => call.test(text) && optionsOf(words).every((o) => new RegExp(quoted(`--${o}`)).test(text)),
  )?.path;
}

/** `npm start`, `npm run bench`: the npm command without its arguments. */
function npmName(words: readonly string[]): string {
  return words[1] === 'run' ? `npm run ${words[2] ?? ''}` : `npm ${words[1] ?? ''}`;
}

function npmProblem(words: readonly string[]): string | undefined {
  const verb = words[1] ?? '';
  const script = verb === 'run' ? (words[2] ?? '') : verb;
  if (NPM_BUILTINS.has(verb)) return undefined;
  const body = scripts[script];
  if (body === undefined) return `package.json has no script ${script}`;
  // Arguments after `--` go to the script: for one that runs a CLI command, to that command.
  const dash = words.indexOf('--');
  const cliCommand = /node dist\/cli\/main\.js (\w+)/.exec(body)?.[1];
  if (dash !== -1 && cliCommand !== undefined)
    return cliProblem(['portcullis', cliCommand, ...words.slice(dash + 1)]);
  return undefined;
}

/** Where an npm command is run: by CI, or by a test that spawns npm with it. */
function npmRunBy(words: readonly string[]): string | undefined {
  const name = npmName(words);
  if (new RegExp(`^\\s*(?:[A-Z_]+=\\S+\\s+)*${name.replace(/[-/:]/g, '\\$&')}(\\s|$)`, 'm').test(ci))
    return '.ci/run';
  const args = name.split(' ').slice(1).map(quoted).join(',\\s*');
  const spawned = new RegExp(`['"]npm['"],\\s*\\[\\s*${args}`);
  return tests.find(({ text }) => spawned.test(text))?.path;
}

const show = (c: ReadmeCommand) => `README:${c.line} ${c.words.join(' ')}`;

describe('README commands', () => {
  const portcullis = readmeCommands(['portcullis']);
  const npm = readmeCommands(['npm']);

  it('finds the commands README shows', () => {
    expect(portcullis.length).toBeGreaterThan(10);
    expect(npm.length).toBeGreaterThan(10);
    for (const command of ['start', 'check', 'demo', 'keys', 'explain', 'test', 'schema', 'audit'])
      expect(
        portcullis.some((c) => c.words[1] === command),
        command,
      ).toBe(true);
  });

  it('shows every command of the CLI, with each option its parser accepts', () => {
    const table = readmeSection('## Command line');
    for (const command of cli.values()) {
      const row = table
        .split('\n')
        .find((line) =>
          line.startsWith(`| \`${command.name}${command.sub === undefined ? '' : ` ${command.sub}`}`),
        );
      expect(row, command.name).toBeDefined();
      for (const option of command.options)
        expect(row, `${command.name} --${option}`).toContain(`--${option}`);
    }
  });

  it('every portcullis command is one the CLI accepts', () => {
    expect(
      portcullis.flatMap((c) =>
        cliProblem(c.words) === undefined ? [] : [`${show(c)}: ${cliProblem(c.words)}`],
      ),
    ).toEqual([]);
  });

  it('every npm command is npm’s own or a package.json script, its arguments accepted', () => {
    expect(
      npm.flatMap((c) => (npmProblem(c.words) === undefined ? [] : [`${show(c)}: ${npmProblem(c.words)}`])),
    ).toEqual([]);
  });

  it('every portcullis command is run by a test, with each of its options', () => {
    expect(portcullis.filter((c) => cliTestOf(c.words) === undefined).map(show)).toEqual([]);
  });

  it('every npm command is run by a test or CI, or listed with the reason it is not', () => {
    const notRun = [
      ...new Set(npm.filter((c) => npmRunBy(c.words) === undefined).map((c) => npmName(c.words))),
    ];
    expect(notRun.sort()).toEqual(Object.keys(NOT_RUN).sort());
  });
});
