import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { InternalErrorSite, Metrics } from '../metrics/registry.js';

/** The exchange a handler belongs to: what is logged, and what is ended when it throws. */
export interface ContainedExchange {
  readonly requestId: string;
  readonly res: ServerResponse;
}

export interface Containment {
  /**
   * `fn`, made safe to register as a stream, timer or `close` handler of one exchange: an
   * exception ends that exchange (its response destroyed), is logged with its stack and counted —
   * it never reaches the event loop, where it would end the process and every other exchange.
   */
  wrap<A extends unknown[]>(
    where: InternalErrorSite,
    exchange: ContainedExchange,
    fn: (...args: A) => void,
  ): (...args: A) => void;
  /** Ends the exchange for an exception already caught (logged and counted as `wrap` does). */
  fail(where: InternalErrorSite, exchange: ContainedExchange, err: unknown): void;
}

/**
 * Containment at the root: the pipeline wraps each handler it registers, rather than a
 * process-wide `uncaughtException` handler that would swallow errors with no exchange to end
 * (and keep serving in an unknown state). An error here is the gateway's bug, never the client's
 * or the upstream's input — hostile input is refused long before — so it is logged at error.
 */
export function createContainment(logger: Logger, metrics: Metrics): Containment {
  const fail = (where: InternalErrorSite, exchange: ContainedExchange, err: unknown): void => {
    try {
      metrics.internalErrors.inc({ where });
      logger.error({ err, requestId: exchange.requestId, where }, 'internal error: request ended');
    } finally {
      exchange.res.destroy();
    }
  };
  return {
    fail,
    wrap(where, exchange, fn) {
      return (...args) => {
        try {
          fn(...args);
        } catch (err) {
          fail(where, exchange, err);
        }
      };
    },
  };
}
