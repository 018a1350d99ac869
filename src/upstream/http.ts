import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { type Dispatcher, errors, Pool } from 'undici';
import type { Cancellation } from '../cancellation.js';
import type { UpstreamTarget } from '../config/upstreams.js';
import { type Refusal, refuse } from '../errors.js';
import type { Upstream, UpstreamAnswer } from './upstream.js';

/**
 * The HTTP upstream: Streamable HTTP passed through one keep-alive undici pool per route
 * (DESIGN.md step 10). Requests go through undici's `dispatch` with a handler of our own
 * ({@link AnswerHandler}) rather than `pool.request`: undici 8's request API kept each finished
 * request reachable past young-generation collections, which cost the gateway about a third of
 * its CPU per request under load; the handler's body stream is relayed untouched when nothing in
 * it must be read (the zero-copy fast path). Upstream failures become
 * refusals from the catalogue: unreachable → 502, slow → 504, and answers the gateway will not
 * relay → 502 `upstream_rejected` (see {@link rejected}).
 */
export function createHttpUpstream(upstream: string, target: UpstreamTarget): Upstream {
  const url = new URL(upstream);
  const path = `${url.pathname}${url.search}`;
  const { connectMs, headersMs, idleMs } = target.timeouts;
  const tls = target.tls;
  const pool = new Pool(url.origin, {
    // Idle upstream sockets close before a typical upstream's own 5 s keep-alive timeout; undici
    // also honours a shorter `Keep-Alive: timeout=` the upstream announces.
    keepAliveTimeout: 4_000,
    headersTimeout: headersMs,
    bodyTimeout: idleMs,
    connect: {
      timeout: connectMs,
      ...(tls?.ca ? { ca: readFileSync(tls.ca) } : {}),
      ...(tls?.cert ? { cert: readFileSync(tls.cert) } : {}),
      ...(tls?.key ? { key: readFileSync(tls.key) } : {}),
      ...(tls?.serverName ? { servername: tls.serverName } : {}),
    },
  });

  return {
    send: (request) =>
      new Promise((resolve, reject) => {
        pool.dispatch(
          { path, method: request.method, headers: request.headers, body: request.text ?? null },
          new AnswerHandler(request.cancellation, resolve, reject),
        );
      }),
    close: () => pool.close(),
  };
}

/**
 * Upstream answers never relayed, whatever they carry:
 * - 401/403: the upstream's auth challenge would send the client to another authorization server.
 * - any 3xx: never followed, never relayed — a client following `Location` resends its
 *   `X-API-Key` or token to a host the upstream chose (undici follows nothing by default).
 * - an `Mcp-Session-Id` that is repeated or not 1*VCHAR (MCP transports: visible ASCII only):
 *   the gateway seals one upstream id per session, and two (or a list joined into one value)
 *   would leak raw ids or bind the session to an id the client cannot name.
 */
function rejected(status: number, headers: Readonly<Record<string, string | string[] | undefined>>): boolean {
  if (status === 401 || status === 403 || (status >= 300 && status < 400)) return true;
  const session = headers['mcp-session-id'];
  return session !== undefined && (typeof session !== 'string' || !isVisibleAscii(session));
}

function isVisibleAscii(value: string): boolean {
  if (value.length === 0) return false;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    if (code < 0x21 || code > 0x7e) return false;
  }
  return true;
}

const TIMEOUT_CODES: ReadonlySet<string> = new Set([
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'ETIMEDOUT',
]);
/** Errors that mean the upstream could not be reached or dropped the connection. */
const UNREACHABLE_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
  'UND_ERR_ABORTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
]);

/**
 * Answers that are not HTTP at all (bytes no parser accepts, a header section past undici's
 * limit): the upstream answered, with something the gateway will never relay — 502
 * `upstream_rejected`, as for any answer refused at its headers. (undici's parser error carries no
 * `code`: it is known by its class.)
 */
const NOT_HTTP_CODES: ReadonlySet<string> = new Set(['UND_ERR_HEADERS_OVERFLOW']);

function upstreamFailure(err: unknown): Refusal {
  if (err instanceof errors.HTTPParserError) return refuse('upstream_rejected');
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && NOT_HTTP_CODES.has(code)) return refuse('upstream_rejected');
  if (typeof code === 'string' && TIMEOUT_CODES.has(code)) return refuse('upstream_timeout');
  if (typeof code === 'string' && UNREACHABLE_CODES.has(code)) return refuse('upstream_unreachable');
  if (err instanceof Error && err.name === 'AbortError') return refuse('upstream_unreachable');
  throw err;
}

type Resolve = (answer: UpstreamAnswer | Refusal) => void;

/**
 * One request's undici handler: resolves with the answer once its status and headers arrive (the
 * body then streams through a `Readable` with backpressure: a full buffer pauses the socket), with
 * a refusal for an answer never relayed or an upstream failure, and rejects with anything else (a
 * bug). The client going away (its `cancellation`) aborts the request — queued, sending or
 * streaming — and destroying the body does too, so its socket is freed or reused.
 */
class AnswerHandler implements Dispatcher.DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private body: Readable | undefined;
  /** Set when the client left before undici started the request. */
  private abortedEarly = false;
  /** An answer refused at its headers: its request is aborted and whatever follows ignored. */
  private dropping = false;

  constructor(
    private readonly cancellation: Cancellation,
    private readonly resolve: Resolve,
    private readonly reject: (err: unknown) => void,
  ) {
    cancellation.onCancel(this.onAbort);
  }

  private readonly onAbort = (): void => {
    if (this.controller === undefined) this.abortedEarly = true;
    else this.controller.abort(new errors.RequestAbortedError());
  };

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortedEarly) controller.abort(new errors.RequestAbortedError());
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    status: number,
    headers: Readonly<Record<string, string | string[] | undefined>>,
  ): void {
    if (status < 200) return; // 1xx: the answer is still to come
    if (rejected(status, headers)) {
      // Never read: a hostile upstream could trickle that body for as long as its idle timeout
      // allows, holding a pooled connection. The connection is closed instead of reused.
      this.dropping = true;
      this.resolve(refuse('upstream_rejected'));
      controller.abort(new errors.RequestAbortedError());
      return;
    }
    this.body = new Readable({
      read: () => controller.resume(),
      destroy: (err, done) => {
        // The gateway stopped reading (client gone, answer cut): the request ends here too.
        if (!controller.aborted && this.body?.readableEnded === false)
          controller.abort(err ?? new errors.RequestAbortedError());
        done(err);
      },
    });
    this.resolve({ status, headers, body: this.body });
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.dropping || this.body === undefined || this.body.destroyed) return;
    if (!this.body.push(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    this.cancellation.off(this.onAbort);
    this.body?.push(null);
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.cancellation.off(this.onAbort);
    if (this.dropping) return;
    if (this.body !== undefined) {
      if (!this.body.destroyed) this.body.destroy(err);
      return;
    }
    try {
      this.resolve(upstreamFailure(err));
    } catch (bug) {
      this.reject(bug);
    }
  }
}
