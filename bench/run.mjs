// npm run bench: every row below, in one run, then the table of every target of issue 19 with its
// value and PASS/FAIL (a row that fails to run reads ERROR there, and the run exits 1; a target not
// met does not change the exit code: on a noisy machine a FAIL near its bar proves little).
//   gateway: the same tools/call load at a bare undici pass-through, at http-proxy, at the gateway
//     (anonymous route) and at the full gateway (API key, a 200-entry tool policy, chained audit to
//     a file, in-process rate limits), interleaved round by round, then medians and ratios.
//   latency: half of the bare pass-through's saturation rate (measured in the gateway row, or here
//     when that row does not run), sent open-loop at the upstream directly and at the full gateway;
//     the p99 the gateway adds.
//   stdio: the full gateway (API key, policy, chained audit) in front of a stdio server, against
//     supergateway and mcp-proxy bridging the same server (they check nothing); CPU counts each
//     participant's whole process tree, the stdio server included.
//   federation (issue 16): the same tools/call through a federated route of three servers against
//     a one-server route. fanout: the latency of a tools/list fanned out to 3 and 10 servers that
//     each take their time against the slowest of them alone.
//   integrity (issue 18): the same tools/call through a route with a pin file (written by
//     `portcullis pin --write` against the bench upstream), argument validation and a `when` rule
//     on the called tool, against the same route without them.
//   auth, policy, ratelimit, observability: bench/auth.mjs, policy.mjs, ratelimit.mjs,
//     observability.mjs (also `npm run bench:<name>` alone).
//   listing: a tools/list of 1 000 tools through a route whose policy hides half of them, against
//     the same list through a `default: allow` route.
//   streams: bench/streams.mjs — 10 000 idle GET SSE streams (legacy sessions) held through the
//     gateway: its RSS and heap growth per stream, and the latency of an event on them against a
//     control gateway holding 50, interleaved (BENCH_STREAMS overrides the count).
//   BENCH_ROWS: a comma-separated subset of the rows above (default all).
//   BENCH_AGAINST=<dir>: also the gateway of another built checkout (`git worktree add <dir> <rev>`,
//   `npm ci && npm run build` there), in the same run: a change measured against main before it.
//   BENCH_UPSTREAM_SSE=1: the bench upstream answers calls as one SSE event instead of JSON (the
//   gateway then reads the answer event by event, for resources/updated).
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
import { benchAuth } from './auth.mjs';
import {
  callBody,
  compare,
  fixedRate,
  HEADERS,
  latency,
  META,
  report,
  reportLatency,
  start,
  stopAll,
  targetsTable,
  toolsSection,
  verdict,
  verdictError,
  writePolicy,
} from './harness.mjs';
import { benchIdentity } from './identity.mjs';
import { benchObservability } from './observability.mjs';
import { benchPolicy } from './policy.mjs';
import { benchRatelimit } from './ratelimit.mjs';
import { benchStreams } from './streams.mjs';

const ALL_ROWS = [
  'gateway',
  'latency',
  'stdio',
  'federation',
  'fanout',
  'integrity',
  'auth',
  'policy',
  'ratelimit',
  'observability',
  'listing',
  'streams',
  'identity',
];
/** Which rows run: `BENCH_ROWS=federation,fanout` (default all). */
const ROWS = new Set(process.env.BENCH_ROWS ? process.env.BENCH_ROWS.split(',') : ALL_ROWS);
const unknown = [...ROWS].filter((row) => !ALL_ROWS.includes(row));
if (unknown.length > 0) {
  process.stderr.write(`BENCH_ROWS: no row ${unknown.join(', ')} (rows: ${ALL_ROWS.join(', ')})\n`);
  process.exit(2);
}
const against = process.env.BENCH_AGAINST;
const againstServers = against === undefined ? undefined : join(resolve(against), 'bench/servers.mjs');
if (againstServers !== undefined && !existsSync(againstServers)) {
  process.stderr.write(`BENCH_AGAINST: ${againstServers} does not exist\n`);
  process.exit(2);
}

/** The load's rate limits, high enough never to refuse: the in-process limiter's cost alone. */
const LIMITS =
  '    rateLimits: [{ per: identity, limit: 1000000000/hour }, { per: client, limit: 1000000000/hour }]\n    failMode: closed';

/**
 * The gateway row and the latency row, which share their participants: the latency row's rate is
 * half of what the bare pass-through reached in the gateway row.
 */
