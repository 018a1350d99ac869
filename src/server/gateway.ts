import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import pino, { type Logger } from 'pino';
import { createAuditStream } from '../audit/stream.js';
import type { Config } from '../config/schema.js';
import { createMetrics, type Metrics } from '../metrics/registry.js';
import { VERSION } from '../version.js';
import { createAdminHandler } from './admin.js';
import { createPipeline, type GatewayState } from './pipeline.js';
import { createRouter, type Router } from './router.js';

export interface Gateway {
  /** Base URL of the main listener, e.g. `http://127.0.0.1:8443`. */
  readonly url: string;
  /** Base URL of the admin listener. */
  readonly adminUrl: string;
  readonly metrics: Metrics;
  /**
   * Graceful stop: stop accepting, `/readyz` turns 503, in-flight requests and streams get
   * `limits.drainTimeoutMs`, then are closed; resolves when everything is closed.
   */
  close(): Promise<void>;
}

export interface GatewayOptions {
  readonly config: Config;
  readonly logger?: Logger;
}

/** The composition root: opens sockets, reads certificates, wires the pipeline. */
export async function startGateway({
  config,
  logger = createLogger(config),
}: GatewayOptions): Promise<Gateway> {
  const metrics = createMetrics(VERSION);
  const audit = createAuditStream(config.audit.destination);
  const router: Router = createRouter(config);
  const state: GatewayState = { draining: false };
  const proto = config.tls ? 'https' : 'http';
  const handler = createPipeline({
    router: () => router,
    maxBodyBytes: config.limits.maxBodyBytes,
    proto,
    metrics,
    audit,
    logger,
    state,
  });

  const { limits } = config;
  const serverOptions: ServerOptions = {
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    noDelay: true,
  };
  const main: Server = config.tls
    ? createHttpsServer(
        {
          ...serverOptions,
          cert: readFileSync(config.tls.cert),
          key: readFileSync(config.tls.key),
          minVersion: 'TLSv1.2',
        },
        handler,
      )
    : createHttpServer(serverOptions, handler);
  main.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // Malformed HTTP: a fixed answer, never the parser's message; the process keeps serving.
    if (socket.writable && !socket.destroyed) {
      const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    } else socket.destroy();
  });

  const admin = createHttpServer(createAdminHandler({ metrics, ready: () => !state.draining }));
  await listen(main, config.listen.port, config.listen.host);
  await listen(admin, config.admin.port, config.admin.host);
  const url = baseUrl(main, proto);
  const adminUrl = baseUrl(admin, 'http');
  logger.info({ url, adminUrl, routes: router.routes.map((r) => r.path) }, 'portcullis listening');

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= drain();
    return closing;
  };

  async function drain(): Promise<void> {
    state.draining = true;
    // `close` stops accepting; its callback runs once every connection has ended. Idle keep-alive
    // connections are closed as they turn idle; whatever is still open at the deadline is cut.
    let stoppedAll = false;
    const stopped = new Promise<void>((resolve) =>
      main.close(() => {
        stoppedAll = true;
        resolve();
      }),
    );
    const deadline = Date.now() + limits.drainTimeoutMs;
    while (!stoppedAll && Date.now() < deadline) {
      main.closeIdleConnections();
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    if (!stoppedAll) {
      logger.warn({ drainTimeoutMs: limits.drainTimeoutMs }, 'drain timeout: closing open connections');
      main.closeAllConnections();
    }
    await stopped;
    await router.close();
    await audit.close();
    admin.closeAllConnections();
    await new Promise<void>((resolve) => admin.close(() => resolve()));
    logger.info('portcullis stopped');
  }

  return { url, adminUrl, metrics, close };
}

export function createLogger(config: Config): Logger {
  // The operational log goes to stderr so that stdout can carry the audit stream alone.
  return pino(
    {
      level: config.log.level,
      base: { service: 'portcullis' },
      redact: {
        paths: ['req.headers.authorization', 'req.headers["x-api-key"]', 'headers.authorization'],
        censor: '[redacted]',
      },
    },
    pino.destination({ dest: 2, sync: false }),
  );
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function baseUrl(server: Server, proto: string): string {
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address === '0.0.0.0' ? '127.0.0.1' : address;
  return `${proto}://${host}:${port}`;
}
