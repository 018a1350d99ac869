// One benchmark participant per process, so that each one's CPU time can be measured alone:
//   node bench/servers.mjs upstream
//   node bench/servers.mjs otlp-sink                      (accepts OTLP/HTTP exports, drops them)
//   node bench/servers.mjs bare <upstream-url>      (undici pass-through: read body, forward, pipe back)
//   node bench/servers.mjs http-proxy <upstream-url>
//   node bench/servers.mjs gateway <upstream-url>          (anonymous route)
//   node bench/servers.mjs policy <policy.yaml>           (the gateway from a policy file)
//   node bench/servers.mjs bare-tls <upstream-url> <dir>  (bare, behind TLS with client certificates)
// Each reports { port } over IPC when listening and answers 'cpu' with its process.cpuUsage().
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, Agent as HttpAgent } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
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

if (kind === 'otlp-sink') {
  // Stands in for an OpenTelemetry collector: accepts OTLP/HTTP exports and drops them.
  ready(
    createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    }),
  );
} else if (kind === 'upstream') {
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
} else if (kind === 'bare' || kind === 'bare-tls') {
  // The least a faithful proxy does: headers both ways minus hop-by-hop ones, the body read and
  // sent on, the answer piped back. No checks, no audit, no metrics. `bare-tls` terminates TLS
  // and requires a client certificate first: the baseline of the mTLS path.
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
  const handler = (req, res) => {
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
  };
  if (kind === 'bare') ready(createServer(handler));
  else {
    const dir = process.argv[4];
    const read = (name) => readFileSync(join(dir, name));
    const server = createHttpsServer(
      {
        cert: read('server.crt'),
        key: read('server.key'),
        ca: read('ca.crt'),
        requestCert: true,
        rejectUnauthorized: true,
        minVersion: 'TLSv1.2',
      },
      handler,
    );
    server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port, tls: true }));
  }
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
} else if (kind === 'policy') {
  const { loadConfigFile } = await import('../dist/config/load.js');
  const { startGateway } = await import('../dist/server/gateway.js');
  const { config } = loadConfigFile(upstreamUrl);
  const gateway = await startGateway({ config, logger: pino({ level: 'warn' }) });
  const url = new URL(gateway.url);
  process.send({ port: Number(url.port), path: config.routes[0].route, tls: url.protocol === 'https:' });
} else {
  process.stderr.write(`unknown participant ${kind}\n`);
  process.exit(2);
}
process.on('SIGTERM', () => process.exit(0));
