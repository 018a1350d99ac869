// One benchmark participant per process, so that each one's CPU time can be measured alone:
//   node bench/servers.mjs upstream [<delay-ms> [<tools>]]  (answers after delay-ms when given; lists
//                                                          10 tools, or <tools>)
//   node bench/servers.mjs otlp-sink                      (accepts OTLP/HTTP exports, drops them)
//   node bench/servers.mjs bare <upstream-url>      (undici pass-through: read body, forward, pipe back)
//   node bench/servers.mjs http-proxy <upstream-url>
//   node bench/servers.mjs gateway <upstream-url>          (anonymous route)
//   node bench/servers.mjs route <upstream-url>...         (anonymous route, every tool granted: one
//                                                          upstream, or a federated route of servers a, b, …)
//   node bench/servers.mjs policy <policy.yaml>           (the gateway from a policy file)
//   node bench/servers.mjs bare-tls <upstream-url> <dir>  (bare, behind TLS with client certificates)
//   node bench/servers.mjs supergateway                   (supergateway bridging bench/stdio-server.mjs)
//   node bench/servers.mjs mcp-proxy                      (mcp-proxy bridging bench/stdio-server.mjs)
//   node bench/servers.mjs session-upstream               (legacy sessions and idle GET streams that
//                                                          send an event when told over IPC)
// Each reports { port } over IPC when listening and answers 'cpu' with the CPU time of its process
// and every process under it (a stdio server, a bridge and its server), read from /proc, and
// 'memory' with its process.memoryUsage() (after two full collections when started with
// --expose-gc); an upstream also answers 'counts' with the requests it received, by method and name
// (and the last Authorization header it was sent).
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, Agent as HttpAgent } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import httpProxy from 'http-proxy';
import pino from 'pino';
import { Pool } from 'undici';

const [kind, upstreamUrl] = process.argv.slice(2);
/** The stdio server behind the stdio rows: the gateway's stdio route and both bridges spawn it. */
const STDIO_SERVER = new URL('./stdio-server.mjs', import.meta.url).pathname;
/** A package's file, resolved like an import (the bridges are dev dependencies). */
const bin = (name, file) =>
  join(dirname(createRequire(import.meta.url).resolve(`${name}/package.json`)), file);

const RESULT = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  result: { content: [{ type: 'text', text: 'welcome: Welcome\ngroceries: Groceries' }], isError: false },
});

/**
 * The bench upstream's tools: `list_notes`, which every row calls, and `count - 1` more for lists to
 * carry (note_tool_1, note_tool_2, …): 10 by default, 1 000 for the list-filtering row.
 */
const toolsOf = (count) =>
  ['list_notes', ...Array.from({ length: count - 1 }, (_, i) => `note_tool_${i + 1}`)].map((name) => ({
    name,
    description: `The bench's ${name}.`,
    inputSchema: { type: 'object', properties: { query: { type: 'string' } } },
  }));

/** What the bench upstream answers, by method, besides tools/call. */
const ANSWERS = {
  'server/discover': {
    resultType: 'complete',
    supportedVersions: ['2026-07-28'],
    capabilities: { tools: {} },
    _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'bench-upstream', version: '1.0.0' } },
  },
  'tools/list': {
    resultType: 'complete',
    tools: toolsOf(kind === 'upstream' ? Number(process.argv[4] ?? 10) : 10),
  },
};

function ready(server) {
  server.listen(0, '127.0.0.1', () => process.send({ port: server.address().port }));
}

process.on('message', (message) => {
  if (message === 'cpu') process.send({ cpu: treeCpu() });
  else if (message === 'memory') {
    // Garbage no longer reachable is not a cost of what is held: collected first, twice (a first
    // full collection can leave objects that only a finalizer freed for the second).
    globalThis.gc?.();
    globalThis.gc?.();
    process.send({ memory: process.memoryUsage() });
  }
});

/** Clock ticks per second of /proc's utime and stime (USER_HZ: 100 on Linux). */
const TICK_US = 10_000;

/**
 * This process's CPU (process.cpuUsage, in µs) plus that of every descendant alive now — a stdio
 * server, or a bridge and its server — from /proc/<pid>/stat (utime + stime, in ticks).
 */
function treeCpu() {
  const own = process.cpuUsage();
  const children = new Map();
  const stats = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // Fields after the command name, which is in parentheses and may hold spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(fields[1]);
    stats.set(Number(name), Number(fields[11]) + Number(fields[12]));
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(Number(name));
  }
  let ticks = 0;
  const queue = [...(children.get(process.pid) ?? [])];
  while (queue.length > 0) {
    const pid = queue.pop();
    ticks += stats.get(pid) ?? 0;
    queue.push(...(children.get(pid) ?? []));
  }
  return { user: own.user + ticks * TICK_US, system: own.system };
}

