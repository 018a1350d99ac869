// Shared by bench/run.mjs and bench/auth.mjs: start participants in their own processes, drive the
// same tools/call load at each in interleaved rounds, and report medians; or time one request
// after another at each (latency) in interleaved rounds.
//   BENCH_ROUNDS (default 5), BENCH_DURATION seconds per run (default 5), BENCH_CONNECTIONS (default 32)
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { Client } from 'undici';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const SERVERS = new URL('./servers.mjs', import.meta.url).pathname;

export const META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};
const BODY = callBody('list_notes');
/** The headers of the load's tools/call (a 2026-07-28 request mirrors its method and name). */
export const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'tools/call',
  'mcp-name': 'list_notes',
};

/** The tools/call request the load sends, calling `name` with `args`. */
export function callBody(name, args = {}) {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: { name, arguments: args, _meta: META },
  });
}

/**
 * Starts `node bench/servers.mjs kind ...args` (another checkout's `servers` when given, reported
 * as `label`) and waits for its port. `client` carries what the
 * load generator must send to it: extra headers (a credential, another `Mcp-Name`), TLS options
 * (a client certificate) and another body (another tool's name).
 */
export async function start(kind, args = [], client = {}, servers = SERVERS, label = kind) {
  const execArgv =
    process.env.BENCH_PROFILE === kind
      ? ['--cpu-prof', '--cpu-prof-dir=.tmp/profile']
      : (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = fork(servers, [kind, ...args], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  const [message] = await once(child, 'message');
  const scheme = message.tls ? 'https' : 'http';
  return {
    kind: label,
    child,
    url: `${scheme}://127.0.0.1:${message.port}${message.path ?? '/mcp'}`,
    client,
  };
}

function cpu(child) {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m.cpu));
    child.send('cpu');
  });
}

