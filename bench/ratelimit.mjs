// npm run bench:ratelimit (and the `ratelimit` row of npm run bench): the same tools/call load at
// the gateway with two rate-limit rules checked in process and with the same rules checked in Redis
// on every call (a redis-server this script starts), to show what the shared limiter costs; a route
// without limits is the control. Target (issue 19): Redis ÷ in-process ≥ 0.90. The command timeout
// is generous so that a CPU-starved 2-core box measures the Redis path, not the fallback
// (failMode: closed would otherwise answer 503s).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compare, isMain, report, start, stopAll, verdict, writePolicy } from './harness.mjs';

/** A redis-server on a free loopback port, ready to accept connections. */
async function startRedis() {
  const port = await new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address();
      probe.close(() => resolve(free));
    });
  });
  const redis = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise((resolve, reject) => {
    let out = '';
    redis.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('Ready to accept connections')) resolve();
    });
    redis.once('exit', (code) =>
      reject(new Error(`redis-server exited ${code} (apt-get install -y redis-server)`)),
    );
  });
  return { redis, port };
}

/** Starts redis-server and the participants, drives the load, prints the table and the verdict. */
export async function benchRatelimit() {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-rl-'));
  const { redis, port } = await startRedis();

  /** redis-server's own user+system CPU seconds so far (Linux /proc), the part of the cost the gateway's figure omits. */
  const redisCpuSeconds = () => {
    const fields = readFileSync(`/proc/${redis.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  };

  const policy = (name, upstream, limits, shared = limits) =>
    writePolicy(dir, name, {
      upstream,
      top: shared ? `redis: { url: "redis://127.0.0.1:${port}", commandTimeoutMs: 1000 }` : '',
      route: `    tools: { list_notes: notes:read }${
        limits
          ? '\n    rateLimits: [{ per: identity, limit: 1000000000/hour }, { per: client, limit: 1000000000/hour }]\n    failMode: closed'
          : ''
      }`,
    });

  const participants = [];
  try {
    const upstream = await start('upstream');
    participants.push(upstream);
    const targets = [
      await start('policy', [policy('no-limiter', upstream.url, false)]),
      await start('policy', [policy('redis-limiter', upstream.url, true)]),
      await start('policy', [policy('memory-limiter', upstream.url, true, false)]),
    ];
    participants.push(...targets);
    targets[0].kind = 'no-limiter';
    targets[1].kind = 'redis-limiter';
    targets[2].kind = 'memory-limiter';
    const s = await compare(targets);
    report(s, [
      verdict('redis limiter ÷ in-process limiter', s['redis-limiter'].rps / s['memory-limiter'].rps, 0.9),
      `redis limiter ÷ none: ${(s['redis-limiter'].rps / s['no-limiter'].rps).toFixed(3)}`,
      `in-process limiter ÷ none: ${(s['memory-limiter'].rps / s['no-limiter'].rps).toFixed(3)}`,
      `redis-server CPU over the whole run: ${redisCpuSeconds().toFixed(1)} s`,
    ]);
  } finally {
    stopAll(participants);
    redis.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) await benchRatelimit();
