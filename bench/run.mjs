// npm run bench: the same tools/call load at a bare undici pass-through, at http-proxy and at the
// gateway (anonymous route), interleaved round by round, then medians and ratios. Then the stdio
// rows: the full gateway (API key, policy, chained audit) in front of a stdio server, against
// supergateway and mcp-proxy bridging the same server (they check nothing); CPU counts each
// participant's whole process tree, the stdio server included.
// Then the federation rows (issue 16): the same tools/call through a federated route of three
// servers against a one-server route, and the latency of a tools/list fanned out to 3 and 10
// servers that each take their time against the slowest of them alone.
//   BENCH_AGAINST=<dir>: also the gateway of another built checkout (`git worktree add <dir> <rev>`,
//   `npm ci && npm run build` there), in the same run: a change measured against main before it.
//   BENCH_UPSTREAM_SSE=1: the bench upstream answers calls as one SSE event instead of JSON (the
//   gateway then reads the answer event by event, for resources/updated).
//   BENCH_ROWS: a comma-separated subset of gateway, stdio, federation, fanout (default all).
//   BENCH_FANOUT_DELAY_MS (default 20): the slowest server's delay in the fan-out rows; the others
//   take 1/10, 2/10, … of it. BENCH_LATENCY_REQUESTS (default 200): sequential requests per round.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { newApiKey } from '../dist/auth/api-key.js';
import {
  callBody,
  compare,
  HEADERS,
  latency,
  META,
  report,
  reportLatency,
  start,
  stopAll,
} from './harness.mjs';

/** Which rows run: `BENCH_ROWS=federation,fanout` (default all: gateway, stdio, federation, fanout). */
const ROWS = new Set((process.env.BENCH_ROWS ?? 'gateway,stdio,federation,fanout').split(','));
const against = process.env.BENCH_AGAINST;
const againstServers = against === undefined ? undefined : join(resolve(against), 'bench/servers.mjs');
if (againstServers !== undefined && !existsSync(againstServers)) {
  process.stderr.write(`BENCH_AGAINST: ${againstServers} does not exist\n`);
  process.exit(2);
}

if (ROWS.has('gateway')) {
  const upstream = await start('upstream');
  const targets = [
    await start('bare', [upstream.url]),
    await start('http-proxy', [upstream.url]),
    await start('gateway', [upstream.url]),
  ];
  if (againstServers !== undefined)
    targets.push(await start('gateway', [upstream.url], {}, againstServers, 'gateway-against'));
  try {
    const s = await compare(targets);
    report(s, [
      `gateway ÷ bare:       ${(s.gateway.rps / s.bare.rps).toFixed(3)} (target ≥ 0.85)`,
      `gateway ÷ http-proxy: ${(s.gateway.rps / s['http-proxy'].rps).toFixed(3)}`,
      ...(againstServers === undefined
        ? []
        : [
            `gateway ÷ gateway-against: ${(s.gateway.rps / s['gateway-against'].rps).toFixed(3)} (target ≥ 1.0; CPU µs/req ${s.gateway.cpuPerReqUs.toFixed(1)} vs ${s['gateway-against'].cpuPerReqUs.toFixed(1)})`,
          ]),
    ]);
  } finally {
    stopAll([upstream, ...targets]);
  }
}

if (ROWS.has('stdio')) {
  const key = newApiKey('pk_bench_');
  const stdio = [
    await start('gateway-stdio', [key.hash], { headers: { authorization: `Bearer ${key.key}` } }),
    await start('supergateway'),
    await start('mcp-proxy'),
  ];
  try {
    const s = await compare(stdio);
    const faster = Math.max(s.supergateway.rps, s['mcp-proxy'].rps);
    report(s, [
      `gateway-stdio ÷ faster bridge: ${(s['gateway-stdio'].rps / faster).toFixed(3)} (target ≥ 1.0)`,
      `gateway-stdio ÷ supergateway:  ${(s['gateway-stdio'].rps / s.supergateway.rps).toFixed(3)}`,
      `gateway-stdio ÷ mcp-proxy:     ${(s['gateway-stdio'].rps / s['mcp-proxy'].rps).toFixed(3)}`,
    ]);
  } finally {
    stopAll(stdio);
  }
}

/** What a bench upstream received so far, by method and name (`tools/call list_notes`). */
function countsOf(upstream) {
  return new Promise((resolve) => {
    const listen = (m) => {
      if (m?.counts === undefined) return;
      upstream.child.off('message', listen);
      resolve(m.counts);
    };
    upstream.child.on('message', listen);
    upstream.child.send('counts');
  });
}

/** One request through `target`; throws unless it is answered 200 with a JSON-RPC result. */
async function probe(target, headers, body) {
  const answer = await fetch(target.url, { method: 'POST', headers, body });
  const text = await answer.text();
  const parsed = answer.status === 200 ? JSON.parse(text) : undefined;
  if (parsed?.result === undefined)
    throw new Error(`${target.kind}: HTTP ${answer.status} ${text.slice(0, 300)}`);
  return parsed.result;
}

