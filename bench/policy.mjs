// npm run bench:policy (and the `policy` row of npm run bench): the same tools/call load at a
// gateway whose route lists 5 tools and at one listing 5 000 (exact names and glob patterns), to
// show that policy size costs nothing per request: tables are compiled once, a call is a map
// lookup (or a pattern walk for unlisted names). Target (issue 19): within 3 % of the 5-tool route.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compare, isMain, report, start, stopAll, toolsSection, verdict, writePolicy } from './harness.mjs';

/** Starts the participants, drives the load, prints the table and the verdict. */
export async function benchPolicy() {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-policy-'));
  const policy = (name, upstream, toolCount) =>
    writePolicy(dir, name, { upstream, route: toolsSection(toolCount) });
  const upstream = await start('upstream');
  const targets = [
    await start('policy', [policy('tools-5', upstream.url, 5)]),
    await start('policy', [policy('tools-5000', upstream.url, 5000)]),
  ];
  targets[0].kind = 'policy-5-tools';
  targets[1].kind = 'policy-5000-tools';
  try {
    const s = await compare(targets);
    const ratio = s['policy-5000-tools'].rps / s['policy-5-tools'].rps;
    report(s, [verdict('5 000 tools ÷ 5 tools', ratio, 0.97, { note: 'within 3 %' })]);
  } finally {
    stopAll([upstream, ...targets]);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) await benchPolicy();
