/**
 * A legacy GET stream can replay (Last-Event-ID) the answer to an earlier tools/list: the gateway
 * no longer knows that request's id, so it recognises list results by their shape and filters them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

const reader = newApiKey('pk_');

describe('list results replayed on a GET stream', () => {
  let upstream: Server;
  let gateway: TestGateway;

  beforeAll(async () => {
    upstream = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const replay = {
        jsonrpc: '2.0',
        id: 7,
        result: { tools: [{ name: 'echo' }, { name: 'drop_database' }], nextCursor: 'c2' },
      };
      res.write(
        `id: e1\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info' } })}\n\n`,
      );
      res.end(`id: e2\ndata: ${JSON.stringify(replay)}\n\n`);
      req.resume();
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    gateway = await startTestGateway({
      policy: `identities:
  apiKeys: [{ id: reader, hash: "${reader.hash}", scopes: [notes:read] }]
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp
    authentication: { methods: [apiKey] }
    tools: { echo: notes:read, drop_database: db:admin }
`,
    });
  });
  afterAll(async () => {
    await gateway?.close();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  });

  it('filters the replayed list event and leaves the others untouched', async () => {
    const answer = await fetch(`${gateway.url}/mcp`, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${reader.key}`, 'last-event-id': 'e0' },
    });
    const text = await answer.text();
    expect(text).toContain('notifications/message');
    expect(text).toContain('"name":"echo"');
    expect(text).not.toContain('drop_database');
    expect(text).toContain('"nextCursor":"c2"');
    expect(text).toContain('id: e2');
  });
});
