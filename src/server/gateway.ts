import type { Logger } from 'pino';
import { createApprovals } from '../approvals/approvals.js';
import { createArgumentsView } from '../audit/arguments.js';
import { createAuditRecorder } from '../audit/records.js';
import { createAuditStream, logChainHeads } from '../audit/stream.js';
import { delegationDepth } from '../auth/delegation.js';
import type { JwksObserver } from '../auth/jwt.js';
import { createFileWatch, createPolicyReload, type ReloadResult } from '../config/reload.js';
import type { Config } from '../config/schema.js';
import { createOpenQuestions } from '../confirm/questions.js';
import { createRedisUsedNonces, createUsedNonces } from '../confirm/used-nonces.js';
import { PinStore } from '../integrity/pin-store.js';
import { createLogger } from '../logger.js';
import { recordCertificateExpiry } from '../metrics/certificates.js';
import { createMetrics, type Metrics } from '../metrics/registry.js';
import { createSealer } from '../proxy/seal.js';
import { createSessionStreams } from '../proxy/session-streams.js';
import { createSessionSealer } from '../proxy/sessions.js';
import { type AnswerLifetimes, createAnswerLifetimes } from '../proxy/stream-lifetime.js';
import { createConcurrency } from '../ratelimit/concurrency.js';
import { type Limiter, parseRate } from '../ratelimit/limiter.js';
import { createMemoryLimiter } from '../ratelimit/memory.js';
import { createRedisLimiter, type RedisLimiter } from '../ratelimit/redis.js';
import { createAssertions } from '../upstream/identity/assertions.js';
import { identityKeyProblems } from '../upstream/identity/key-problems.js';
import { accountProblems } from '../upstream/stdio/environment.js';
import { createStdioRegistry } from '../upstream/stdio/registry.js';
import { VERSION } from '../version.js';
import { createAdminHandler } from './admin.js';
import { createClientAddress } from './client-address.js';
import { createDrain } from './drain.js';
import { createFinish } from './finish.js';
import { closeNow, createAdminListener, createMainListener, listen } from './listeners.js';
import { createPipeline } from './pipeline.js';
import { createRouter, type Router } from './router.js';

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

/**
 * The composition root: opens sockets, reads certificates, connects to Redis and wires the stages
 * to each other. Nothing here decides anything about a request.
 */
