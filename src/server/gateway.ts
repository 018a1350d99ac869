import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server, type ServerOptions } from 'node:http';
import {
  createServer as createHttpsServer,
  type ServerOptions as HttpsOptions,
  type Server as HttpsServer,
} from 'node:https';
import type { AddressInfo } from 'node:net';
import { basename } from 'node:path';
import pino, { type Logger, type LoggerOptions } from 'pino';
import { createArgumentsView } from '../audit/arguments.js';
import { createAuditRecorder } from '../audit/records.js';
import { chainHeadText, createAuditStream } from '../audit/stream.js';
import type { JwksObserver } from '../auth/jwt.js';
import { ConfigError, formatProblem, parseConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { hash, watchConfigFile } from '../config/watch.js';
import { createFinish } from '../exchange.js';
import { recordCertificateExpiry } from '../metrics/certificates.js';
import { createMetrics, type Metrics } from '../metrics/registry.js';
import { createSessionSealer } from '../proxy/sessions.js';
import { createAnswerLifetimes } from '../proxy/stream-lifetime.js';
import { createConcurrency } from '../ratelimit/concurrency.js';
import { parseRate } from '../ratelimit/limiter.js';
import { createMemoryLimiter } from '../ratelimit/memory.js';
import { createRedisLimiter } from '../ratelimit/redis.js';
import { VERSION } from '../version.js';
import { createAdminHandler } from './admin.js';
import { createClientAddress } from './client-address.js';
import { createPipeline, type GatewayState } from './pipeline.js';
import { createRouter, type Router } from './router.js';
import { readTlsMaterial, type TlsMaterial, watchTlsFiles } from './tls-files.js';

export interface Gateway {
  /** Base URL of the main listener, e.g. `http://127.0.0.1:8443`. */
  readonly url: string;
  /** Base URL of the admin listener. */
  readonly adminUrl: string;
  readonly metrics: Metrics;
  /** Reopens the audit file (logrotate moved it; SIGUSR2); the chain continues. */
  reopenAudit(): void;
  /** Re-reads the policy file: validated completely, then swapped atomically, or refused. */
  reload(): Promise<ReloadResult>;
  /**
   * Graceful stop: stop accepting, `/readyz` turns 503, in-flight requests and streams get
   * `limits.drainTimeoutMs`, then are closed; resolves when everything is closed.
   */
  close(): Promise<void>;
}

export interface GatewayOptions {
  readonly config: Config;
  readonly logger?: Logger;
  /** The policy file: watched and re-read on change and on `reload()` (SIGHUP). */
  readonly configPath?: string;
  /** The file's text as loaded, to tell a real change from a touch. */
  readonly configSource?: string;
}

export type ReloadResult = 'applied' | 'unchanged' | 'invalid' | 'refused';

/** The composition root: opens sockets, reads certificates, wires the pipeline. */
export async function startGateway({
  config,
  logger = createLogger(config),
  configPath,
  configSource,
}: GatewayOptions): Promise<Gateway> {
  const metrics = createMetrics(VERSION);
  const audit = createAuditStream({
    destination: config.audit.destination,
    chainKey: config.audit.chainKey,
    logger,
  });
  // The chain head goes to the operational log every minute: a truncated audit tail shows against it.
  const logChainHead = () => {
    const head = audit.head();
    if (head !== undefined) logger.info({ auditChain: chainHeadText(head) }, 'audit chain head');
  };
  const chainHeadTimer = setInterval(logChainHead, 60_000);
  chainHeadTimer.unref();
  // Loaded only when configured: a gateway without tracing carries no OpenTelemetry code.
  const tracing = config.tracing
    ? (await import('../tracing/tracer.js')).createTracing(config.tracing, VERSION)
    : undefined;
  const finish = createFinish({
    audit: createAuditRecorder({
      audit,
      argumentsView: createArgumentsView(config.audit.arguments, {
        redactKeys: config.audit.redactKeys,
        key: config.audit.chainKey,
      }),
      logger,
      onViewError: () => metrics.internalErrors.inc({ where: 'outcome' }),
    }),
    metrics,
    logger,
    logRequests: config.log.requests,
  });
  const setPolicyInfo = (text: string) => {
    metrics.policyInfo.reset();
    metrics.policyInfo.set({ hash: hash(text).slice(0, 16) }, 1);
  };
  setPolicyInfo(configSource ?? JSON.stringify(config));
  // A JWKS fetch that failed: logged at warn (the issuer and how, never a token) and counted.
  const jwks: JwksObserver = {
    onJwksError(issuer, kind, detail) {
      metrics.idpErrors.inc({ issuer, kind });
      logger.warn({ issuer, kind, ...detail }, 'JWKS fetch failed: tokens of this issuer cannot be verified');
    },
  };
  let router: Router = createRouter(config, jwks);
  let active = config;
  const state: GatewayState = { draining: false };
  // Every admitted exchange is held to its caller's credential: closed at expiry, and at a reload
  // that revokes it (one mechanism for SSE GET, SSE POST and chunked JSON answers).
  const lifetimes = createAnswerLifetimes({
    current: (answer) => router.match(answer.route) === answer.policy,
    reauthenticate: async (answer) => {
      const route = router.match(answer.route);
      if (route === undefined) return undefined;
      const outcome = await route.authenticate(answer.req);
      if (!('refusal' in outcome)) return outcome;
      // The issuer's JWKS is down: the token could not be judged, not found bad. The answer keeps
      // its identity (and its expiry timer); a revocation shows at the next reload or at `exp`.
      return outcome.refusal.reason === 'idp_unavailable' ? answer.identity : undefined;
    },
    onClose: (answer, why) => {
      logger.info({ route: answer.route, why }, 'closing an answer whose caller no longer authenticates');
    },
    onError: (err, answer) => {
      logger.error({ err, route: answer.route }, 're-authenticating an open answer failed');
    },
  });
  // One replica counts alone; with Redis every replica shares the counters (and falls back to
  // counting in process, per route `failMode`, while Redis is down).
  let fullLoggedAt = Number.NEGATIVE_INFINITY;
  const memory = createMemoryLimiter({
    // Full of live limits: new keys follow `failMode` rather than old ones being forgotten.
    onFull: () => {
      if (Date.now() - fullLoggedAt < 60_000) return;
      fullLoggedAt = Date.now();
      logger.warn('in-process limiter full of live keys: new keys follow the route failMode');
    },
  });
  const redis = config.redis
    ? createRedisLimiter(config.redis, {
        fallback: memory,
        logger,
        onError: (kind) => metrics.redisErrors.inc({ kind }),
      })
    : undefined;
  const limiter = redis ?? memory;
  // Readiness depends on Redis only where a route would refuse without it.
  const needsRedis =
    redis !== undefined && config.routes.some((r) => r.rateLimits !== undefined && r.failMode === 'closed');
  const proto = config.tls ? 'https' : 'http';
  const handler = createPipeline({
    // Read per request: a reload swaps it; a request keeps the router it started with.
    router: () => router,
    clientAddress: createClientAddress(config.trustedProxies),
    limiter,
    authFailureRate: parseRate(config.authFailures.limit),
    maxBodyBytes: config.limits.maxBodyBytes,
    maxJsonDepth: config.limits.maxJsonDepth,
    maxResponseBytes: config.limits.maxResponseBytes,
    sessions: createSessionSealer(config.sessions.keys),
    sessionMaxAgeSec: config.sessions.maxAgeSec,
    concurrency: createConcurrency(config.limits),
    proto,
    metrics,
    finish,
    logger,
    state,
    lifetimes,
    tracing,
  });

  const { limits } = config;
  const serverOptions: ServerOptions = {
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    noDelay: true,
  };
  const main: Server = config.tls
    ? createHttpsServer({ ...serverOptions, ...tlsOptions(config.tls) }, handler)
    : createHttpServer(serverOptions, handler);
  if (config.tls) recordCertificateExpiry(metrics, readTlsMaterial(config.tls));
  const stopWatchingTls = config.tls
    ? watchTlsFiles(
        config.tls,
        (material) => {
          (main as HttpsServer).setSecureContext({ ...tlsOptions(config.tls!, material) });
          recordCertificateExpiry(metrics, material);
        },
        logger,
      )
    : () => undefined;
  main.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // Malformed HTTP: a fixed answer, never the parser's message; the process keeps serving.
    logger.debug({ code: err.code }, 'client connection error');
    if (socket.writable && !socket.destroyed) {
      const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    } else socket.destroy();
  });

  const admin = createHttpServer(
    createAdminHandler({
      metrics,
      ready: () => !state.draining && (!needsRedis || redis?.healthy() === true),
    }),
  );
  await listen(main, config.listen.port, config.listen.host);
  await listen(admin, config.admin.port, config.admin.host);
  const url = baseUrl(main, proto);
  const adminUrl = baseUrl(admin, 'http');
  logger.info({ url, adminUrl, routes: router.routes.map((r) => r.path) }, 'portcullis listening');

  /**
   * Hot reload (DESIGN.md, the policy file): the new file is validated completely before it can
   * replace the running one; only `routes` and `identities` change live — any other change is
   * refused, naming the field. Requests in flight finish under the router they started with;
   * open answers (SSE streams, chunked JSON, calls in flight) whose caller no longer
   * authenticates under the new policy are closed.
   */
  let source = configSource;
  const reloadFrom = async (text: string): Promise<ReloadResult> => {
    if (source !== undefined && hash(text) === hash(source)) return 'unchanged';
    let next: Config;
    try {
      next = parseConfig(text, { file: basename(configPath ?? 'portcullis.yaml') });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      logger.error(
        { problems: err.problems.map(formatProblem) },
        'policy reload failed: the file is invalid; keeping the running policy',
      );
      metrics.reloads.inc({ result: 'invalid' });
      return 'invalid';
    }
    const fixed = Object.keys(next).filter(
      (field) =>
        !LIVE_FIELDS.has(field) &&
        JSON.stringify(next[field as keyof Config]) !== JSON.stringify(active[field as keyof Config]),
    );
    if (fixed.length > 0) {
      logger.error(
        { fields: fixed },
        `policy reload refused: ${fixed.join(', ')} cannot change while running (restart to apply)`,
      );
      metrics.reloads.inc({ result: 'refused' });
      return 'refused';
    }
    const previous = router;
    router = createRouter(next, jwks);
    active = next;
    source = text;
    metrics.reloads.inc({ result: 'applied' });
    setPolicyInfo(text);
    logger.info({ routes: router.routes.map((r) => r.path) }, 'policy reloaded');
    await lifetimes.revalidate();
    // The old pools finish what they carry, then close.
    previous
      .close()
      .catch((err: unknown) => logger.warn({ err }, 'closing the previous upstream pools failed'));
    return 'applied';
  };

  const reload = async (): Promise<ReloadResult> => {
    if (configPath === undefined) return 'unchanged';
    return reloadFrom(readFileSync(configPath, 'utf8'));
  };
  const stopWatchingConfig =
    configPath === undefined
      ? () => undefined
      : watchConfigFile(configPath, configSource ?? readFileSync(configPath, 'utf8'), (text) => {
          reloadFrom(text).catch((err: unknown) => logger.error({ err }, 'policy reload failed'));
        });

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= drain();
    return closing;
  };

  async function drain(): Promise<void> {
    state.draining = true;
    stopWatchingTls();
    stopWatchingConfig();
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
    lifetimes.close();
    await router.close();
    await redis?.close();
    clearInterval(chainHeadTimer);
    await audit.close();
    logChainHead();
    await tracing
      ?.shutdown()
      .catch((err: unknown) => logger.warn({ err }, 'exporting the last spans failed'));
    admin.closeAllConnections();
    await new Promise<void>((resolve) => admin.close(() => resolve()));
    logger.info('portcullis stopped');
  }

  return { url, adminUrl, metrics, reopenAudit: () => audit.reopen(), reload, close };
}

