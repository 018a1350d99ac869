// The `streams` row of npm run bench (also `node bench/streams.mjs` alone, after `npm run build`):
// issue 19's "10 000 concurrent idle SSE streams (GET, legacy): RSS growth ≤ 30 KiB per stream,
// event latency unchanged; reported with the heap per stream".
//   - An upstream with legacy (2025-11-25) sessions (bench/servers.mjs `session-upstream`) behind
//     the gateway (its own process, started with --expose-gc), anonymous route, its concurrency
//     caps raised for the row: every GET stream holds a request slot and a stream slot of the one
//     anonymous identity, and the defaults (64, 16, 4 096 in total) would refuse the 17th.
//   - Each stream is what a client does: POST `initialize` (the answer carries the gateway's sealed
//     `Mcp-Session-Id`), then GET with it, `Accept: text/event-stream` and
//     `Mcp-Protocol-Version: 2025-11-25`, kept open and idle; opened BATCH at a time.
//   - Memory: the gateway's process.memoryUsage() (rss is the kernel's resident set, as VmRSS in
//     /proc/<pid>/status; heapUsed is V8's) after two full collections, with WARM streams open (the
//     warm-up: every path of a stream has run once) and with all BENCH_STREAMS open and idle for
//     SETTLE_MS; growth per stream = the difference ÷ the streams added. After every stream is
//     closed, the heap is measured again: what a stream leaves behind shows there.
//   - Event latency: the upstream writes one `notifications/message` on SAMPLE streams spread evenly
//     over those open, stamped with its CLOCK_MONOTONIC (process.hrtime, one clock for every process
//     of the machine); the client times its arrival on the same clock. With every stream open, in
//     BURSTS rounds interleaved with the same burst through a control gateway (same policy, its
//     own process) holding WARM streams, so that the machine's noise falls on both alike. Every
//     event must arrive, on the stream of the session it was written to (one missing or
//     misdelivered fails the row). p50 and p99 are medians over BLOCKS blocks of rounds of each
//     block's. Unchanged means: the gateway's p99 with every stream open ≤ the control's + 1 ms.
//   File descriptors: the gateway holds two per stream, the upstream and this process one each.
//   `prlimit` raises this process's limit before the participants are forked (they inherit it);
//   where it cannot (root without CAP_SYS_RESOURCE, in some containers), the row holds as many
//   streams as the hard limit lets the gateway hold and says so (9 900 under a limit of 20 000).
//   BENCH_STREAMS (default 10 000).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMain, start, stopAll, verdict, writePolicy } from './harness.mjs';

/** The streams asked for; fewer when the open-file limit cannot be raised (see streamsThatFit). */
const ASKED = Number(process.env.BENCH_STREAMS ?? 10_000);
/** Streams open before the baseline (the warm-up), and through the control gateway. */
const WARM = 50;
/** Open files the gateway needs besides its two per stream (listeners, audit file, epoll, …). */
const FD_RESERVE = 200;
/** Streams being opened at once. */
const BATCH = 200;
/**
 * Streams written to per burst, bursts timed per gateway (PAUSE_MS apart), and rounds before them
 * that are not timed: the first events after an idle spell wake cold processes and code, which
 * says nothing of the streams held.
 */
const SAMPLE = 10;
const BURSTS = 50;
const BLOCKS = 5;
const UNTIMED = 3;
const PAUSE_MS = 25;
/** Idle time before memory is measured. */
const SETTLE_MS = 2_000;
/** Longest wait for a burst's events: one missing after this fails the row. */
const EVENT_TIMEOUT_MS = 5_000;
const VERSION = '2025-11-25';

const KiB = 1024;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const percentile = (sorted, p) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

/** One IPC question to a participant: the first answer carrying `key`. */
function ask(participant, message, key) {
  return new Promise((resolve) => {
    const listen = (m) => {
      if (m?.[key] === undefined) return;
      participant.child.off('message', listen);
      resolve(m[key]);
    };
    participant.child.on('message', listen);
    participant.child.send(message);
  });
}

/** This process's hard limit of open files, from /proc/self/limits. */
function hardFileLimit() {
  const line = readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  return Number(line?.trim().split(/\s+/)[4]);
}