export async function startGateway({
  config,
  logger = createLogger(config.log.level),
  configPath,
  configSource,
}: GatewayOptions): Promise<Gateway> {
  const metrics = createMetrics(VERSION);
  const audit = createAuditStream({
    destination: config.audit.destination,
    chainKey: config.audit.chainKey,
    logger,
  });
  const chainHeads = logChainHeads(audit, logger);
  // Loaded only when configured: a gateway without tracing carries no OpenTelemetry code.
  const tracing = config.tracing
    ? (await import('../tracing/tracer.js')).createTracing(config.tracing, VERSION)
    : undefined;
  // A JWKS fetch that failed: logged at warn (the issuer and how, never a token) and counted.
  const jwks: JwksObserver = {
    onJwksError(issuer, kind, detail) {
      metrics.idpErrors.inc({ issuer, kind });
      logger.warn({ issuer, kind, ...detail }, 'JWKS fetch failed: tokens of this issuer cannot be verified');
    },
  };
  // Read per request: a reload swaps it; a request keeps the router it started with.
  // Stdio servers outlive reloads that leave their route's server unchanged.
  const sealer = createSealer(config.sessions.keys);
  const stdio = createStdioRegistry(logger, metrics, sealer);
  const federation = { logger, metrics, sealer };
  // One directory watcher for everything re-read while running: the policy file, the TLS files
  // and the pin files.
  const files = createFileWatch({ logger });
  const pins = new PinStore(PinStore.baseOf(configPath), logger, files);
  // Loaded before the router that needs them (a key's `kid` is its thumbprint, computed async).
  const assertionsOf = (next: Config) =>
    next.gatewayIdentity === undefined ? undefined : createAssertions(next.gatewayIdentity);
  let router: Router = createRouter(config, {
    jwks,
    stdio,
    federation,
    pins,
    audit,
    assertions: await assertionsOf(config),
  });
  const lifetimes = createLifetimes(() => router, logger);
  const { limiter, redis } = createLimiters(config, logger, metrics);
  const questions = createOpenQuestions(redis?.questions);
  const sessionStreams = createSessionStreams();
  const approvals = createApprovals(config, {
    sealer,
    redis,
    limiter,
    audit,
    metrics,
    logger,
    sessionStreams,
  });
  // Readiness depends on Redis only where a route would refuse without it.
  const needsRedis =
    redis !== undefined && config.routes.some((r) => r.rateLimits !== undefined && r.failMode === 'closed');

  const drain = createDrain({ timeoutMs: config.limits.drainTimeoutMs, logger });
  const policy = createPolicyReload({
    config,
    path: configPath,
    source: configSource,
    watch: files,
    logger,
    metrics,
    machineProblems: (next) => [...accountProblems(next), ...identityKeyProblems(next)],
    async apply(next) {
      const previous = router;
      router = createRouter(next, {
        jwks,
        stdio,
        federation,
        pins,
        audit,
        assertions: await assertionsOf(next),
      });
      // Open answers whose caller no longer authenticates under the new policy are closed.
      await lifetimes.revalidate();
      // The old pools finish what they carry, then close.
      previous
        .close()
        .catch((err: unknown) => logger.warn({ err }, 'closing the previous upstream pools failed'));
    },
  });

  const main = createMainListener({
    limits: config.limits,
    tls: config.tls && {
      settings: config.tls,
      watch: files,
      onMaterial: (material) => recordCertificateExpiry(metrics, material),
    },
    logger,
    handler: createPipeline({
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
      proto: config.tls ? 'https' : 'http',
      metrics,
      finish: createFinish({
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
      }),
      logger,
      isDraining: drain.isDraining,
      confirmation: {
        sealer,
        // Shared by every replica with Redis: a confirmation is used once, wherever it is brought.
        used: redis === undefined ? createUsedNonces() : createRedisUsedNonces(redis),
        // Legacy sessions' open questions: with Redis an answer may reach any replica.
        questions,
        approver: approvals?.confirm,
        timeoutMs: config.approvals.confirmTimeoutSec * 1000,
      },
      lifetimes,
      tracing,
      approvalPages: approvals?.pages,
      sessionStreams,
    }),
  });
  const admin = createAdminListener(
    createAdminHandler({
      metrics,
      ready: () => !drain.isDraining() && (!needsRedis || redis?.healthy() === true),
      jwks: () => router.jwks,
    }),
  );
  const url = await listen(main.server, config.listen, main.proto);
  const adminUrl = await listen(admin, config.admin, 'http');
  logger.info({ url, adminUrl, routes: router.routes.map((r) => r.path) }, 'portcullis listening');

  let closing: Promise<void> | undefined;
  const shutdown = async () => {
    files.close();
    await drain.drain(main.server);
    lifetimes.close();
    await router.close();
    // After the drain: every stdio server gets SIGTERM, SIGKILL 5 s later.
    await stdio.close();
    await questions.close();
    await redis?.close();
    await audit.close();
    chainHeads.stop();
    await tracing
      ?.shutdown()
      .catch((err: unknown) => logger.warn({ err }, 'exporting the last spans failed'));
    await closeNow(admin);
    logger.info('portcullis stopped');
  };
  return {
    url,
    adminUrl,
    metrics,
    reopenAudit: () => audit.reopen(),
    reload: () => policy.reload(),
    close: () => {
      closing ??= shutdown();
      return closing;
    },
  };
}

/**
 * Every admitted exchange is held to its caller's credential: closed at expiry, and at a reload
 * that revokes it (one mechanism for SSE GET, SSE POST and chunked JSON answers).
 */
function createLifetimes(router: () => Router, logger: Logger): AnswerLifetimes {
  return createAnswerLifetimes({
    current: (answer) => router().match(answer.route) === answer.policy,
    reauthenticate: async (answer) => {
      const route = router().match(answer.route);
      if (route === undefined) return undefined;
      const outcome = await route.authenticate(answer.req);
      if (!('refusal' in outcome)) {
        // A bound on delegation lowered by the reload closes the answers of chains now too long.
        const max = route.config.maxDelegationDepth;
        return max !== undefined && delegationDepth(outcome.claims) > max ? undefined : outcome;
      }
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
}

/**
 * One replica counts alone; with Redis every replica shares the counters (and falls back to
 * counting in process, per route `failMode`, while Redis is down).
 */
function createLimiters(
  config: Config,
  logger: Logger,
  metrics: Metrics,
): { readonly limiter: Limiter; readonly redis: RedisLimiter | undefined } {
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
  return { limiter: redis ?? memory, redis };
}