async function drive(target, duration) {
  const before = await cpu(target.child);
  const result = await autocannon({
    url: target.url,
    method: 'POST',
    headers: { ...HEADERS, ...target.client.headers },
    body: target.client.body ?? BODY,
    connections: CONNECTIONS,
    duration,
    ...(target.client.tlsOptions ? { tlsOptions: target.client.tlsOptions } : {}),
  });
  const after = await cpu(target.child);
  const ok = result['2xx'];
  if (result.non2xx > 0 || result.errors > 0 || ok === 0) {
    throw new Error(`${target.kind}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  }
  const cpuMicros = after.user + after.system - (before.user + before.system);
  return {
    rps: ok / result.duration,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuPerReqUs: cpuMicros / ok,
    ok,
  };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

/**
 * Warm-up, then ROUNDS rounds in rotating order; returns the medians per participant, and the
 * 2xx answers it gave in all (warm-up included) as `answered`.
 */
export async function compare(targets) {
  process.stdout.write(
    `warm-up, then ${ROUNDS} interleaved rounds of ${DURATION}s × ${CONNECTIONS} connections, POST tools/call\n`,
  );
  const answered = new Map(targets.map((t) => [t.kind, 0]));
  for (const target of targets) answered.set(target.kind, (await drive(target, 1)).ok);
  const runs = new Map(targets.map((t) => [t.kind, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order each round so no participant always runs first or last.
    const order = targets.map((_, i) => targets[(i + round) % targets.length]);
    for (const target of order) runs.get(target.kind).push(await drive(target, DURATION));
    process.stdout.write(`round ${round + 1}/${ROUNDS} done\n`);
  }
  return Object.fromEntries(
    [...runs].map(([kind, list]) => [
      kind,
      {
        rps: median(list.map((r) => r.rps)),
        p50: median(list.map((r) => r.p50)),
        p99: median(list.map((r) => r.p99)),
        cpuPerReqUs: median(list.map((r) => r.cpuPerReqUs)),
        answered: answered.get(kind) + list.reduce((sum, r) => sum + r.ok, 0),
      },
    ]),
  );
}

const percentile = (sorted, p) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

/**
 * Latency rather than throughput: `count` requests one after another (one connection, nothing
 * queued) at each target, in ROUNDS rounds of rotating order after a warm-up of `warmUp` requests
 * each. Each request is `target.request` ({ headers, body }); `check(answer, target)` reads each
 * parsed answer and returns what is wrong with it, if anything — any wrong answer or status stops the
 * bench. Returns each target's medians over the rounds of its per-round p50, p99 and mean, in ms.
 */
export async function latency(targets, { count, warmUp = 20, check }) {
  process.stdout.write(
    `warm-up, then ${ROUNDS} interleaved rounds of ${count} sequential requests per target\n`,
  );
  const clients = new Map(targets.map((t) => [t.kind, new Client(new URL(t.url).origin)]));
  const once = async (target) => {
    const started = performance.now();
    const answer = await clients.get(target.kind).request({
      path: new URL(target.url).pathname,
      method: 'POST',
      headers: { ...target.request.headers },
      body: target.request.body,
    });
    const text = await answer.body.text();
    const elapsed = performance.now() - started;
    const wrong =
      answer.statusCode !== 200
        ? `HTTP ${answer.statusCode}: ${text.slice(0, 300)}`
        : check(JSON.parse(text), target);
    if (wrong !== undefined) throw new Error(`${target.kind}: ${wrong}`);
    return elapsed;
  };
  try {
    for (const target of targets) for (let i = 0; i < warmUp; i++) await once(target);
    const runs = new Map(targets.map((t) => [t.kind, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]);
      for (const target of order) {
        const times = [];
        for (let i = 0; i < count; i++) times.push(await once(target));
        times.sort((a, b) => a - b);
        runs.get(target.kind).push({
          p50: percentile(times, 50),
          p99: percentile(times, 99),
          mean: times.reduce((a, b) => a + b, 0) / times.length,
        });
      }
      process.stdout.write(`round ${round + 1}/${ROUNDS} done\n`);
    }
    return Object.fromEntries(
      [...runs].map(([kind, list]) => [
        kind,
        {
          p50: median(list.map((r) => r.p50)),
          p99: median(list.map((r) => r.p99)),
          mean: median(list.map((r) => r.mean)),
        },
      ]),
    );
  } finally {
    await Promise.all([...clients.values()].map((client) => client.close()));
  }
}

/** Latency medians as a table, then `lines`. */
export function reportLatency(summary, lines) {
  const width = Math.max(10, ...Object.keys(summary).map((k) => k.length));
  const rows = Object.entries(summary).map(
    ([kind, s]) =>
      `| ${kind.padEnd(width)} | ${s.p50.toFixed(2).padStart(6)} | ${s.p99.toFixed(2).padStart(6)} | ${s.mean.toFixed(2).padStart(7)} |`,
  );
  process.stdout.write(
    [
      '',
      `| ${'target'.padEnd(width)} | p50 ms | p99 ms | mean ms |`,
      `| ${'-'.repeat(width)} | ------ | ------ | ------- |`,
      ...rows,
      '',
      ...lines,
      `(medians over ${ROUNDS} interleaved rounds of each round's p50, p99 and mean; one request at a time)`,
      '',
    ].join('\n'),
  );
}

/** The medians as a table, then `lines` (ratios), then what the figures are. */
export function report(summary, lines) {
  const width = Math.max(10, ...Object.keys(summary).map((k) => k.length));
  const rows = Object.entries(summary).map(
    ([kind, s]) =>
      `| ${kind.padEnd(width)} | ${s.rps.toFixed(0).padStart(7)} | ${s.p50.toFixed(1).padStart(6)} | ${s.p99.toFixed(1).padStart(6)} | ${s.cpuPerReqUs.toFixed(1).padStart(10)} |`,
  );
  process.stdout.write(
    [
      '',
      `| ${'target'.padEnd(width)} |   req/s | p50 ms | p99 ms | CPU µs/req |`,
      `| ${'-'.repeat(width)} | ------- | ------ | ------ | ---------- |`,
      ...rows,
      '',
      ...lines,
      `(medians of ${ROUNDS} interleaved runs; CPU is the participant process's own user+system time)`,
      '',
    ].join('\n'),
  );
}

export function stopAll(participants) {
  // SIGTERM lets a profiled participant write its profile.
  for (const p of participants) p.child.kill('SIGTERM');
}

/**
 * Writes a gateway policy for a participant: loopback listeners, audit to a file in `dir`, one
 * anonymous route `/mcp` to `upstream` whose extra YAML lines are `route`; `top` adds sections;
 * `audit` replaces the audit section (a flow mapping).
 */
export function writePolicy(dir, name, { upstream, route, top = '', audit = '' }) {
  const file = join(dir, `${name}.yaml`);
  const auditSection = audit || `{ destination: ${JSON.stringify(join(dir, `${name}-audit.jsonl`))} }`;
  writeFileSync(
    file,
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: ${auditSection}
log: { level: warn }
${top}
identities:
  anonymous: { scopes: [notes:read] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream}
    authentication: { methods: [anonymous] }
${route}
`,
  );
  return file;
}
