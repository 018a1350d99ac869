// npm run bench:policy: the same tools/call load at a gateway whose route lists 5 tools and at one
// listing 200 (exact names and glob patterns), to show that policy size costs nothing per request:
// tables are compiled once, a call is a map lookup (or a pattern walk for unlisted names).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compare, report, start, stopAll } from './harness.mjs';

const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-policy-'));

function policy(name, upstream, toolCount) {
  const tools = ['      list_notes: notes:read'];
  for (let i = 1; i < toolCount; i++) {
    // A realistic mix: mostly exact names, every tenth a pattern with its own literal prefix.
    tools.push(
      i % 10 === 0 ? `      "group${i}_*": [notes:read, scope${i}]` : `      tool_${i}: scope${i % 17}`,
    );
  }
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: ${JSON.stringify(join(dir, `${name}-audit.jsonl`))} }
log: { level: warn }
identities:
  anonymous: { scopes: [notes:read] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream}
    authentication: { methods: [anonymous] }
    tools:
${tools.join('\n')}
`,
  );
  return file;
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
