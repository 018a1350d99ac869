// npm run bench:policy: the same tools/call load at a gateway whose route lists 5 tools and at one
// listing 200 (exact names and glob patterns), to show that policy size costs nothing per request:
// tables are compiled once, a call is a map lookup (or a pattern walk for unlisted names).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compare, report, start, stopAll, writePolicy } from './harness.mjs';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-policy-'));

function policy(name, upstream, toolCount) {
  const tools = ['      list_notes: notes:read'];
  for (let i = 1; i < toolCount; i++) {
    // A realistic mix: mostly exact names, every tenth a pattern with its own literal prefix.
    tools.push(
      i % 10 === 0 ? `      "group${i}_*": [notes:read, scope${i}]` : `      tool_${i}: scope${i % 17}`,
    );
  }
  return writePolicy(dir, name, { upstream, route: `    tools:\n${tools.join('\n')}` });
}

const upstream = await start('upstream');
const targets = [
  await start('policy', [policy('tools-5', upstream.url, 5)]),
  await start('policy', [policy('tools-200', upstream.url, 200)]),
];
targets[0].kind = 'policy-5-tools';
targets[1].kind = 'policy-200-tools';
try {
  const s = await compare(targets);
  const ratio = s['policy-200-tools'].rps / s['policy-5-tools'].rps;
  report(s, [`200 tools ÷ 5 tools: ${ratio.toFixed(3)} (target: within 3 %, i.e. ≥ 0.970)`]);
} finally {
  stopAll([upstream, ...targets]);
  rmSync(dir, { recursive: true, force: true });
}
