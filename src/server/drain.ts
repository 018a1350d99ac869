import type { Server } from 'node:http';
import type { Logger } from 'pino';

/** Graceful shutdown of the main listener (SIGTERM): the one place that knows the gateway is draining. */
export interface Drain {
  /**
   * True from the moment the drain starts: the pipeline answers new requests on open connections
   * 503 `draining`, and `/readyz` turns 503 so the load balancer stops sending.
   */
  isDraining(): boolean;
  /**
   * Stops accepting connections, lets in-flight exchanges finish for at most `timeoutMs`, closing
   * each keep-alive connection as it turns idle, then cuts whatever is still open (long-lived SSE
   * streams, slow answers). Resolves once every connection has ended. Runs once: later calls get
   * the same promise.
   */
  drain(server: Server): Promise<void>;
}

export interface DrainOptions {
  /** `limits.drainTimeoutMs`: how long in-flight work gets before it is cut. */
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** How often idle connections are looked for while draining, in ms. Default 50. */
  readonly idleCheckMs?: number;
}

export function createDrain({ timeoutMs, logger, idleCheckMs = 50 }: DrainOptions): Drain {
  let draining: Promise<void> | undefined;
  const run = async (server: Server) => {
    // `close` stops accepting; its callback runs once every connection has ended. A connection that
    // was idle when it was called is closed by it, but one finishing an answer turns idle later:
    // it is closed at the next look, so the drain never waits out a keep-alive timeout.
    let stoppedAll = false;
    const stopped = new Promise<void>((resolve) =>
      server.close(() => {
        stoppedAll = true;
        resolve();
      }),
    );
    const deadline = Date.now() + timeoutMs;
    while (!stoppedAll && Date.now() < deadline) {
      server.closeIdleConnections();
      await new Promise((resolve) => setTimeout(resolve, idleCheckMs));
    }
    if (!stoppedAll) {
      logger.warn({ drainTimeoutMs: timeoutMs }, 'drain timeout: closing open connections');
      server.closeAllConnections();
    }
    await stopped;
  };
  return {
    isDraining: () => draining !== undefined,
    drain(server) {
      draining ??= run(server);
      return draining;
    },
  };
}
