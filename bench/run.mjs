// npm run bench: the same tools/call load at a bare undici pass-through, at http-proxy and at the
// gateway (anonymous route), interleaved round by round, then medians and ratios.
import { compare, report, start, stopAll } from './harness.mjs';

const upstream = await start('upstream');
const targets = [
  await start('bare', [upstream.url]),
  await start('http-proxy', [upstream.url]),
  await start('gateway', [upstream.url]),
];
try {
  const s = await compare(targets);
  report(s, [
    `gateway ÷ bare:       ${(s.gateway.rps / s.bare.rps).toFixed(3)} (target ≥ 0.85)`,
    `gateway ÷ http-proxy: ${(s.gateway.rps / s['http-proxy'].rps).toFixed(3)}`,
  ]);
} finally {
  stopAll([upstream, ...targets]);
}
