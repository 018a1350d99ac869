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
// Then the integrity row (issue 18): the same tools/call through a route with a pin file (written
// by `portcullis pin --write` against the bench upstream), argument validation and a `when` rule on
// the called tool, against the same route without them.
//   BENCH_ROWS: a comma-separated subset of gateway, stdio, federation, fanout, integrity (default all).
//   BENCH_FANOUT_DELAY_MS (default 20): the slowest server's delay in the fan-out rows; the others
//   take 1/10, 2/10, … of it. BENCH_LATENCY_REQUESTS (default 200): sequential requests per round.
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { newApiKey } from '../dist/auth/api-key.js';
import { PinSet, parsePins } from '../dist/integrity/pins.js';
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
  writePolicy,
} from './harness.mjs';

/** Which rows run: `BENCH_ROWS=federation,fanout` (default all: gateway, stdio, federation, fanout, integrity). */
const ROWS = new Set((process.env.BENCH_ROWS ?? 'gateway,stdio,federation,fanout,integrity').split(','));
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

/** What the bench upstream answers every tools/call with: a route that relays the call returns it. */
const NOTES = 'welcome: Welcome\ngroceries: Groceries';

/** One request through `target`: its status and its JSON body (undefined when it is not JSON). */
async function answerOf(target, headers, body) {
  const answer = await fetch(target.url, { method: 'POST', headers, body });
  const text = await answer.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: answer.status, json, text };
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
      if (result.content?.[0]?.text !== NOTES)
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

// Tool integrity (issue 18): the same tools/call through a route with pins, argument validation
// (on by default with pins) and one `when` rule on the called tool, against the same route
// without them; both in front of one bench upstream, both from writePolicy (the `gateway` kind's
// configuration). The pin file is what a user gets: `portcullis pin --write` run against the bench
// upstream. Both routes get the same call, with an argument the pinned schema and the rule accept.
if (ROWS.has('integrity')) {
  const upstream = await start('upstream');
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-integrity-'));
  const RULE = 'args.query.size() < 100';
  const pinFile = join(dir, 'pins.json');
  const plainPolicy = writePolicy(dir, 'route-plain', {
    upstream: upstream.url,
    route: '    tools: { list_notes: notes:read }',
  });
  const pinnedPolicy = writePolicy(dir, 'route-pinned', {
    upstream: upstream.url,
    // Absolute: the `policy` participant starts the gateway without the policy file's path, so
    // a relative one would be read from the working directory (the pin command reads both alike).
    route: `    pins: ${JSON.stringify(pinFile)}\n    tools: { list_notes: { scopes: notes:read, when: ${JSON.stringify(RULE)} } }`,
  });
  const cli = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
  // Rejects (the run fails) when the command exits non-zero: a server it could not list.
  await promisify(execFile)(process.execPath, [
    cli,
    'pin',
    '--config',
    pinnedPolicy,
    '--route',
    '/mcp',
    '--write',
  ]);
  const pins = parsePins(readFileSync(pinFile, 'utf8'), new Set());
  if (
    !(pins instanceof PinSet) ||
    pins.size !== 10 ||
    pins.get('tool', undefined, 'list_notes') === undefined
  )
    throw new Error(`the pin file does not pin the bench upstream's 10 tools: ${JSON.stringify(pins)}`);

  const CALL = callBody('list_notes', { query: 'groceries' });
  const targets = [
    await start('policy', [plainPolicy], { body: CALL }, undefined, 'route-plain'),
    await start('policy', [pinnedPolicy], { body: CALL }, undefined, 'route-pinned'),
  ];
  const [plain, pinned] = targets;
  try {
    // The measured call reaches the upstream through both routes and comes back with its answer.
    for (const target of targets) {
      const result = await probe(target, HEADERS, CALL);
      if (result.content?.[0]?.text !== NOTES || result.isError !== false)
        throw new Error(`${target.kind}: unexpected result ${JSON.stringify(result)}`);
    }
    // Proof that the pinned route enforces, else the row measures nothing. A list has a size too,
    // so `query: ["…"]` passes the rule and only the pinned schema (query: string) refuses it; the
    // plain route, which checks no arguments, relays the same call. (`query: 5` would not get that
    // far: the rule runs at authorization, before the pins, and cannot take the size of a number.)
    const wrongType = callBody('list_notes', { query: ['groceries'] });
    const relayed = await answerOf(plain, HEADERS, wrongType);
    if (relayed.status !== 200 || relayed.json?.result?.content?.[0]?.text !== NOTES)
      throw new Error(
        `route-plain: a wrongly typed argument was not relayed: ${relayed.status} ${relayed.text}`,
      );
    const seenBefore = (await countsOf(upstream))['tools/call list_notes'] ?? 0;
    const invalid = await answerOf(pinned, HEADERS, wrongType);
    const problem = invalid.json?.result?.content?.[0]?.text ?? '';
    if (invalid.status !== 200 || invalid.json?.result?.isError !== true || !problem.includes('/query'))
      throw new Error(
        `route-pinned: a wrongly typed argument was not answered as invalid: ${invalid.status} ${invalid.text}`,
      );
    const denied = await answerOf(pinned, HEADERS, callBody('list_notes', { query: 'x'.repeat(100) }));
    if (denied.status !== 403 || denied.json?.error?.data?.reason !== 'argument_denied')
      throw new Error(
        `route-pinned: a call breaking the when rule was not refused: ${denied.status} ${denied.text}`,
      );
    const seenAfter = (await countsOf(upstream))['tools/call list_notes'] ?? 0;
    if (seenAfter !== seenBefore)
      throw new Error(`route-pinned: the upstream received ${seenAfter - seenBefore} refused calls`);

    const s = await compare(targets);
    report(s, [
      `route-pinned ÷ route-plain: ${(s['route-pinned'].rps / s['route-plain'].rps).toFixed(3)} (target ≥ 0.95; CPU µs/req ${s['route-pinned'].cpuPerReqUs.toFixed(1)} vs ${s['route-plain'].cpuPerReqUs.toFixed(1)})`,
      `route-pinned: 10 tools pinned by portcullis pin --write, validateArguments on, list_notes when ${JSON.stringify(RULE)}; probed before the load: query ["groceries"] → isError "${problem}", query of 100 characters → 403 argument_denied, neither reached the upstream`,
    ]);
  } finally {
    stopAll([upstream, ...targets]);
    rmSync(dir, { recursive: true, force: true });
  }
}
