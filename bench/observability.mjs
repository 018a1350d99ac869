// npm run bench:observability (and the `observability` row of npm run bench): the same tools/call
// load at the gateway with no audit (`destination: none`), auditing to a file (HMAC-chained,
// arguments hashed), and auditing to a file with OpenTelemetry tracing on (every request sampled,
// and 10 %; exported over OTLP/HTTP to a sink in its own process). Target: audit file ÷ none
// ≥ 0.97; tracing is reported as measured.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compare, isMain, report, start, stopAll, verdict, writePolicy } from './harness.mjs';

/** Starts the participants, drives the load, prints the table, the verdict and the tracing ratios. */
export async function benchObservability() {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-obs-'));
  const route = '    tools: { list_notes: notes:read }';
  const chained = (name) =>
    `{ destination: ${JSON.stringify(join(dir, `${name}.jsonl`))}, chainKey: "bench-chain-key-0123456789", arguments: hash }`;

  const upstream = await start('upstream');
  const sink = await start('otlp-sink');
  const sinkOrigin = new URL(sink.url).origin;
  const participants = {
    'audit-none': { audit: '{ destination: none }' },
    'audit-file': { audit: chained('audit-file') },
    'audit-file+tracing': {
      audit: chained('audit-tracing'),
      top: `tracing: { otlpEndpoint: "${sinkOrigin}", sampleRatio: 1 }`,
    },
    'audit-file+tracing-10%': {
      audit: chained('audit-tracing-10'),
      top: `tracing: { otlpEndpoint: "${sinkOrigin}", sampleRatio: 0.1 }`,
    },
  };
  const targets = [];
  try {
    for (const [name, opts] of Object.entries(participants)) {
      const target = await start('policy', [
        writePolicy(dir, name, { upstream: upstream.url, route, ...opts }),
      ]);
      target.kind = name;
      targets.push(target);
    }
    const s = await compare(targets);
    report(s, [
      verdict('audit to a file ÷ no audit', s['audit-file'].rps / s['audit-none'].rps, 0.97),
      `tracing on, every request sampled ÷ off (both auditing to a file): ${(s['audit-file+tracing'].rps / s['audit-file'].rps).toFixed(3)}`,
      `tracing on, 10 % sampled ÷ off: ${(s['audit-file+tracing-10%'].rps / s['audit-file'].rps).toFixed(3)}`,
    ]);
  } finally {
    stopAll([upstream, sink, ...targets]);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) await benchObservability();