/** What may change while running; listeners, TLS paths, limits, Redis, audit and the rest need a restart. */
const LIVE_FIELDS: ReadonlySet<string> = new Set(['routes', 'identities']);

export function createLogger(config: Config): Logger {
  // The operational log goes to stderr so that stdout can carry the audit stream alone.
  return pino(loggerOptions(config), pino.destination({ dest: 2, sync: false }));
}

/** The operational log's level, base fields and redaction (tests log through the same). */
export function loggerOptions(config: Config): LoggerOptions {
  return {
    level: config.log.level,
    base: { service: 'portcullis' },
    // Belt and braces: no log call passes a credential or a secret config value, and should one
    // ever do, these paths are masked.
    redact: {
      paths: [
        'req.headers.authorization',
        'req.headers["x-api-key"]',
        'req.headers.cookie',
        'req.headers["proxy-authorization"]',
        'headers.authorization',
        'headers["x-api-key"]',
        'headers.cookie',
        'headers["proxy-authorization"]',
        'upstreamHeaders',
        '*.upstreamHeaders',
        'chainKey',
        '*.chainKey',
        'sessions.keys',
        'redis.url',
      ],
      censor: '[redacted]',
    },
  };
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

/**
 * The main listener's TLS: 1.2 minimum. With a client CA, certificates are requested; `required`
 * refuses the handshake without a valid one, `optional` lets token clients share the port and
 * leaves an unverified certificate for authentication to refuse (401).
 */
function tlsOptions(
  tls: NonNullable<Config['tls']>,
  material: TlsMaterial = readTlsMaterial(tls),
): HttpsOptions {
  return {
    cert: material.cert,
    key: material.key,
    minVersion: 'TLSv1.2',
    ...(material.ca === undefined
      ? {}
      : {
          ca: material.ca,
          requestCert: true,
          rejectUnauthorized: (tls.clientCertificate ?? 'required') === 'required',
        }),
  };
}