// Federation, tools/call: three bench upstreams (three processes) behind one route, the call to
// server a's list_notes exposed as a__list_notes, against a one-server route to the same server
// a; both anonymous, every tool granted by one pattern per server.
if (ROWS.has('federation')) {
  const three = [await start('upstream'), await start('upstream'), await start('upstream')];
  const CALL = callBody('a__list_notes');
  const calls = [
    await start('route', [three[0].url], {}, undefined, 'route-1-server'),
    await start(
      'route',
      three.map((u) => u.url),
      { headers: { 'mcp-name': 'a__list_notes' }, body: CALL },
      undefined,
      'route-3-servers',
    ),
  ];
  try {
    // The federated call reaches server a as list_notes and comes back with its answer.
    for (const target of calls) {
      const result = await probe(
        target,
        { ...HEADERS, ...target.client.headers },
        target.client.body ?? callBody('list_notes'),
      );
      if (result.content?.[0]?.text !== 'welcome: Welcome\ngroceries: Groceries')
        throw new Error(`${target.kind}: unexpected result ${JSON.stringify(result)}`);
    }
    const s = await compare(calls);
    const [a, b, c] = await Promise.all(three.map(countsOf));
    const answered = s['route-1-server'].answered + s['route-3-servers'].answered;
    const received = a['tools/call list_notes'] ?? 0;
    const elsewhere = Object.keys({ ...b, ...c }).filter((key) => key.startsWith('tools/call'));
    report(s, [
      `route-3-servers ÷ route-1-server: ${(s['route-3-servers'].rps / s['route-1-server'].rps).toFixed(3)} (target ≥ 0.95)`,
      `server a received ${received} tools/call for list_notes: ${answered} answered 2xx by the two routes (warm-up included), 2 probes, ${received - answered - 2} in flight when a run ended; servers b and c received ${elsewhere.length === 0 ? 'none' : JSON.stringify({ b, c })}`,
    ]);
    if (received < answered || elsewhere.length > 0 || Object.keys(a).some((key) => key.includes('__')))
      throw new Error(`federated calls did not reach server a as list_notes: ${JSON.stringify({ a, b, c })}`);
  } finally {
    stopAll([...three, ...calls]);
  }
}

// Federation, tools/list fan-out: ten bench upstreams that answer after 1/10, 2/10, … of the
// slowest's delay; the slowest alone on a one-server route against routes of 3 (4/10, 7/10 and
// the slowest) and of all 10. Latency of one request at a time: a fan-out costs what its slowest
// server costs, plus the merge.
if (ROWS.has('fanout')) {
  const SLOWEST_MS = Number(process.env.BENCH_FANOUT_DELAY_MS ?? 20);
  const delays = Array.from({ length: 10 }, (_, i) => (SLOWEST_MS * (i + 1)) / 10);
  const ten = [];
  for (const delay of delays) ten.push(await start('upstream', [String(delay)]));
  const { 'mcp-name': _name, ...callHeaders } = HEADERS;
  const LIST = {
    headers: { ...callHeaders, 'mcp-method': 'tools/list' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: META } }),
  };
  const fanned = [
    [[9], 'slowest-server'],
    [[3, 6, 9], 'fan-out-3'],
    [[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 'fan-out-10'],
  ];
  const lists = [];
  for (const [members, label] of fanned) {
    const target = await start(
      'route',
      members.map((i) => ten[i].url),
      {},
      undefined,
      label,
    );
    lists.push({ ...target, request: LIST, servers: members.length });
  }
  try {
    // Every answer must hold every server's ten tools: a server left out (slow, failing) would
    // make the fan-out look faster than it is.
    const s = await latency(lists, {
      count: Number(process.env.BENCH_LATENCY_REQUESTS ?? 200),
      check: (answer, target) => {
        const tools = answer.result?.tools;
        if (!Array.isArray(tools)) return `no tools: ${JSON.stringify(answer).slice(0, 300)}`;
        if (tools.length !== 10 * target.servers)
          return `${tools.length} tools, not ${10 * target.servers}: a server was left out`;
        return undefined;
      },
    });
    const slowest = s['slowest-server'];
    const against = (label) => {
      const f = s[label];
      const line = (what) => {
        const limit = slowest[what] * 1.1 + 1;
        return `${what} ${f[what].toFixed(2)} vs ${slowest[what].toFixed(2)} ms, ratio ${(f[what] / slowest[what]).toFixed(3)} (target ≤ ${limit.toFixed(2)} ms, 1.1 × + 1 ms: ${f[what] <= limit ? 'met' : 'not met'})`;
      };
      return `${label} ÷ slowest-server: ${line('p50')}; ${line('p99')}`;
    };
    reportLatency(s, [
      `tools/list, servers answering after ${delays.map((d) => d.toFixed(0)).join(', ')} ms (fan-out-3: ${[3, 6, 9].map((i) => delays[i].toFixed(0)).join(', ')} ms)`,
      against('fan-out-3'),
      against('fan-out-10'),
    ]);
  } finally {
    stopAll([...ten, ...lists]);
  }
}
