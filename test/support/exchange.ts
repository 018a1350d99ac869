/**
 * Exchanges on real sockets, for the stage and answer tests: a loopback HTTP server that makes one
 * `Exchange` per request (with a route compiled from a real policy) and hands it to the test's
 * handler; every finish is recorded, so a test can count them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import type { Identity } from '../../src/auth/identity.js';
import { parseConfig } from '../../src/config/load.js';
import { type Authenticated, Exchange, type FinishedExchange } from '../../src/exchange.js';
import { createMetrics, type Metrics } from '../../src/metrics/registry.js';
import { createContainment } from '../../src/server/contain.js';
import { type CompiledRoute, createRouter, type Router } from '../../src/server/router.js';

/** A policy with one anonymous route `/mcp` (tools `read_*` need `files:read`), plus `extra` route lines. */
export function testRouter(extra = '', top = ''): Router {
  return createRouter(
    parseConfig(
      `${top}
identities: { anonymous: { scopes: [] } }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: http://127.0.0.1:9/mcp
    authentication: { methods: [anonymous] }
    tools: { "read_*": files:read }
${extra}`,
      { env: {} },
    ),
  );
}

export const READER: Identity = {
  key: 'apiKey:reader',
  subject: 'reader',
  methods: ['apiKey'],
  scopes: new Set(['files:read']),
};

export interface ExchangeServer {
  readonly url: string;
  readonly metrics: Metrics;
  /** Every finish, in order (the same exchange twice would be a bug). */
  readonly finished: FinishedExchange[];
  /** Resolves with the next finished exchange. */
  nextFinish(): Promise<FinishedExchange>;
  close(): Promise<void>;
}

/**
 * Starts a server whose every request becomes an exchange on `route` as `identity` (an
 * authenticated POST unless the request says otherwise), handed to `handle`.
 */
export async function startExchangeServer(
  route: CompiledRoute,
  handle: (exchange: Authenticated) => void | Promise<void>,
  identity: Identity = READER,
): Promise<ExchangeServer> {
  const metrics = createMetrics('test');
  const finished: FinishedExchange[] = [];
  let waiting: ((exchange: FinishedExchange) => void)[] = [];
  const context = {
    metrics,
    contain: createContainment(pino({ level: 'silent' }), metrics),
    finish: (exchange: FinishedExchange) => {
      finished.push(exchange);
      const resolvers = waiting;
      waiting = [];
      for (const resolve of resolvers) resolve(exchange);
    },
  };
  const server: Server = createServer((req, res) => {
    const exchange = new Exchange(req, res, { address: '127.0.0.1', peer: '127.0.0.1' }, undefined, context);
    exchange.route = route;
    exchange.forwardMethod = req.method === 'GET' ? 'GET' : req.method === 'DELETE' ? 'DELETE' : 'POST';
    exchange.identity = identity;
    void handle(exchange as Authenticated);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
    metrics,
    finished,
    nextFinish: () => new Promise((resolve) => waiting.push(resolve)),
    close: async () => {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Waits `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs `stage` on the exchange of one real request (sent with `init`), then answers it 204 unless
 * the stage answered; resolves with what the stage returned and the exchange.
 */
export async function onExchange<T>(
  route: CompiledRoute,
  stage: (exchange: Authenticated) => T | Promise<T>,
  init: RequestInit = { method: 'POST', body: '{}' },
  identity: Identity = READER,
): Promise<{ readonly result: T; readonly exchange: Authenticated }> {
  let done: (value: { result: T; exchange: Authenticated }) => void = () => undefined;
  let failed: (err: unknown) => void = () => undefined;
  const outcome = new Promise<{ result: T; exchange: Authenticated }>((resolve, reject) => {
    done = resolve;
    failed = reject;
  });
  const server = await startExchangeServer(
    route,
    async (exchange) => {
      try {
        const result = await stage(exchange);
        if (!exchange.res.headersSent) exchange.res.writeHead(204).end();
        done({ result, exchange });
      } catch (err) {
        exchange.res.destroy();
        failed(err);
      }
    },
    identity,
  );
  try {
    await fetch(server.url, init)
      .then((answer) => answer.arrayBuffer())
      .catch(() => undefined);
    return await outcome;
  } finally {
    await server.close();
  }
}