/**
 * How many streams the row can hold: it raises this process's open-file limit with `prlimit` (the
 * participants forked after it inherit it) so that the gateway can hold two descriptors per stream
 * and FD_RESERVE of its own. Where that is not allowed (root without CAP_SYS_RESOURCE, as in some
 * containers) it holds as many as the hard limit lets the gateway hold, and says so: the cost of a
 * stream is measured per stream, so a few hundred fewer do not change it.
 */
function streamsThatFit() {
  const needed = ASKED * 2 + FD_RESERVE;
  if (hardFileLimit() >= needed) return { streams: ASKED };
  const limit = Math.max(65_536, needed);
  try {
    execFileSync('prlimit', ['--pid', String(process.pid), `--nofile=${limit}:${limit}`], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    return { streams: ASKED };
  } catch (error) {
    const hard = hardFileLimit();
    const streams = Math.floor((hard - FD_RESERVE) / 2 / 100) * 100;
    if (!(streams >= WARM * 4)) throw new Error(`open-file limit ${hard}: too low for this row`);
    return {
      streams,
      note: `${ASKED} streams need ${needed} open files in the gateway; the hard limit here is ${hard} and prlimit could not raise it (${String(error.stderr ?? error.message).trim()}): ${streams} streams held`,
    };
  }
}

/**
 * The client side: opens streams through one gateway, as `group` (its initialize's
 * `clientInfo.name`, which the upstream groups its sessions by), and records what arrives on them.
 * Events are read by a minimal SSE parser (data lines of events split on a blank line).
 */
function createClient(url, group) {
  const target = new URL(url);
  // Keep-alive: a stream's initialize answer frees its socket for the GET that follows.
  const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, maxFreeSockets: BATCH });
  const streams = [];
  /** Arrivals by burst: seq → [{ session, latencyMs }]; events delivered on another session's stream. */
  const arrivals = new Map();
  const misdelivered = [];

  const send = (method, headers, body) =>
    new Promise((resolve, reject) => {
      const req = request(
        { host: target.hostname, port: target.port, path: target.pathname, method, headers, agent },
        (res) => resolve({ req, res }),
      );
      req.on('error', reject);
      req.end(body);
    });

  const text = (res) =>
    new Promise((resolve, reject) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      res.on('error', reject);
    });

  const onEvent = (stream, data, at) => {
    const message = JSON.parse(data);
    const event = message.params?.data;
    if (message.method !== 'notifications/message' || event?.seq === undefined) return;
    if (event.session !== stream.session) misdelivered.push({ on: stream.session, for: event.session });
    if (!arrivals.has(event.seq)) arrivals.set(event.seq, []);
    arrivals.get(event.seq).push({
      session: event.session,
      latencyMs: Number(at - BigInt(event.sentNs)) / 1e6,
    });
  };

  /** initialize, then the GET stream of its session, open once its headers are in. */
  async function open() {
    const body = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: {
        protocolVersion: VERSION,
        capabilities: {},
        clientInfo: { name: group, version: '1.0.0' },
      },
    });
    const init = await send(
      'POST',
      {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'content-length': Buffer.byteLength(body),
      },
      body,
    );
    const answer = await text(init.res);
    const sealed = init.res.headers['mcp-session-id'];
    if (init.res.statusCode !== 200 || typeof sealed !== 'string')
      throw new Error(`initialize: HTTP ${init.res.statusCode} ${answer.slice(0, 300)}`);
    const session = JSON.parse(answer).result?.instructions;
    if (typeof session !== 'string' || sealed === session)
      throw new Error(`initialize: the upstream's session id is not sealed: ${sealed} for ${session}`);
    const { req, res } = await send('GET', {
      accept: 'text/event-stream',
      'mcp-session-id': sealed,
      'mcp-protocol-version': VERSION,
    });
    if (res.statusCode !== 200 || !String(res.headers['content-type']).startsWith('text/event-stream'))
      throw new Error(`GET: HTTP ${res.statusCode} ${(await text(res)).slice(0, 300)}`);
    const stream = { session, req, res, closed: false };
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk) => {
      const at = process.hrtime.bigint();
      buffer += chunk.includes('\r') ? chunk.replace(/\r\n?/g, '\n') : chunk;
      for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).trimStart())
          .join('\n');
        if (data !== '') onEvent(stream, data, at);
      }
    });
    res.on('close', () => {
      stream.closed = true;
    });
    res.on('error', () => {});
    streams.push(stream);
  }

  return {
    group,
    streams,
    arrivals,
    misdelivered,
    /** Opens streams until `total` are open, BATCH at a time. */
    async openUntil(total) {
      while (streams.length < total) {
        const batch = Math.min(BATCH, total - streams.length);
        await Promise.all(Array.from({ length: batch }, open));
      }
    },
    close() {
      for (const stream of streams) stream.res.destroy();
      agent.destroy();
    },
  };
}

