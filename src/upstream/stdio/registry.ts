import type { Logger } from 'pino';
import type { Config, StdioUpstreamConfig } from '../../config/schema.js';
import type { UpstreamTarget } from '../../config/upstreams.js';
import type { Metrics } from '../../metrics/registry.js';
import { createSealer, type Sealer } from '../../proxy/seal.js';
import type { Upstream } from '../upstream.js';
import { createStdioUpstream } from './upstream.js';

/** The stdio upstreams of one router generation (one policy file as loaded). */
export interface StdioGeneration {
  /** The route's stdio upstream: the running one when nothing it depends on changed. */
  upstream(target: UpstreamTarget, spec: StdioUpstreamConfig): Upstream;
  /** The generation is complete: upstreams it no longer uses stop (their processes with them). */
  commit(): void;
}

export interface StdioRegistry {
  generation(config: Config): StdioGeneration;
  /** Stops every process of every route (shutdown, after the drain). */
  close(): Promise<void>;
}

/**
 * Keeps stdio upstreams across policy reloads. A reload rebuilds the router — policy, scopes,
 * limits — but a route whose server is configured exactly as before keeps its running processes
 * and the legacy sessions bound to them: editing a scope must not restart every user's server.
 * A route removed, or whose command, environment, isolation or limits changed, gets a new
 * upstream and its old processes are stopped.
 */
export function createStdioRegistry(
  logger: Logger,
  metrics?: Metrics,
  sealer: Sealer = createSealer(undefined),
): StdioRegistry {
  let running = new Map<string, Upstream>();
  const stop = (upstreams: Iterable<Upstream>): Promise<void> =>
    Promise.all(
      [...upstreams].map((upstream) =>
        upstream.close().catch((err: unknown) => logger.warn({ err }, 'stopping stdio processes failed')),
      ),
    ).then(() => undefined);
  return {
    generation(config) {
      const next = new Map<string, Upstream>();
      return {
        upstream(target, spec) {
          const key = JSON.stringify([
            target.route,
            target.server,
            spec,
            target.timeouts.headersMs,
            config.limits.maxResponseBytes,
            config.limits.maxJsonDepth,
          ]);
          const upstream =
            next.get(key) ??
            running.get(key) ??
            createStdioUpstream(target, spec, {
              logger,
              metrics,
              sealer,
              maxResponseBytes: config.limits.maxResponseBytes,
              maxJsonDepth: config.limits.maxJsonDepth,
            });
          next.set(key, upstream);
          return upstream;
        },
        commit() {
          const retired = [...running].filter(([key]) => !next.has(key)).map(([, upstream]) => upstream);
          running = next;
          void stop(retired);
        },
      };
    },
    close() {
      const all = [...running.values()];
      running = new Map();
      return stop(all);
    },
  };
}
