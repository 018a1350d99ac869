// Soak with faults: a real gateway (its own process, from dist/) with Redis rate limits on a
// `failMode: closed` route, under a mix of normal calls, a 3.5 MB allowed request every 250 ms,
// open GET streams and clients dropping mid-answer; meanwhile Redis is killed and restarted and the
// upstream is killed and restarted. Reports:
//   - spurious refusals: 503 `limiter_unavailable` while Redis was up (should be 0),
//   - the gateway's worst event-loop stall (perf_hooks.monitorEventLoopDelay, in the gateway),
//   - the gateway's RSS over time.
//   npm run soak                  (SOAK_DURATION seconds, default 180; SOAK_WORKERS, default 8)
//   node bench/soak.mjs --json    (the summary as JSON on stdout)
import { fork, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';

const [mode, arg] = process.argv.slice(2);
const SELF = new URL(import.meta.url).pathname;

if (mode === 'upstream') runUpstream(Number(arg));
else if (mode === 'gateway') await runGateway(arg);
else await soak();

// ------------------------------------------------------------------------------------------------
// The upstream: tools/call answers JSON; `slow` streams SSE for 2 s; GET is an SSE stream.
// ------------------------------------------------------------------------------------------------
function runUpstream(port) {
  const server = createServer((req, res) => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
      const tick = setInterval(() => res.write(`event: message\ndata: ${NOTE}\n\n`), 1_000);
      res.once('close', () => clearInterval(tick));
      return;
    }
    const chunks = [];
    req.on('data', (chunk) => chunks.push(chunk));
    req.on('end', () => {
      let message;
      try {
        message = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        res.writeHead(400).end();
        return;
      }
      if (message.params?.name === 'slow') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        let step = 0;
        const tick = setInterval(() => {
          step++;
          if (step < 20) {
            res.write(`event: message\ndata: ${NOTE}\n\n`);
            return;
          }
          clearInterval(tick);
          res.end(
            `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { content: [] } })}\n\n`,
          );
        }, 100);
        res.once('close', () => clearInterval(tick));
        return;
      }
      const body = JSON.stringify({
        jsonrpc: '2.0',
        id: message.id,
        result: { content: [{ type: 'text', text: 'ok' }] },
      });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.listen(port, '127.0.0.1', () => process.send?.({ ready: true }));
}
const NOTE = JSON.stringify({
  jsonrpc: '2.0',
  method: 'notifications/message',
  params: { level: 'info', data: 'tick' },
});

// ------------------------------------------------------------------------------------------------
// The gateway, in its own process, measuring its own event loop and memory.
// ------------------------------------------------------------------------------------------------
async function runGateway(policyFile) {
  const { loadConfigFile } = await import('../dist/config/load.js');
  const { startGateway } = await import('../dist/server/gateway.js');
  const pino = (await import('pino')).default;
  const loaded = loadConfigFile(policyFile);
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const gateway = await startGateway({
    config: loaded.config,
    configPath: policyFile,
    configSource: loaded.source,
    logger: pino({ level: 'error' }),
  });
  process.on('message', (message) => {
    if (message === 'sample') {
      void sample();
    } else if (message === 'stop') {
      void gateway.close().then(() => process.exit(0));
    }
  });
  async function sample() {
    const errors = {};
    for (const { labels, value } of (await gateway.metrics.redisErrors.get()).values)
      errors[labels.kind] = value;
    process.send({
      sample: {
        redisErrors: errors,
        maxStallMs: delay.max / 1e6,
        p99StallMs: delay.percentile(99) / 1e6,
        rssMiB: process.memoryUsage().rss / 2 ** 20,
      },
    });
    delay.reset();
  }
  process.send({ url: gateway.url, adminUrl: gateway.adminUrl });
}

// ------------------------------------------------------------------------------------------------
// The soak itself.
// ------------------------------------------------------------------------------------------------
async function soak() {
  const durationSec = Number(process.env.SOAK_DURATION ?? 180);
  const workers = Number(process.env.SOAK_WORKERS ?? 8);
  const json = process.argv.includes('--json');
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-soak-'));
  const key = randomBytes(32).toString('base64url');
  const hash = createHash('sha256').update(key).digest('hex');
  const redisPort = await freePort();
  const upstreamPort = await freePort();

  // Redis: killed and restarted mid-run; "healthy" from the gateway's first Redis answer after
  // each start until the moment it is killed.
  let redis;
  let redisUp = false;
  /** Redis has answered the gateway since its last start: a call on the closed route was allowed. */
  let redisAnswered = false;
  /** When Redis last started (a request sent before it cannot prove the gateway reconnected). */
  let redisStartedAt = 0;
  const startRedis = async () => {
    redis = spawn(
      'redis-server',
      ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    await new Promise((resolve) => {
      let out = '';
      redis.stdout.on('data', (chunk) => {
        out += chunk;
        if (out.includes('Ready to accept connections')) resolve();
      });
    });
    redisUp = true;
    redisAnswered = false;
    redisStartedAt = Date.now();
  };
  const stopRedis = async () => {
    redisUp = false;
    const exited = once(redis, 'exit');
    redis.kill('SIGKILL');
    await exited;
  };
  // Healthy: running, and the gateway has (re)connected — proven by an allowed call on the closed
  // route since the start (under heavy stalls the reconnect itself can take seconds).
  const redisHealthy = () => redisUp && redisAnswered;

  let upstream;
  const startUpstream = async () => {
    upstream = fork(SELF, ['upstream', String(upstreamPort)], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    await once(upstream, 'message');
  };
  const stopUpstream = async () => {
    const exited = once(upstream, 'exit');
    upstream.kill('SIGKILL');
    await exited;
  };

  await startRedis();
  await startUpstream();
  const policy = join(dir, 'soak.yaml');
  writeFileSync(
    policy,
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: ${JSON.stringify(join(dir, 'audit.jsonl'))} }
log: { level: error }
limits: { maxStreamsPerIdentity: 16, drainTimeoutMs: 1000 }
redis: { url: "redis://127.0.0.1:${redisPort}", commandTimeoutMs: 50 }
identities:
  apiKeys: [{ id: soak, hash: "sha256:${hash}", scopes: [t] }]
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: http://127.0.0.1:${upstreamPort}/mcp
    authentication: { methods: [apiKey] }
    tools: { echo: t, slow: t }
    rateLimits: [{ per: identity, limit: 1000000/minute }]
    failMode: closed
`,
  );
  const gateway = fork(SELF, ['gateway', policy], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const [{ url: base }] = await once(gateway, 'message');
  const url = `${base}/mcp`;
  await new Promise((resolve) => setTimeout(resolve, 1_000));

  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': '2026-07-28',
    'mcp-method': 'tools/call',
    authorization: `Bearer ${key}`,
  };
  const META = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientInfo': { name: 'soak', version: '1' },
    'io.modelcontextprotocol/clientCapabilities': {},
  };
  const body = (name, args) =>
    JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tools/call',
      params: { name, arguments: args, _meta: META },
    });
  const BIG = body('echo', { text: 'x'.repeat(3.5 * 2 ** 20) });

  const startedAt = Date.now();
  const elapsed = () => ((Date.now() - startedAt) / 1_000).toFixed(1);
  const counts = new Map();
  const count = (what) => counts.set(what, (counts.get(what) ?? 0) + 1);
  let spurious = 0;
  const spuriousAt = [];
  let requests = 0;
  const record = async (answer, kind, sentAt, healthyAtSend) => {
    requests++;
    const text = await answer.text();
    if (answer.status === 503 && text.includes('limiter_unavailable')) {
      // Spurious: Redis was healthy (connected and answering) from before the request was sent
      // until its refusal came back.
      const healthy = healthyAtSend && redisHealthy();
      if (healthy) {
        spurious++;
        spuriousAt.push(Number(elapsed()));
      }
      count(
        `${kind} 503 limiter_unavailable${healthy ? ' (redis healthy: SPURIOUS)' : ' (redis down or reconnecting)'}`,
      );
      return;
    }
    // An allowed call on the closed route sent after Redis started proves the gateway reconnected.
    if (answer.status === 200 && redisUp && sentAt >= redisStartedAt) redisAnswered = true;
    count(`${kind} ${answer.status}`);
  };
  const call = async (name, payload, kind, signal) => {
    const sentAt = Date.now();
    const healthyAtSend = redisHealthy();
    try {
      const answer = await fetch(url, {
        method: 'POST',
        headers: { ...headers, 'mcp-name': name },
        body: payload,
        ...(signal ? { signal } : {}),
      });
      await record(answer, kind, sentAt, healthyAtSend);
    } catch (err) {
      count(`${kind} ${signal?.aborted ? 'dropped by client' : `error ${err.cause?.code ?? err.name}`}`);
    }
  };

  const endAt = Date.now() + durationSec * 1_000;
  const running = () => Date.now() < endAt;
  const tasks = [];
  // Normal calls, as fast as the workers go.
  for (let w = 0; w < workers; w++) {
    tasks.push(
      (async () => {
        while (running()) await call('echo', body('echo', { text: `w${w}` }), 'call');
      })(),
    );
  }
  // An allowed 3.5 MB request every 250 ms (at most 8 in flight: past that the gateway is simply
  // overloaded, which is not what this run measures; skipped ticks are reported).
  let bigInFlight = 0;
  tasks.push(
    (async () => {
      while (running()) {
        if (bigInFlight < 8) {
          bigInFlight++;
          void call('echo', BIG, 'big').finally(() => bigInFlight--);
        } else count('big skipped (8 in flight)');
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })(),
  );
  // Eight GET streams, reopened whenever one ends.
  for (let s = 0; s < 8; s++) {
    tasks.push(
      (async () => {
        while (running()) {
          const controller = new AbortController();
          const stop = setTimeout(() => controller.abort(), Math.max(0, endAt - Date.now()));
          try {
            const answer = await fetch(url, {
              headers: { accept: 'text/event-stream', authorization: `Bearer ${key}` },
              signal: controller.signal,
            });
            count(`stream ${answer.status}`);
            await answer.body?.pipeTo(new WritableStream());
          } catch {
            // ended by a fault or at the end of the run
          }
          clearTimeout(stop);
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      })(),
    );
  }
  // Clients leaving mid-answer: a slow SSE call dropped after 300 ms, twice a second.
  tasks.push(
    (async () => {
      while (running()) {
        const controller = new AbortController();
        setTimeout(() => controller.abort(), 300);
        void call('slow', body('slow', {}), 'slow', controller.signal);
        await new Promise((resolve) => setTimeout(resolve, 500));
      }
    })(),
  );
  // Faults: Redis down at 25 % for 5 s; the upstream down at 55 % for 3 s.
  const faults = [];
  tasks.push(
    (async () => {
      await sleepUntil(endAt - durationSec * 750);
      faults.push(`redis killed at ${elapsed()} s`);
      await stopRedis();
      await new Promise((resolve) => setTimeout(resolve, 5_000));
      await startRedis();
      faults.push(`redis restarted at ${elapsed()} s`);
      await sleepUntil(endAt - durationSec * 450);
      faults.push(`upstream killed at ${elapsed()} s`);
      await stopUpstream();
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      await startUpstream();
      faults.push(`upstream restarted at ${elapsed()} s`);
    })(),
  );
  // Gateway stall and RSS, sampled every 5 s.
  const samples = [];
  const sampler = setInterval(() => {
    gateway.send('sample');
  }, 5_000);
  gateway.on('message', (message) => {
    if (message.sample) samples.push({ atSec: Number(elapsed()), requests, ...message.sample });
  });

  await Promise.all(tasks);
  clearInterval(sampler);
  gateway.send('sample');
  await once(gateway, 'message');
  gateway.send('stop');
  await once(gateway, 'exit');
  await stopUpstream();
  await stopRedis();
  rmSync(dir, { recursive: true, force: true });

  const summary = {
    durationSec,
    requests,
    ratePerSec: Math.round(requests / durationSec),
    spuriousRefusals: spurious,
    spuriousAtSec: spuriousAt,
    worstStallMs: Math.max(...samples.map((s) => s.maxStallMs)),
    worstP99StallMs: Math.max(...samples.map((s) => s.p99StallMs)),
    redisErrors: samples.at(-1)?.redisErrors ?? {},
    rssMiB: samples.map((s) => ({ atSec: s.atSec, rss: Math.round(s.rssMiB) })),
    faults,
    answers: Object.fromEntries([...counts].sort()),
  };
  if (json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } else {
    console.log(`soak: ${durationSec} s, ${requests} answered requests (${summary.ratePerSec}/s)`);
    console.log(`spurious refusals (503 limiter_unavailable while Redis was healthy): ${spurious}`);
    console.log(
      `worst event-loop stall: ${summary.worstStallMs.toFixed(1)} ms (worst 5 s p99: ${summary.worstP99StallMs.toFixed(1)} ms)`,
    );
    console.log(`RSS (MiB) over time: ${summary.rssMiB.map((s) => `${s.atSec}s=${s.rss}`).join(' ')}`);
    if (spurious > 0) console.log(`  spurious refusals at (s): ${spuriousAt.join(', ')}`);
    console.log(`faults: ${faults.join('; ')}`);
    console.log(
      `gateway's Redis errors by kind (timeouts and outage fallbacks): ${JSON.stringify(summary.redisErrors)}`,
    );
    for (const [what, n] of Object.entries(summary.answers)) console.log(`  ${what}: ${n}`);
  }
  process.exitCode = spurious === 0 ? 0 : 1;
}

function sleepUntil(at) {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));
}

async function freePort() {
  const server = createNetServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}
