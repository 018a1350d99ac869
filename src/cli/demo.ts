import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadConfigFile } from '../config/load.js';
import { startNotesServer } from '../demo/notes-server.js';
import { startGateway } from '../server/gateway.js';
import { runUntilSignal } from './signals.js';

const DEMO_CONFIG = fileURLToPath(new URL('../../config/demo.yaml', import.meta.url));

/**
 * `portcullis demo` (what `npm start` runs): the demo notes MCP server on a free loopback port,
 * the gateway in front of it with `config/demo.yaml`, and what to run next.
 */
export async function runDemo(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { port: { type: 'string' }, 'admin-port': { type: 'string' } },
    strict: true,
  });
  const upstream = await startNotesServer({ host: '127.0.0.1', port: 0 });
  const port = values.port ?? process.env.PORTCULLIS_DEMO_PORT;
  const adminPort = values['admin-port'] ?? process.env.PORTCULLIS_DEMO_ADMIN_PORT;
  const { config: base } = loadConfigFile(DEMO_CONFIG, {
    ...process.env,
    PORTCULLIS_DEMO_UPSTREAM: upstream.url,
  });
  const config = {
    ...base,
    listen: port === undefined ? base.listen : { ...base.listen, port: Number(port) },
    admin: adminPort === undefined ? base.admin : { ...base.admin, port: Number(adminPort) },
  };
  let gateway: Awaited<ReturnType<typeof startGateway>>;
  try {
    gateway = await startGateway({ config });
  } catch (err) {
    await upstream.close();
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      process.stderr.write(
        'portcullis demo: port in use; try `npm start -- --port 18080 --admin-port 19090`\n',
      );
      return 1;
    }
    throw err;
  }
  const endpoint = `${gateway.url}${config.routes[0]?.route ?? '/'}`;
  process.stdout.write(instructions(endpoint, gateway.adminUrl, upstream.url));
  await runUntilSignal(async () => {
    await gateway.close();
    await upstream.close();
  });
  return 0;
}

function instructions(endpoint: string, adminUrl: string, upstreamUrl: string): string {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: 'tools/call',
    params: {
      name: 'list_notes',
      arguments: {},
      _meta: {
        'io.modelcontextprotocol/protocolVersion': '2026-07-28',
        'io.modelcontextprotocol/clientInfo': { name: 'curl', version: '1.0.0' },
        'io.modelcontextprotocol/clientCapabilities': {},
      },
    },
  });
  const client = JSON.stringify({ mcpServers: { notes: { type: 'http', url: endpoint } } }, null, 2);
  return `
Portcullis demo is running.
  gateway   ${endpoint}   (policy: config/demo.yaml)
  upstream  ${upstreamUrl}   (demo notes MCP server; reach it only through the gateway)
  admin     ${adminUrl}/metrics  ${adminUrl}/readyz

Call a tool through the gateway:

curl -s ${endpoint} \\
  -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
  -H 'MCP-Protocol-Version: 2026-07-28' -H 'Mcp-Method: tools/call' -H 'Mcp-Name: list_notes' \\
  -d '${body}'

MCP client configuration (e.g. for an IDE):
${client}

Audit records follow on this terminal, one JSON line per call. Ctrl-C stops (graceful drain).

`;
}
