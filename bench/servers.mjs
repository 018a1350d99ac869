// One benchmark participant per process, so that each one's CPU time can be measured alone:
//   node bench/servers.mjs upstream
//   node bench/servers.mjs bare <upstream-url>      (undici pass-through: read body, forward, pipe back)
//   node bench/servers.mjs http-proxy <upstream-url>
//   node bench/servers.mjs gateway <upstream-url>
// Each reports { port } over IPC when listening and answers 'cpu' with its process.cpuUsage().
import { mkdtempSync } from 'node:fs';
import { createServer, Agent as HttpAgent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import httpProxy from 'http-proxy';
import pino from 'pino';
import { Pool } from 'undici';

const [kind, upstreamUrl] = process.argv.slice(2);

const RESULT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  result: { content: [{ type: 'text', text: 'welcome: Welcome\ngroceries: Groceries' }], isError: false },
});

function ready(server) {
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
}

process.on('message', (message) => {
  if (message === 'cpu') process.send({ cpu: process.cpuUsage() });
});

if (kind === 'upstream') {
  // A minimal MCP-shaped upstream: reads the body, answers one JSON-RPC result.
  ready(
    createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(RESULT),
        });
        res.end(RESULT);
      });
    }),
  );
} else if (kind === 'bare') {
  // The least a faithful proxy does: headers both ways minus hop-by-hop ones, the body read and
  // sent on, the answer piped back. No checks, no audit, no metrics.
  const url = new URL(upstreamUrl);
  const pool = new Pool(url.origin, { keepAliveTimeout: 4_000 });
  const HOP = new Set([
    'connection',
    'keep-alive',
    'transfer-encoding',
    'host',
    'content-length',
    'te',
    'upgrade',
  ]);
  const without = (headers) => {
    const out = {};
    for (const name in headers) if (!HOP.has(name)) out[name] = headers[name];
    return out;
  };
  ready(
    createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', async () => {
        try {
          const answer = await pool.request({
            path: url.pathname,
            method: req.method,
            headers: without(req.headers),
            body: Buffer.concat(chunks),
          });
          res.writeHead(answer.statusCode, without(answer.headers));
          answer.body.pipe(res);
        } catch {
          res.writeHead(502).end();
        }
      });
    }),
  );
} else if (kind === 'http-proxy') {
  const proxy = httpProxy.createProxyServer({
    target: upstreamUrl,
    ignorePath: true,
    agent: new HttpAgent({ keepAlive: true, maxSockets: 256 }),
  });
  proxy.on('error', (_err, _req, res) => res.writeHead?.(502).end());
  ready(createServer((req, res) => proxy.web(req, res)));
} else if (kind === 'gateway') {
  const { parseConfig } = await import('../dist/config/load.js');
  const { startGateway } = await import('../dist/server/gateway.js');
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-'));
  const config = parseConfig(
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: ${JSON.stringify(join(dir, 'audit.jsonl'))} }
log: { level: warn }
identities: { anonymous: { scopes: [notes:read] } }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstreamUrl}
    authentication: { methods: [anonymous] }
    tools: { list_notes: notes:read }
`,
    { env: {} },
  );
  const gateway = await startGateway({ config, logger: pino({ level: 'warn' }) });
  process.send({ port: Number(new URL(gateway.url).port), path: '/mcp' });
} else {
  process.stderr.write(`unknown participant ${kind}\n`);
  process.exit(2);
}
process.on('SIGTERM', () => process.exit(0));
