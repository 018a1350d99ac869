import { Cancellation } from '../cancellation.js';
import { isRefusal, type Refusal } from '../errors.js';
import type { Authenticated } from '../exchange.js';
import { DEFAULT_VERSION } from '../jsonrpc/protocol-version.js';
import { mirrorCanonicalName } from '../policy/canonical-body.js';
import { upstreamRequestHeaders } from '../proxy/headers.js';
import type { UpstreamAnswer } from './upstream.js';

/**
 * Upstream failures as `portcullis_upstream_errors_total` names them. Only these count: an
 * upstream that refuses for the gateway's own reasons (a stdio session gone, a federated name no
 * server owns, a full process) answered as it should, and its refusal is counted as such.
 */
const UPSTREAM_ERROR_KIND: Partial<Record<string, string>> = {
  upstream_unreachable: 'unreachable',
  upstream_unavailable: 'unreachable',
  upstream_timeout: 'timeout',
  upstream_rejected: 'bad_answer',
  response_too_large: 'too_large',
};

export interface SendingDeps {
  /** The listener's scheme, for `X-Forwarded-Proto`. */
  readonly proto: 'http' | 'https';
}

/**
 * The send stage (DESIGN.md step 10): the admitted request handed to its route's
 * {@link Upstream}. It builds what the upstream is sent (headers by the route's allow-list, the
 * upstream's own session id, the trace context), records when the answer came and what it said,
 * and lets the exchange cancel the upstream work when the client leaves. A GET or DELETE carries
 * no body (its exchange has none).
 */
export function createSending({
  proto,
}: SendingDeps): (exchange: Authenticated) => Promise<UpstreamAnswer | Refusal> {
  return async (exchange) => {
    const { route, session, body } = exchange;
    const headers = upstreamRequestHeaders(exchange.req.headers, route.upstreamHeaders, {
      peer: exchange.peer,
      forwardedFor: exchange.forwardedFor,
      proto,
      sessionId: session?.upstreamId,
    });
    if (body !== undefined && exchange.decisions !== undefined)
      mirrorCanonicalName(headers, body, exchange.decisions);
    // The upstream's trace continues the gateway's span.
    exchange.span?.inject(headers);
    const cancellation = new Cancellation();
    exchange.cancellation = cancellation;
    exchange.sentAt = performance.now();
    const answer = await route.upstream.send({
      method: exchange.forwardMethod,
      headers,
      body,
      text: body?.forward,
      cancellation,
      version: requestVersion(exchange),
      identity: exchange.identity,
      session,
      decisions: exchange.decisions,
    });
    if (isRefusal(answer)) {
      exchange.upstreamError = UPSTREAM_ERROR_KIND[answer.reason];
      return answer;
    }
    exchange.pinned = answer.pinned;
    exchange.invalidResults = answer.invalidResults;
    // Answered by the gateway itself (arguments that break the pin): the server was never asked.
    if (answer.invalidArguments === true) {
      exchange.invalidArguments = true;
      return answer;
    }
    exchange.upstreamMs = performance.now() - exchange.sentAt;
    exchange.upstreamStatus = answer.status;
    exchange.servers = answer.servers;
    return answer;
  };
}

/** The version a request speaks: parsed with its body (POST), else its header or its session's. */
function requestVersion(exchange: Authenticated): string {
  if (exchange.version !== undefined) return exchange.version;
  const header = exchange.req.headers['mcp-protocol-version'];
  return typeof header === 'string' ? header : (exchange.session?.version ?? DEFAULT_VERSION);
}
