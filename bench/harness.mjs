// Shared by bench/run.mjs and the bench:* scripts: start participants in their own processes, drive the
// same tools/call load at each in interleaved rounds, and report medians; or time one request
// after another at each (latency) in interleaved rounds.
//   BENCH_ROUNDS (default 5), BENCH_DURATION seconds per run (default 5), BENCH_CONNECTIONS (default 32),
//   BENCH_RESTART=0 (keep each participant's process for every round; default: a fresh one per round)
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { Client, Pool } from 'undici';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
/** BENCH_RESTART=0: every round on the same participant processes (default: fresh ones each round). */
const RESTART = process.env.BENCH_RESTART !== '0';
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
 * load generator must send to it: extra headers (a credential, another `Mcp-Name`; undefined
 * leaves one of the load's headers out), TLS options
 * (a client certificate) and another body (another tool's name). `flags` are more Node options for
 * its process (`--expose-gc`, for a row that measures memory).
 */
export async function start(kind, args = [], client = {}, servers = SERVERS, label = kind, flags = []) {
  const execArgv = [
    ...(process.env.BENCH_PROFILE === kind
      ? ['--cpu-prof', '--cpu-prof-dir=.tmp/profile']
      : (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean)),
    ...flags,
  ];
  const launch = async () => {
    const child = fork(servers, [kind, ...args], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      execArgv,
    });
    // A participant that exits before it listens (a policy that does not load) fails the row
    // instead of leaving the run waiting for its port.
    const exited = once(child, 'exit').then(([code]) => {
      throw new Error(`participant ${label} (${kind} ${args.join(' ')}) exited ${code} before listening`);
    });
    const [message] = await Promise.race([once(child, 'message'), exited]);
    exited.catch(() => {});
    const scheme = message.tls ? 'https' : 'http';
    return { child, url: `${scheme}://127.0.0.1:${message.port}${message.path ?? '/mcp'}` };
  };
  const target = { kind: label, ...(await launch()), client };
  /** The same participant in a new process (new port): `compare` runs each round on fresh ones. */
  target.restart = async () => {
    const old = target.child;
    if (old.exitCode === null && old.signalCode === null) {
      const gone = once(old, 'exit');
      old.kill('SIGTERM');
      await gone;
    }
    Object.assign(target, await launch());
  };
  return target;
}

function cpu(child) {
  return new Promise((resolve) => {
    child.once('message', (m) => resolve(m.cpu));
    child.send('cpu');
  });
}

async function drive(target, duration) {
  const before = await cpu(target.child);
  const headers = { ...HEADERS, ...target.client.headers };
  // A header the participant's client maps to undefined is not sent (a tools/list names no tool).
  for (const name of Object.keys(headers)) if (headers[name] === undefined) delete headers[name];
  const result = await autocannon({
    url: target.url,
    method: 'POST',
    headers,
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

/** Per participant, the median over its rounds of each of `fields` (a run's figures by name). */
function mediansOf(runs, fields, extra = () => ({})) {
  return Object.fromEntries(
    [...runs].map(([kind, list]) => [
      kind,
      {
        ...Object.fromEntries(fields.map((field) => [field, median(list.map((r) => r[field]))])),
        ...extra(kind, list),
      },
    ]),
  );
}

/**
 * Warm-up, then ROUNDS rounds in rotating order (`what` names the load in the header line); returns the medians per participant, and the
 * 2xx answers it gave in all (warm-up included) as `answered`.
 */
export async function compare(targets, what = 'tools/call') {
  process.stdout.write(
    `warm-up, then ${ROUNDS} interleaved rounds of ${DURATION}s × ${CONNECTIONS} connections, POST ${what}\n`,
  );
  const answered = new Map(targets.map((t) => [t.kind, 0]));
  for (const target of targets) answered.set(target.kind, (await drive(target, 1)).ok);
  const runs = new Map(targets.map((t) => [t.kind, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order each round so no participant always runs first or last.
    const order = targets.map((_, i) => targets[(i + round) % targets.length]);
    for (const target of order) {
      // A fresh process each round (after a warm-up): on a shared VM one process of a participant
      // can run ~40 % slower than another of the same, for its whole life, so the median must
      // span processes, not only rounds of one.
      if (RESTART && round > 0 && target.restart !== undefined) {
        await target.restart();
        // Warm-up only: a slow participant may answer nothing in it (its errors show in the run).
        const warm = await drive(target, 2).catch(() => undefined);
        if (warm !== undefined) answered.set(target.kind, answered.get(target.kind) + warm.ok);
      }
      runs.get(target.kind).push(await drive(target, DURATION));
    }
    process.stdout.write(`round ${round + 1}/${ROUNDS} done\n`);
  }
  return mediansOf(runs, ['rps', 'p50', 'p99', 'cpuPerReqUs'], (kind, list) => ({
    answered: answered.get(kind) + list.reduce((sum, r) => sum + r.ok, 0),
  }));
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
    return mediansOf(runs, ['p50', 'p99', 'mean']);
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

/** The module at `url` was run as a script (`node bench/auth.mjs`), not imported by bench/run.mjs. */
export const isMain = (url) =>
  process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(url);

export function stopAll(participants) {
  // SIGTERM lets a profiled participant write its profile.
  for (const p of participants) p.child.kill('SIGTERM');
}

/**
 * Writes a gateway policy for a participant: loopback listeners, audit to a file in `dir`, one
 * route `/mcp` to `upstream` whose extra YAML lines are `route`; `top` adds sections; `audit`
 * replaces the audit section (a flow mapping). Anonymous unless `identities` (the YAML lines under
 * `identities:`) and `methods` (the route's authentication methods) say otherwise.
 */
export function writePolicy(
  dir,
  name,
  {
    upstream,
    route,
    top = '',
    audit = '',
    identities = '  anonymous: { scopes: [notes:read] }',
    methods = 'anonymous',
  },
) {
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
${identities}
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream}
    authentication: { methods: [${methods}] }
${route}
`,
  );
  return file;
}

/**
 * A route's `tools:` section listing `count` entries: `list_notes` (the call of every row) and a
 * realistic mix of the rest — mostly exact names, every tenth a pattern with its own literal
 * prefix — none of which matches a tool the bench upstream has, so the call's lookup is the same
 * whatever the count.
 */
export function toolsSection(count) {
  const tools = ['      list_notes: notes:read'];
  for (let i = 1; i < count; i++) {
    tools.push(
      i % 10 === 0 ? `      "group${i}_*": [notes:read, scope${i}]` : `      tool_${i}: scope${i % 17}`,
    );
  }
  return `    tools:\n${tools.join('\n')}`;
}

/**
 * The issue's targets met or not, in the order checked: every `verdict` of this process, for the
 * table `npm run bench` ends with.
 */
const VERDICTS = [];

const COMPARE = {
  '≥': (value, target) => value >= target,
  '≤': (value, target) => value <= target,
};

/**
 * Checks `value` against `target` (`cmp` '≥' or '≤'), remembers it for `targetsTable` and returns
 * the line a row prints: `label: 0.912 (target ≥ 0.95) FAIL`. `digits` formats both figures, `unit`
 * follows them; a `stretch` target is reported as such (it is not the issue's bar), `note` is
 * appended. A value that is not a finite number (a row that could not measure it) fails.
 */
export function verdict(
  label,
  value,
  target,
  { cmp = '≥', digits = 3, unit = '', stretch = false, note = '' } = {},
) {
  const pass = Number.isFinite(value) && COMPARE[cmp](value, target);
  const entry = {
    label,
    value: Number.isFinite(value) ? `${value.toFixed(digits)}${unit}` : String(value),
    target: `${stretch ? 'stretch ' : ''}${cmp} ${target}${unit}`,
    result: pass ? 'PASS' : 'FAIL',
  };
  VERDICTS.push(entry);
  return `${label}: ${entry.value} (target ${entry.target}) ${entry.result}${note ? `; ${note}` : ''}`;
}

/** Records a row that failed before it measured what it checks: its targets read ERROR. */
export function verdictError(label, error) {
  VERDICTS.push({
    label,
    value: '—',
    target: '—',
    result: `ERROR: ${String(error?.message ?? error)
      .split('\n')[0]
      .slice(0, 120)}`,
  });
}

/** Every verdict of this run as one table: ratio, its value, its target, PASS/FAIL. */
export function targetsTable() {
  const head = ['ratio', 'value', 'target', 'result'];
  const rows = VERDICTS.map((v) => [v.label, v.value, v.target, v.result]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => `| ${cells.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`;
  const passed = VERDICTS.filter((v) => v.result === 'PASS').length;
  return [
    '',
    'targets (issues 19 and 20 and earlier rows; one run on a noisy machine: read a FAIL near its bar as unproven, not as a regression)',
    '',
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map(line),
    '',
    `${passed} of ${VERDICTS.length} met`,
    '',
  ].join('\n');
}

/**
 * Latency at a fixed request rate (open loop: requests are sent on a schedule, not when the last one
 * came back) rather than at saturation: ROUNDS interleaved rounds of DURATION seconds at `rate`
 * req/s per target, the load's tools/call over CONNECTIONS keep-alive connections. Each request is
 * timed in µs from the moment it is handed to the client (a request waiting for a free connection
 * counts its wait) to the last byte of its answer; autocannon's histogram counts whole
 * milliseconds, too coarse for a 1 ms target. Returns per target the medians over the rounds of
 * p50 and p99 (ms), and the rate achieved.
 */
export async function fixedRate(targets, rate) {
  process.stdout.write(
    `warm-up, then ${ROUNDS} interleaved rounds of ${DURATION}s at ${rate.toFixed(0)} req/s per target (open loop, ${CONNECTIONS} connections)\n`,
  );
  const pools = new Map(
    targets.map((t) => [t.kind, new Pool(new URL(t.url).origin, { connections: CONNECTIONS })]),
  );
  const one = async (target, times) => {
    const started = performance.now();
    const answer = await pools.get(target.kind).request({
      path: new URL(target.url).pathname,
      method: 'POST',
      headers: { ...HEADERS, ...target.client.headers },
      body: target.client.body ?? BODY,
    });
    const text = await answer.body.text();
    if (answer.statusCode !== 200)
      throw new Error(`${target.kind}: HTTP ${answer.statusCode}: ${text.slice(0, 300)}`);
    times.push(performance.now() - started);
  };
  const run = async (target, seconds) => {
    const total = Math.round(rate * seconds);
    const times = [];
    const inFlight = [];
    const begun = performance.now();
    let sent = 0;
    // A timer every millisecond sends what is due by then: a few requests per tick, without a
    // busy loop that would take a core from the participants.
    await new Promise((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(((performance.now() - begun) * rate) / 1000));
        while (sent < due) {
          inFlight.push(one(target, times));
          sent++;
        }
        if (sent < total) setTimeout(tick, 1);
        else resolve();
      };
      tick();
    });
    await Promise.all(inFlight);
    const elapsed = (performance.now() - begun) / 1000;
    times.sort((a, b) => a - b);
    return { p50: percentile(times, 50), p99: percentile(times, 99), rps: times.length / elapsed };
  };
  try {
    for (const target of targets) await run(target, 1);
    const runs = new Map(targets.map((t) => [t.kind, []]));
    for (let round = 0; round < ROUNDS; round++) {
      const order = targets.map((_, i) => targets[(i + round) % targets.length]);
      for (const target of order) runs.get(target.kind).push(await run(target, DURATION));
      process.stdout.write(`round ${round + 1}/${ROUNDS} done\n`);
    }
    return mediansOf(runs, ['p50', 'p99', 'rps']);
  } finally {
    await Promise.all([...pools.values()].map((pool) => pool.close()));
  }
}
