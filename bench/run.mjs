// npm run bench: the same tools/call load at a bare undici pass-through, at http-proxy and at the
// gateway (anonymous route), interleaved round by round, then medians and ratios.
//   BENCH_AGAINST=<dir>: also the gateway of another built checkout (`git worktree add <dir> <rev>`,
//   `npm ci && npm run build` there), in the same run: a change measured against main before it.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { compare, report, start, stopAll } from './harness.mjs';

const against = process.env.BENCH_AGAINST;
const againstServers = against === undefined ? undefined : join(resolve(against), 'bench/servers.mjs');
if (againstServers !== undefined && !existsSync(againstServers)) {
  process.stderr.write(`BENCH_AGAINST: ${againstServers} does not exist\n`);
  process.exit(2);
}

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
