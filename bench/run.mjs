// npm run bench: the same tools/call load at a bare undici pass-through, at http-proxy and at the
// gateway (anonymous route), interleaved round by round, then medians and ratios. Then the stdio
// rows: the full gateway (API key, policy, chained audit) in front of a stdio server, against
// supergateway and mcp-proxy bridging the same server (they check nothing); CPU counts each
// participant's whole process tree, the stdio server included.
//   BENCH_AGAINST=<dir>: also the gateway of another built checkout (`git worktree add <dir> <rev>`,
//   `npm ci && npm run build` there), in the same run: a change measured against main before it.
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { newApiKey } from '../dist/auth/api-key.js';
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