/**
 * One event on SAMPLE of `client`'s streams: their latencies (ms). Throws when one written does not
 * arrive within EVENT_TIMEOUT_MS.
 */
async function burst(upstream, client, seq) {
  const { sent } = await ask(upstream, { notify: { group: client.group, count: SAMPLE, seq } }, 'notified');
  if (sent.length !== SAMPLE)
    throw new Error(`${client.group}: ${sent.length} streams open upstream, not ${SAMPLE}`);
  const deadline = Date.now() + EVENT_TIMEOUT_MS;
  while ((client.arrivals.get(seq)?.length ?? 0) < sent.length && Date.now() < deadline) await sleep(2);
  const arrived = client.arrivals.get(seq) ?? [];
  if (arrived.length < sent.length) {
    const got = new Set(arrived.map((a) => a.session));
    const missing = sent.filter((session) => !got.has(session));
    throw new Error(
      `${client.group}: ${missing.length} of ${sent.length} events did not arrive within ${EVENT_TIMEOUT_MS} ms (sessions ${missing.slice(0, 5).join(', ')}…)`,
    );
  }
  return arrived.map((a) => a.latencyMs);
}

/**
 * UNTIMED + BURSTS rounds of one burst on each client, in alternating order (the machine's noise
 * falls on both alike), timed in BLOCKS blocks of rounds: per client the medians over the blocks of
 * each block's p50 and p99, so that one burst the scheduler delayed moves one block, not the
 * verdict (as the other rows take medians of interleaved runs).
 */
async function interleavedBursts(upstream, clients) {
  const perBlock = BURSTS / BLOCKS;
  const blocks = new Map(clients.map((c) => [c.group, Array.from({ length: BLOCKS }, () => [])]));
  for (let round = -UNTIMED; round < BURSTS; round++) {
    const order = round % 2 === 0 ? clients : [...clients].reverse();
    for (const client of order) {
      const times = await burst(upstream, client, `${client.group}-${round}`);
      if (round >= 0) blocks.get(client.group)[Math.floor(round / perBlock)].push(...times);
      await sleep(PAUSE_MS);
    }
  }
  return new Map(
    [...blocks].map(([group, list]) => {
      for (const times of list) times.sort((a, b) => a - b);
      return [
        group,
        {
          p50: median(list.map((times) => percentile(times, 50))),
          p99: median(list.map((times) => percentile(times, 99))),
          count: list.reduce((sum, times) => sum + times.length, 0),
        },
      ];
    }),
  );
}