/** Spawns a bridge in front of bench/stdio-server.mjs and reports its port once it answers. */
async function bridge(args, port) {
  // Its own process group: stopping the participant stops the bridge and the server it spawned.
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'], detached: true });
  process.on('exit', () => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // gone already
    }
  });
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/mcp`, { method: 'GET' });
      process.send({ port, path: '/mcp' });
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw new Error(`${args[0]} did not listen on ${port}`);
}

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

if (kind === 'otlp-sink') {
  // Stands in for an OpenTelemetry collector: accepts OTLP/HTTP exports and drops them.
  ready(
    createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
    }),
  );
} else if (kind === 'upstream') {
  // A minimal MCP-shaped upstream (2026-07-28: every request names its method in `Mcp-Method`).
  // tools/call — the load of every row — is read and answered with one fixed JSON-RPC result
  // (id 1, the bench's id) without parsing, as cheaply as before; the methods a federated route
  // also sends (`server/discover` once per server, `tools/list` in the fan-out rows) are parsed
  // and answered with their own id. An optional delay before every answer stands for a server's
  // own work, so that a fan-out's latency means something.
  const delayMs = Number(process.argv[3] ?? 0);
  /** Requests received, by `Mcp-Method` (and `Mcp-Name` for calls): proof of what reached this server. */
  const counts = {};
  /** The last `Authorization` header received: what a route with `upstreamIdentity` sent (the identity row's probe). */
  let authorization;
  process.on('message', (message) => {
    if (message === 'counts') process.send({ counts, authorization });
  });
  // BENCH_UPSTREAM_SSE=1: calls are answered as one SSE event, as a server that streams its answers
  // does (the gateway then reads the stream event by event, for resources/updated).
  const sse = process.env.BENCH_UPSTREAM_SSE === '1';
  const send = (res, text, call = false) => {
    const write = () => {
      if (call && sse) {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.end(`event: message\ndata: ${text}\n\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    if (delayMs > 0) setTimeout(write, delayMs);
    else write();
  };
  ready(
    createServer((req, res) => {
      const method = req.headers['mcp-method'] ?? 'tools/call';
      const key = method === 'tools/call' ? `tools/call ${req.headers['mcp-name']}` : method;
      counts[key] = (counts[key] ?? 0) + 1;
      if (req.headers.authorization !== undefined) authorization = req.headers.authorization;
      if (method === 'tools/call') {
        req.resume();
        req.on('end', () => send(res, RESULT, true));
        return;
      }
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const { id } = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (id === undefined) return void res.writeHead(202).end();
        const result = ANSWERS[method];
        send(
          res,
          JSON.stringify(
            result === undefined
              ? { jsonrpc: '2.0', id, error: { code: -32601, message: 'Method not found' } }
              : { jsonrpc: '2.0', id, result },
          ),
        );
      });
    }),
  );
} else if (kind === 'session-upstream') {
  // A legacy (2025-11-25) upstream with sessions, for the streams row, in raw node:http (it must
  // hold 10 000 streams cheaply; it is not what is measured): `initialize` opens session `s<n>`
  // (`Mcp-Session-Id`, and the same id as the result's `instructions`, so that the bench can tell
  // its streams apart behind the gateway's sealed ids) in the group its `clientInfo.name` names
  // (one per gateway the bench drives); a GET with that session opens an SSE stream that stays
  // silent until the bench sends `{ notify: { group, count, seq } }`: then `count` open streams
  // of the group, spread evenly over them, get one `notifications/message` each carrying its
  // session, `seq` and the moment it was written (`process.hrtime.bigint()`: CLOCK_MONOTONIC, one
  // clock for every process of the machine), and the bench gets `{ notified: { seq, sent } }`
  // with the sessions written to. 'streams' answers `{ streams }`: open streams by group.
  let sessions = 0;
  /** The group of every session opened. */
  const groupOf = new Map();
  /** Open GET streams by group, then by session id, in the order they opened. */
  const streams = new Map();
  process.on('message', (message) => {
    if (message === 'streams') {
      const open = Object.fromEntries([...streams].map(([group, held]) => [group, held.size]));
      return void process.send({ streams: open });
    }
    if (message?.notify === undefined) return;
    const { group, count, seq } = message.notify;
    const open = [...(streams.get(group) ?? [])];
    const step = Math.max(1, Math.floor(open.length / count));
    const sent = [];
    for (let i = 0; i < open.length && sent.length < count; i += step) {
      const [session, res] = open[i];
      const data = { session, seq, sentNs: process.hrtime.bigint().toString() };
      const note = { jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data } };
      res.write(`event: message\ndata: ${JSON.stringify(note)}\n\n`);
      sent.push(session);
    }
    process.send({ notified: { seq, sent } });
  });
  const json = (res, status, body, headers = {}) => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      ...headers,
    });
    res.end(text);
  };
  ready(
    createServer((req, res) => {
      const session = req.headers['mcp-session-id'];
      if (req.method === 'GET') {
        const group = groupOf.get(session);
        if (group === undefined) return void res.writeHead(404).end();
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.flushHeaders();
        if (!streams.has(group)) streams.set(group, new Map());
        const held = streams.get(group);
        held.set(session, res);
        res.once('close', () => {
          if (held.get(session) === res) held.delete(session);
        });
        return;
      }
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const message = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        if (message.id === undefined) return void res.writeHead(202).end();
        if (message.method === 'initialize') {
          const id = `s${++sessions}`;
          groupOf.set(id, String(message.params?.clientInfo?.name));
          return json(
            res,
            200,
            {
              jsonrpc: '2.0',
              id: message.id,
              result: {
                protocolVersion: '2025-11-25',
                capabilities: { logging: {} },
                serverInfo: { name: 'bench-session-upstream', version: '1.0.0' },
                instructions: id,
              },
            },
            { 'mcp-session-id': id },
          );
        }
        json(res, 200, {
          jsonrpc: '2.0',
          id: message.id,
          ...(message.method === 'ping'
            ? { result: {} }
            : { error: { code: -32601, message: 'Method not found' } }),
        });
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
} else if (kind === 'supergateway' || kind === 'mcp-proxy') {
  // The stdio bridges the gateway is compared with: they check nothing.
  const server = `${process.execPath} ${STDIO_SERVER}`;
  const port = await freePort();
  const args =
    kind === 'supergateway'
      ? // --stateful: one child for every request (without it, each 2026-07-28 request spawns one).
        [
          bin('supergateway', 'dist/index.js'),
          '--stdio',
          server,
          '--outputTransport',
          'streamableHttp',
          '--stateful',
          '--port',
          String(port),
          '--logLevel',
          'none',
        ]
      : [
          bin('mcp-proxy', 'dist/bin/mcp-proxy.mjs'),
          '--port',
          String(port),
          '--server',
          'stream',
          '--',
          process.execPath,
          STDIO_SERVER,
        ];
  await bridge(args, port);
} else if (kind === 'gateway-stdio') {
  // The full gateway in front of the same stdio server: API key, policy, chained audit to a file.
  const { parseConfig } = await import('../dist/config/load.js');
  const { startGateway } = await import('../dist/server/gateway.js');
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-stdio-'));
  const keyHash = upstreamUrl;
  const config = parseConfig(
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: ${JSON.stringify(join(dir, 'audit.jsonl'))}, chainKey: bench-chain-key-0123456789 }
log: { level: warn }
identities: { apiKeys: [{ id: bench, hash: "${keyHash}", scopes: [notes:read] }] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: { command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(STDIO_SERVER)}], processes: shared }
    authentication: { methods: [apiKey] }
    tools: { list_notes: notes:read }
`,
    { env: {} },
  );
  const gateway = await startGateway({ config, logger: pino({ level: 'warn' }) });
  process.send({ port: Number(new URL(gateway.url).port), path: '/mcp' });
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
} else if (kind === 'route') {
  // The gateway with one anonymous route to the upstreams given: one → a single-server route;
  // several → a federated route of servers a, b, c, … (tools exposed as `a__list_notes`, …).
  // Both grant every tool the same way, with one pattern per server, so that what differs
  // between them is the federation alone.
  const { parseConfig } = await import('../dist/config/load.js');
  const { startGateway } = await import('../dist/server/gateway.js');
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-route-'));
  const urls = process.argv.slice(3);
  const names = urls.map((_, i) => String.fromCharCode(0x61 + i));
  const upstream =
    urls.length === 1
      ? `    upstream: ${urls[0]}\n    tools: { "*": notes:read }`
      : [
          '    serverInfo: { name: bench-federation, version: "1" }',
          '    servers:',
          ...urls.map((url, i) => `      ${names[i]}: { upstream: ${JSON.stringify(url)} }`),
          `    tools: { ${names.map((name) => `"${name}__*": notes:read`).join(', ')} }`,
        ].join('\n');
  const config = parseConfig(
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: ${JSON.stringify(join(dir, 'audit.jsonl'))} }
log: { level: warn }
identities: { anonymous: { scopes: [notes:read] } }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    authentication: { methods: [anonymous] }
${upstream}
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
