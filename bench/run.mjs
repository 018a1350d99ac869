// npm run bench: the same tools/call load at a bare undici pass-through, at http-proxy and at the
// gateway, interleaved round by round, then medians and ratios. Each participant runs in its own
// process; autocannon drives them from this one.
//   BENCH_ROUNDS (default 5), BENCH_DURATION seconds per run (default 5), BENCH_CONNECTIONS (default 32)
import { fork } from 'node:child_process';
import { once } from 'node:events';
import autocannon from 'autocannon';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const DURATION = Number(process.env.BENCH_DURATION ?? 5);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const SERVERS = new URL('./servers.mjs', import.meta.url).pathname;

const META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientInfo': { name: 'bench', version: '1.0.0' },
  'io.modelcontextprotocol/clientCapabilities': {},
};
const BODY = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'list_notes', arguments: {}, _meta: META },
});
const HEADERS = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2026-07-28',
  'mcp-method': 'tools/call',
  'mcp-name': 'list_notes',
};

async function start(kind, upstream) {
  const execArgv =
    process.env.BENCH_PROFILE === kind
      ? ['--cpu-prof', '--cpu-prof-dir=.tmp/profile']
      : (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const child = fork(SERVERS, upstream ? [kind, upstream] : [kind], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv,
  });
  const [message] = await once(child, 'message');
  const url = `http://127.0.0.1:${message.port}${message.path ?? '/mcp'}`;
  return { kind, child, url };
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
    headers: HEADERS,
    body: BODY,
    connections: CONNECTIONS,
    duration,
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
  };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

const upstream = await start('upstream');
const targets = [
  await start('bare', upstream.url),
  await start('http-proxy', upstream.url),
  await start('gateway', upstream.url),
];
try {
  process.stdout.write(
    `warm-up, then ${ROUNDS} interleaved rounds of ${DURATION}s × ${CONNECTIONS} connections, POST tools/call\n`,
  );
  for (const target of targets) await drive(target, 1);
  const runs = new Map(targets.map((t) => [t.kind, []]));
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate the order each round so no participant always runs first or last.
    const order = targets.map((_, i) => targets[(i + round) % targets.length]);
    for (const target of order) runs.get(target.kind).push(await drive(target, DURATION));
    process.stdout.write(`round ${round + 1}/${ROUNDS} done\n`);
  }
  const summary = Object.fromEntries(
    [...runs].map(([kind, list]) => [
      kind,
      {
        rps: median(list.map((r) => r.rps)),
        p50: median(list.map((r) => r.p50)),
        p99: median(list.map((r) => r.p99)),
        cpuPerReqUs: median(list.map((r) => r.cpuPerReqUs)),
      },
    ]),
  );
  const rows = Object.entries(summary).map(
    ([kind, s]) =>
      `| ${kind.padEnd(10)} | ${s.rps.toFixed(0).padStart(7)} | ${s.p50.toFixed(1).padStart(6)} | ${s.p99.toFixed(1).padStart(6)} | ${s.cpuPerReqUs.toFixed(1).padStart(9)} |`,
  );
  process.stdout.write(
    [
      '',
      '| target     |   req/s | p50 ms | p99 ms | CPU µs/req |',
      '| ---------- | ------- | ------ | ------ | ---------- |',
      ...rows,
      '',
      `gateway ÷ bare:       ${(summary.gateway.rps / summary.bare.rps).toFixed(3)} (target ≥ 0.85)`,
      `gateway ÷ http-proxy: ${(summary.gateway.rps / summary['http-proxy'].rps).toFixed(3)}`,
      `(medians of ${ROUNDS} interleaved runs; CPU is the participant process's own user+system time)`,
      '',
    ].join('\n'),
  );
} finally {
  // SIGTERM lets a profiled participant write its profile.
  for (const p of [upstream, ...targets]) p.child.kill('SIGTERM');
}