export async function benchStreams() {
  const { streams: total, note } = streamsThatFit();
  if (note !== undefined) process.stdout.write(`${note}\n`);
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-streams-'));
  const participants = [];
  const clients = [];
  const began = Date.now();
  try {
    const upstream = await start('session-upstream');
    participants.push(upstream);
    // Every GET stream holds a request slot and a stream slot, all of one identity (anonymous).
    const cap = total + 1_000;
    const policy = (name) =>
      writePolicy(dir, name, {
        upstream: upstream.url,
        route: '    tools: { list_notes: notes:read }',
        top: `limits: { maxConcurrentPerIdentity: ${cap}, maxStreamsPerIdentity: ${cap}, maxConcurrentTotal: ${cap} }`,
      });
    const gateway = await start('policy', [policy('streams')], {}, undefined, 'gateway', ['--expose-gc']);
    participants.push(gateway);
    const control = await start('policy', [policy('streams-control')], {}, undefined, 'gateway-control');
    participants.push(control);
    const measured = createClient(gateway.url, 'measured');
    const few = createClient(control.url, 'control');
    clients.push(measured, few);

    await measured.openUntil(WARM);
    await few.openUntil(WARM);
    // Every path of a stream, an event's included, has run before the baseline.
    for (let i = 0; i < UNTIMED; i++) await burst(upstream, measured, `warm-${i}`);
    await sleep(SETTLE_MS);
    const before = await ask(gateway, 'memory', 'memory');

    const opening = Date.now();
    await measured.openUntil(total);
    const openSec = (Date.now() - opening) / 1000;
    const open = await ask(upstream, 'streams', 'streams');
    if (open.measured !== total || open.control !== WARM)
      throw new Error(`streams open at the upstream: ${JSON.stringify(open)}, not ${total} and ${WARM}`);
    await sleep(SETTLE_MS);
    const after = await ask(gateway, 'memory', 'memory');
    const latency = await interleavedBursts(upstream, [measured, few]);
    for (const client of clients) {
      const closedEarly = client.streams.filter((s) => s.closed).length;
      if (closedEarly > 0) throw new Error(`${client.group}: ${closedEarly} streams closed before the end`);
      if (client.misdelivered.length > 0)
        throw new Error(
          `${client.group}: ${client.misdelivered.length} events arrived on another session's stream: ${JSON.stringify(client.misdelivered.slice(0, 3))}`,
        );
    }

    // Every stream closed by its client: what the gateway still holds then is not a stream's.
    measured.close();
    const deadline = Date.now() + 10_000;
    while ((await ask(upstream, 'streams', 'streams')).measured > 0 && Date.now() < deadline)
      await sleep(100);
    await sleep(500);
    const closed = await ask(gateway, 'memory', 'memory');

    const added = total - WARM;
    const perStream = (key, m) => (m[key] - before[key]) / added / KiB;
    const MiB = (bytes) => (bytes / 2 ** 20).toFixed(1);
    const ms = (x) => x.toFixed(2);
    const [many, some] = [latency.get('measured'), latency.get('control')];
    process.stdout.write(
      [
        '',
        `${total} GET streams (legacy ${VERSION}, one initialize each) through the gateway, anonymous route; opened in ${openSec.toFixed(1)} s (${BATCH} at a time), all ${total} open at the upstream`,
        '',
        '| gateway (after gc)      | rss MiB | heapUsed MiB | external MiB |',
        '| ----------------------- | ------- | ------------ | ------------ |',
        ...[
          [`${WARM} streams open`, before],
          [`${total} streams open`, after],
          ['every stream closed', closed],
        ].map(
          ([what, m]) =>
            `| ${what.padEnd(23)} | ${MiB(m.rss).padStart(7)} | ${MiB(m.heapUsed).padStart(12)} | ${MiB(m.external).padStart(12)} |`,
        ),
        '',
        verdict('RSS growth per idle SSE stream (KiB)', perStream('rss', after), 30, {
          cmp: '≤',
          digits: 1,
          note: `heap ${perStream('heapUsed', after).toFixed(1)} KiB per stream, external ${perStream('external', after).toFixed(1)} KiB; over ${added} streams added to ${WARM}`,
        }),
        `heap per stream: ${perStream('heapUsed', after).toFixed(1)} KiB; left once every stream closed: heap ${((closed.heapUsed - before.heapUsed) / KiB).toFixed(0)} KiB, rss ${((closed.rss - before.rss) / KiB).toFixed(0)} KiB over the ${WARM}-stream baseline`,
        '',
        '| target                  | streams open | events | p50 ms | p99 ms |',
        '| ----------------------- | ------------ | ------ | ------ | ------ |',
        ...[
          ['gateway', total, many],
          ['gateway-control', WARM, some],
        ].map(
          ([what, count, l]) =>
            `| ${what.padEnd(23)} | ${String(count).padStart(12)} | ${String(l.count).padStart(6)} | ${ms(l.p50).padStart(6)} | ${ms(l.p99).padStart(6)} |`,
        ),
        '',
        verdict('event p99, every stream open (ms)', many.p99, Number((some.p99 + 1).toFixed(2)), {
          cmp: '≤',
          digits: 2,
          note: `${total} open; target: p99 of a gateway holding ${WARM} + 1 ms; p50 ${ms(many.p50)} vs ${ms(some.p50)} ms`,
        }),
        `(${BURSTS} interleaved rounds of one notifications/message on ${SAMPLE} streams of each gateway, spread over those open, timed from the upstream's write to the client's read, one clock; medians over ${BLOCKS} blocks of ${BURSTS / BLOCKS} rounds of each block's p50 and p99; every event arrived on its own session's stream; the row took ${((Date.now() - began) / 1000).toFixed(0)} s)`,
        '',
      ].join('\n'),
    );
  } finally {
    for (const client of clients) client.close();
    stopAll(participants);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) await benchStreams();
