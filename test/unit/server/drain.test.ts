/**
 * server/drain.ts on a real HTTP server: draining starts at once and shows in `isDraining`; new
 * connections are refused; an idle keep-alive connection is closed without waiting out its
 * keep-alive timeout; an answer in progress finishes; what is still open at the deadline is cut,
 * with a warning; a second call is the same drain.
 */
import { Agent, createServer, request, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createDrain } from '../../../src/server/drain.js';

/** A server whose `/slow` answers after `slowMs`, whose `/stream` never ends, and `/` at once. */
async function startServer(slowMs = 300): Promise<{ server: Server; url: string; open: ServerResponse[] }> {
  const open: ServerResponse[] = [];
  const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('slow done'), slowMs);
    else if (req.url === '/stream') {
      open.push(res);
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
    } else res.end('ok');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, open };
}

const servers: Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    server.close();
  }
});

function get(url: string, agent?: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: agent ?? false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.once('error', reject);
    req.end();
  });
}

function logged(): { logger: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  return { logger: pino({ level: 'info' }, { write: (line: string) => lines.push(line) }), lines };
}

describe('createDrain', () => {
  it('is draining from the moment the drain starts, and a second call is the same drain', async () => {
    const { server } = await startServer();
    servers.push(server);
    const drain = createDrain({ timeoutMs: 1_000, logger: pino({ level: 'silent' }) });
    expect(drain.isDraining()).toBe(false);
    const first = drain.drain(server);
    expect(drain.isDraining()).toBe(true);
    expect(drain.drain(server)).toBe(first);
    await first;
    expect(server.listening).toBe(false);
  });

  it('lets an answer in progress finish, closes an idle keep-alive connection, and ends well before the deadline', async () => {
    const { server, url } = await startServer(300);
    servers.push(server);
    const agent = new Agent({ keepAlive: true, maxSockets: 2 });
    try {
      // One keep-alive connection left idle, one carrying a slow answer.
      expect((await get(`${url}/`, agent)).status).toBe(200);
      const idle = Object.values(agent.freeSockets).flat()[0];
      expect(idle).toBeDefined();
      const idleClosed = new Promise<void>((resolve) => idle?.once('close', () => resolve()));
      const slow = get(`${url}/slow`, agent);
      await new Promise((resolve) => setTimeout(resolve, 50));

      const { logger, lines } = logged();
      const startedAt = performance.now();
      const drained = createDrain({ timeoutMs: 5_000, logger }).drain(server);
      await idleClosed;
      expect(await slow).toMatchObject({ status: 200, body: 'slow done' });
      await drained;
      expect(performance.now() - startedAt).toBeLessThan(2_000);
      expect(lines.join('')).not.toContain('drain timeout');
      await expect(get(`${url}/`)).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      agent.destroy();
    }
  });

  it('cuts what is still open at the deadline, and says so', async () => {
    const { server, url, open } = await startServer();
    servers.push(server);
    const stream = new Promise<string>((resolve) => {
      const req = request(`${url}/stream`, { agent: false }, (res) => {
        res.resume();
        res.once('close', () => resolve('cut'));
      });
      req.end();
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(open).toHaveLength(1);
    const { logger, lines } = logged();
    const startedAt = performance.now();
    await createDrain({ timeoutMs: 300, logger }).drain(server);
    const took = performance.now() - startedAt;
    expect(await stream).toBe('cut');
    expect(took).toBeGreaterThanOrEqual(290);
    expect(took).toBeLessThan(2_000);
    expect(JSON.parse(lines.find((line) => line.includes('drain timeout')) ?? '{}')).toMatchObject({
      level: 40,
      drainTimeoutMs: 300,
    });
  });
});
