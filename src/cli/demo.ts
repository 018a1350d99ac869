import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { newApiKey } from '../auth/api-key.js';
import { loadConfigFile } from '../config/load.js';
import { startNotesServer } from '../demo/notes-server.js';
import { TOOLS_CALL } from '../jsonrpc/methods.js';
import { MODERN_VERSION } from '../jsonrpc/protocol-version.js';
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
  const port = values.port ?? process.env.PORTCULLIS_DEMO_PORT ?? '8080';
  const adminPort = values['admin-port'] ?? process.env.PORTCULLIS_DEMO_ADMIN_PORT ?? '9090';
  // A key of the demo's own unless one is given: printed once, only its hash is configured.
  const key = process.env.PORTCULLIS_DEMO_KEY ?? newApiKey('pk_demo_').key;
  const { config } = loadConfigFile(DEMO_CONFIG, {
    ...process.env,
    PORTCULLIS_DEMO_PORT: port,
    PORTCULLIS_DEMO_ADMIN_PORT: adminPort,
    PORTCULLIS_DEMO_UPSTREAM: upstream.url,
    PORTCULLIS_DEMO_KEY_HASH: `sha256:${createHash('sha256').update(key).digest('hex')}`,
  });
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
  process.stdout.write(instructions(endpoint, gateway.adminUrl, upstream.url, key));
  await runUntilSignal(async () => {
    await gateway.close();
    await upstream.close();
  });
  return 0;
}

function instructions(endpoint: string, adminUrl: string, upstreamUrl: string, key: string): string {
  const body = JSON.stringify({
    jsonrpc: '2.0',
    id: 1,
    method: TOOLS_CALL,
    params: {
      name: 'list_notes',
      arguments: {},
      _meta: {
        'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
        'io.modelcontextprotocol/clientInfo': { name: 'curl', version: '1.0.0' },
        'io.modelcontextprotocol/clientCapabilities': {},
      },
    },
  });
  const client = JSON.stringify(
    { mcpServers: { notes: { type: 'http', url: endpoint, headers: { Authorization: `Bearer ${key}` } } } },
    null,
    2,
  );
  return `
Portcullis demo is running.
  gateway   ${endpoint}   (policy: config/demo.yaml)
  upstream  ${upstreamUrl}   (demo notes MCP server; reach it only through the gateway)
  admin     ${adminUrl}/metrics  ${adminUrl}/readyz
  API key   ${key}   (id "demo"; set PORTCULLIS_DEMO_KEY to choose your own)

Call a tool through the gateway:

curl -s ${endpoint} \\
  -H 'Authorization: Bearer ${key}' \\
  -H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream' \\
  -H 'MCP-Protocol-Version: ${MODERN_VERSION}' -H 'Mcp-Method: ${TOOLS_CALL}' -H 'Mcp-Name: list_notes' \\
  -d '${body}'

MCP client configuration (e.g. for an IDE):
${client}

The demo key holds notes:read and notes:write; delete_note also needs notes:admin, so calling it
is refused (403, with the scopes it needs) and the tool list does not show it.

Audit records follow on this terminal, one JSON line per call. Ctrl-C stops (graceful drain).

`;
}
