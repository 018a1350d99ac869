// The stdio server of the stdio benchmark rows: as little work per call as a server can do, so the
// figures measure the bridges. Hand-written newline-delimited JSON-RPC, both generations: it
// answers `server/discover` (2026-07-28) and `initialize` (legacy), `tools/list` and `tools/call`
// (a fixed result).
import { createInterface } from 'node:readline';

const TOOL = { name: 'list_notes', description: 'Lists notes', inputSchema: { type: 'object' } };
const CONTENT = [{ type: 'text', text: 'welcome: Welcome\ngroceries: Groceries' }];
const INFO = { name: 'bench-stdio', version: '1.0.0' };
const send = (id, result) => process.stdout.write(`${JSON.stringify({ jsonrpc: '2.0', id, result })}\n`);

createInterface({ input: process.stdin }).on('line', (line) => {
  const message = JSON.parse(line);
  if (message.id === undefined) return;
  const modern = message.params?._meta?.['io.modelcontextprotocol/protocolVersion'] === '2026-07-28';
  const complete = modern ? { resultType: 'complete' } : {};
  switch (message.method) {
    case 'server/discover':
      return send(message.id, {
        resultType: 'complete',
        supportedVersions: ['2026-07-28'],
        capabilities: { tools: {} },
        ttlMs: 0,
        cacheScope: 'public',
        _meta: { 'io.modelcontextprotocol/serverInfo': INFO },
      });
    case 'initialize':
      return send(message.id, {
        protocolVersion: message.params.protocolVersion,
        capabilities: { tools: {} },
        serverInfo: INFO,
      });
    case 'tools/list':
      return send(message.id, {
        ...complete,
        tools: [TOOL],
        ...(modern ? { ttlMs: 0, cacheScope: 'public' } : {}),
      });
    case 'tools/call':
      return send(message.id, { ...complete, content: CONTENT, isError: false });
    default:
      process.stdout.write(
        `${JSON.stringify({ jsonrpc: '2.0', id: message.id, error: { code: -32601, message: 'Method not found' } })}\n`,
      );
  }
});