async function gatewayRows({ throughput, fixed }) {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-full-'));
  const participants = [];
  try {
    const upstream = await start('upstream');
    participants.push(upstream);
    // The full gateway: API key, a 200-entry tool policy, chained audit to a file,
    // in-process limits.
    const key = newApiKey('pk_bench_');
    const fullPolicy = writePolicy(dir, 'gateway-full', {
      upstream: upstream.url,
      identities: `  apiKeys: [{ id: bench, hash: "${key.hash}", scopes: [notes:read] }]`,
      methods: 'apiKey',
      audit: `{ destination: ${JSON.stringify(join(dir, 'gateway-full-audit.jsonl'))}, chainKey: bench-chain-key-0123456789 }`,
      route: `${toolsSection(200)}\n${LIMITS}`,
    });
    const bare = await start('bare', [upstream.url]);
    participants.push(bare);
    const full = await start(
      'policy',
      [fullPolicy],
      { headers: { authorization: `Bearer ${key.key}` } },
      undefined,
      'gateway-full',
    );
    participants.push(full);
    // The full gateway answers the call with the upstream's answer, and refuses it without the key.
    const result = await probe(
      full,
      { ...HEADERS, authorization: `Bearer ${key.key}` },
      callBody('list_notes'),
    );
    if (result.content?.[0]?.text !== NOTES)
      throw new Error(`gateway-full: unexpected result ${JSON.stringify(result)}`);
    const anonymous = await answerOf(full, HEADERS, callBody('list_notes'));
    if (anonymous.status !== 401)
      throw new Error(`gateway-full: a call without the key was answered ${anonymous.status}`);

    let saturation;
    if (throughput) {
      const targets = [
        bare,
        await start('http-proxy', [upstream.url]),
        await start('gateway', [upstream.url]),
        full,
      ];
      participants.push(targets[1], targets[2]);
      if (againstServers !== undefined) {
        targets.push(await start('gateway', [upstream.url], {}, againstServers, 'gateway-against'));
        participants.push(targets.at(-1));
      }
      const s = await compare(targets);
      saturation = s.bare.rps;
      report(s, [
        verdict('gateway ÷ bare', s.gateway.rps / s.bare.rps, 0.85, { note: 'anonymous route' }),
        `gateway ÷ http-proxy: ${(s.gateway.rps / s['http-proxy'].rps).toFixed(3)}`,
        verdict('gateway-full ÷ bare', s['gateway-full'].rps / s.bare.rps, 0.75, {
          note: `CPU µs/req ${s['gateway-full'].cpuPerReqUs.toFixed(1)} vs ${s.bare.cpuPerReqUs.toFixed(1)}`,
        }),
        verdict('gateway-full ÷ http-proxy', s['gateway-full'].rps / s['http-proxy'].rps, 1.0, {
          stretch: true,
        }),
        ...(againstServers === undefined
          ? []
          : [
              verdict('gateway ÷ gateway-against', s.gateway.rps / s['gateway-against'].rps, 1.0, {
                note: `CPU µs/req ${s.gateway.cpuPerReqUs.toFixed(1)} vs ${s['gateway-against'].cpuPerReqUs.toFixed(1)}`,
              }),
            ]),
      ]);
    }
    if (fixed) {
      saturation ??= (await compare([bare])).bare.rps;
      const rate = saturation / 2;
      const direct = { ...upstream, kind: 'direct' };
      const s = await fixedRate([direct, full], rate);
      const width = Math.max(...Object.keys(s).map((k) => k.length));
      process.stdout.write(
        [
          '',
          `| ${'target'.padEnd(width)} | req/s | p50 ms | p99 ms |`,
          `| ${'-'.repeat(width)} | ----- | ------ | ------ |`,
          ...Object.entries(s).map(
            ([kind, r]) =>
              `| ${kind.padEnd(width)} | ${r.rps.toFixed(0).padStart(5)} | ${r.p50.toFixed(2).padStart(6)} | ${r.p99.toFixed(2).padStart(6)} |`,
          ),
          '',
          verdict('gateway-full p99 − direct p99 (ms)', s['gateway-full'].p99 - s.direct.p99, 1, {
            cmp: '≤',
            digits: 2,
            note: `p99 ${s['gateway-full'].p99.toFixed(2)} vs ${s.direct.p99.toFixed(2)} ms, p50 ${s['gateway-full'].p50.toFixed(2)} vs ${s.direct.p50.toFixed(2)} ms, at ${rate.toFixed(0)} req/s (half of bare's ${saturation.toFixed(0)})`,
          }),
          ...Object.entries(s)
            .filter(([, r]) => r.rps < rate * 0.95)
            .map(
              ([kind, r]) =>
                `${kind} did not keep up: ${r.rps.toFixed(0)} of ${rate.toFixed(0)} req/s answered (saturated; its latency is queueing)`,
            ),
          `(medians over interleaved rounds of each round's p50 and p99, timed from the moment the request is handed to the client)`,
          '',
        ].join('\n'),
      );
    }
  } finally {
    stopAll(participants);
    rmSync(dir, { recursive: true, force: true });
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

/** The stdio rows: the full gateway in front of a stdio server against two bridges. */
async function stdioRow() {
  const key = newApiKey('pk_bench_');
  const stdio = [
    await start('gateway-stdio', [key.hash], { headers: { authorization: `Bearer ${key.key}` } }),
    await start('supergateway'),
    await start('mcp-proxy'),
  ];
  // The bridges keep their first process: supergateway, restarted, answered nothing within a
  // round (it starts its stdio server lazily and slowly), which would fail the row for a baseline.
  for (const bridge of stdio.slice(1)) bridge.restart = undefined;
  try {
    const s = await compare(stdio);
    const faster = Math.max(s.supergateway.rps, s['mcp-proxy'].rps);
    report(s, [
      verdict('gateway-stdio ÷ faster bridge', s['gateway-stdio'].rps / faster, 1.0),
      `gateway-stdio ÷ supergateway:  ${(s['gateway-stdio'].rps / s.supergateway.rps).toFixed(3)}`,
      `gateway-stdio ÷ mcp-proxy:     ${(s['gateway-stdio'].rps / s['mcp-proxy'].rps).toFixed(3)}`,
    ]);
  } finally {
    stopAll(stdio);
  }
}

// Federation, tools/call: three bench upstreams (three processes) behind one route, the call to
// server a's list_notes exposed as a__list_notes, against a one-server route to the same server
// a; both anonymous, every tool granted by one pattern per server.
async function federationRow() {
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
      verdict('route-3-servers ÷ route-1-server', s['route-3-servers'].rps / s['route-1-server'].rps, 0.95),
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
async function fanoutRow() {
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
    // Target: within 10 % plus 1 ms of the slowest server alone, at p50 and at p99.
    const against = (label) =>
      ['p50', 'p99'].map((what) =>
        verdict(
          `${label} ${what} (ms) vs slowest-server`,
          s[label][what],
          Number((slowest[what] * 1.1 + 1).toFixed(2)),
          {
            cmp: '≤',
            digits: 2,
            note: `slowest-server ${slowest[what].toFixed(2)} ms, ratio ${(s[label][what] / slowest[what]).toFixed(3)}, target 1.1 × + 1 ms`,
          },
        ),
      );
    reportLatency(s, [
      `tools/list, servers answering after ${delays.map((d) => d.toFixed(0)).join(', ')} ms (fan-out-3: ${[3, 6, 9].map((i) => delays[i].toFixed(0)).join(', ')} ms)`,
      ...against('fan-out-3'),
      ...against('fan-out-10'),
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
async function integrityRow() {
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
      verdict('route-pinned ÷ route-plain', s['route-pinned'].rps / s['route-plain'].rps, 0.95, {
        note: `CPU µs/req ${s['route-pinned'].cpuPerReqUs.toFixed(1)} vs ${s['route-plain'].cpuPerReqUs.toFixed(1)}`,
      }),
      `route-pinned: 10 tools pinned by portcullis pin --write, validateArguments on, list_notes when ${JSON.stringify(RULE)}; probed before the load: query ["groceries"] → isError "${problem}", query of 100 characters → 403 argument_denied, neither reached the upstream`,
    ]);
  } finally {
    stopAll([upstream, ...targets]);
    rmSync(dir, { recursive: true, force: true });
  }
}

// List filtering (issue 19): a tools/list of the 1 000 tools one bench upstream lists, through a
// route whose policy names every tool (each granted by name: the filter checks 1 000 names and
// keeps them all, so the answer is as long as the unfiltered one) and through one that hides half
// of them (every even-numbered tool granted by name, every tenth odd one listed with a scope the
// caller lacks, the rest unlisted and so denied, beside patterns that match none), against the
// same list through a `default: allow` route with no tool entries. All anonymous, in front of the
// same upstream; a probe of each must list exactly what its policy lets through. The target is
// checked on the route that keeps every tool (the filter's cost, not a shorter answer's saving).
async function listingRow() {
  const TOOLS = 1000;
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-listing-'));
  const participants = [];
  try {
    const upstream = await start('upstream', ['0', String(TOOLS)]);
    participants.push(upstream);
    const entries = ['      list_notes: notes:read'];
    for (let i = 1; i < TOOLS; i++) {
      if (i % 2 === 0) entries.push(`      note_tool_${i}: notes:read`);
      else if (i % 10 === 1) entries.push(`      note_tool_${i}: admin`);
      else if (i % 10 === 3) entries.push(`      "group${i}_*": notes:read`);
    }
    const granted = 1 + Math.floor((TOOLS - 1) / 2);
    const filteredPolicy = writePolicy(dir, 'list-filtered', {
      upstream: upstream.url,
      route: `    tools:\n${entries.join('\n')}`,
    });
    const named = ['      list_notes: notes:read'];
    for (let i = 1; i < TOOLS; i++) named.push(`      note_tool_${i}: notes:read`);
    const namedPolicy = writePolicy(dir, 'list-named', {
      upstream: upstream.url,
      route: `    tools:\n${named.join('\n')}`,
    });
    const allPolicy = writePolicy(dir, 'list-unfiltered', {
      upstream: upstream.url,
      route: '    default: allow',
    });
    const LIST = {
      headers: { 'mcp-method': 'tools/list', 'mcp-name': undefined },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { _meta: META } }),
    };
    const targets = [
      await start('policy', [allPolicy], LIST, undefined, 'list-unfiltered'),
      await start('policy', [namedPolicy], LIST, undefined, 'list-filtered-all'),
      await start('policy', [filteredPolicy], LIST, undefined, 'list-filtered-half'),
    ];
    participants.push(...targets);
    const { 'mcp-name': _name, ...listHeaders } = { ...HEADERS, 'mcp-method': 'tools/list' };
    for (const [target, count] of [
      [targets[0], TOOLS],
      [targets[1], TOOLS],
      [targets[2], granted],
    ]) {
      const result = await probe(target, listHeaders, LIST.body);
      if (result.tools?.length !== count)
        throw new Error(`${target.kind}: ${result.tools?.length} tools listed, not ${count}`);
    }
    const s = await compare(targets, 'tools/list');
    report(s, [
      verdict(
        'filtered tools/list ÷ unfiltered (1 000 tools)',
        s['list-filtered-all'].rps / s['list-unfiltered'].rps,
        0.5,
        {
          note: `every tool named in the policy and let through; CPU µs/req ${s['list-filtered-all'].cpuPerReqUs.toFixed(1)} vs ${s['list-unfiltered'].cpuPerReqUs.toFixed(1)}`,
        },
      ),
      `half filtered out ÷ unfiltered: ${(s['list-filtered-half'].rps / s['list-unfiltered'].rps).toFixed(3)} (${granted} of ${TOOLS} tools let through: a shorter answer)`,
    ]);
  } finally {
    stopAll(participants);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The rows in the order they run; `gateway` and `latency` share one set of participants. */
const RUNS = [
  ['gateway', () => gatewayRows({ throughput: ROWS.has('gateway'), fixed: ROWS.has('latency') })],
  ['stdio', stdioRow],
  ['federation', federationRow],
  ['fanout', fanoutRow],
  ['integrity', integrityRow],
  ['auth', benchAuth],
  ['policy', benchPolicy],
  ['ratelimit', benchRatelimit],
  ['observability', benchObservability],
  ['listing', listingRow],
  ['streams', benchStreams],
  ['identity', benchIdentity],
];
const began = Date.now();
let failed = false;
for (const [name, run] of RUNS) {
  if (!ROWS.has(name) && !(name === 'gateway' && ROWS.has('latency'))) continue;
  process.stdout.write(`\n## ${name === 'gateway' && !ROWS.has('gateway') ? 'latency' : name}\n`);
  try {
    await run();
  } catch (error) {
    // One row that cannot run (no redis-server, a participant that did not start) does not lose
    // the others' figures; it reads ERROR in the table and fails the run.
    failed = true;
    process.stderr.write(`${name}: ${error?.stack ?? error}\n`);
    verdictError(name, error);
  }
}
process.stdout.write(targetsTable());
process.stdout.write(`total ${((Date.now() - began) / 60_000).toFixed(1)} min\n`);
process.exitCode = failed ? 1 : 0;
