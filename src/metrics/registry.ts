import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { METHOD_LABELS, metricLabelOf, TOOLS_CALL } from '../jsonrpc/methods.js';
import { talliedCounter } from './tally.js';

/** Labels of requests that carry no JSON-RPC method: GET/DELETE/OPTIONS, a client answer, a batch, no body. */
const NON_METHOD_LABELS: ReadonlySet<string> = new Set([
  'GET',
  'DELETE',
  'OPTIONS',
  'response',
  'batch',
  'none',
]);

/**
 * The `method` label values: the methods a client may send (the method table's metric labels) and
 * the labels of requests that carry none; anything else is `other` so a client cannot explode
 * cardinality.
 */
export const KNOWN_METHODS: ReadonlySet<string> = new Set([...METHOD_LABELS, ...NON_METHOD_LABELS]);

export function methodLabel(method: string): string {
  return NON_METHOD_LABELS.has(method) ? method : metricLabelOf(method);
}

/**
 * Where an exception escaped the gateway's own code while it handled one exchange (the `where`
 * label of `portcullis_internal_errors_total`, a closed set):
 * - `request`: the request pipeline itself (answered 500, or the connection cut once answering began);
 * - `stream`: an upstream body or answer-rewriting stream;
 * - `relay`: copying the answer to the client (the audit's answer scanner included);
 * - `close`: a handler run when the client's response closed (releases, stream bookkeeping);
 * - `timer`: a timer of the exchange (stream expiry);
 * - `outcome`: writing the exchange's audit record and metrics.
 */
export const INTERNAL_ERROR_SITES = ['request', 'stream', 'relay', 'close', 'timer', 'outcome'] as const;
export type InternalErrorSite = (typeof INTERNAL_ERROR_SITES)[number];

/** The gateway's instruments, on one registry served by the admin listener only. */
export interface Metrics {
  readonly registry: Registry;
  readonly requests: Counter<'route' | 'method' | 'status'>;
  readonly requestDuration: Histogram<'route'>;
  readonly refusals: Counter<'route' | 'reason'>;
  readonly activeStreams: Gauge<'route'>;
  readonly authFailures: Counter<'route' | 'method' | 'reason'>;
  readonly decisions: Counter<'route' | 'decision'>;
  readonly reloads: Counter<'result'>;
  readonly redisErrors: Counter<'kind'>;
  readonly idpErrors: Counter<'issuer' | 'kind'>;
  readonly toolCalls: Counter<'route' | 'tool' | 'decision' | 'outcome'>;
  readonly upstreamDuration: Histogram<'route'>;
  readonly upstreamErrors: Counter<'route' | 'kind'>;
  readonly internalErrors: Counter<'where'>;
  readonly failOpen: Counter<'route'>;
  readonly policyInfo: Gauge<'hash'>;
  readonly certificateExpiry: Gauge<'certificate' | 'subject'>;
  /** stdio servers running now, per route. */
  readonly stdioProcesses: Gauge<'route'>;
  /** stdio server starts by result (`started`, `failed`: no usable handshake) and whether it followed a crash. */
  readonly stdioStarts: Counter<'route' | 'result' | 'restart'>;
  /** stdio server exits by reason (`crashed`, `stopped`: idle, evicted, session ended, reload or shutdown). */
  readonly stdioExits: Counter<'route' | 'reason'>;
  /** Client requests a stdio server is working on now (its queue). */
  readonly stdioInFlight: Gauge<'route'>;
  /** What a stdio server wrote that reached no client (lines that are no message, unattributable messages). */
  readonly stdioDropped: Counter<'route' | 'kind'>;
  /** Requests a federated route sent to one of its servers, by outcome (`ok`, `error`, `timeout`, `unreachable`, `bad_answer`, `session_ended`). */
  readonly federationRequests: Counter<'route' | 'server' | 'outcome'>;
  /** Time one federated server took to answer (until its answer began, or was read whole for a list). */
  readonly federationServerDuration: Histogram<'route' | 'server'>;
  /** Time a fanned-out request took, from sending to every server to the merged answer. */
  readonly federationFanOutDuration: Histogram<'route' | 'method'>;
  /** Tool and prompt definitions found to differ from their pin, or to have none (once per definition hash). */
  readonly toolChanges: Counter<'route' | 'kind' | 'verdict'>;
  /** RFC 8693 exchanges of callers' tokens (`upstreamIdentity: { mode: tokenExchange }`), by outcome. */
  readonly tokenExchanges: Counter<'route' | 'server' | 'result'>;
  /** Human confirmations of `confirm` calls, by step. */
  readonly confirmations: Counter<'route' | 'result'>;
  /** Time from asking a caller to confirm to the yes. */
  readonly confirmationSeconds: Histogram<'route'>;
  /** Approvals of `confirm: approver` calls, by what became of them. */
  readonly approvals: Counter<'route' | 'result'>;
  /** Time from an approval's creation to its decision. */
  readonly approvalSeconds: Histogram<'route'>;
  /** Approver webhooks that failed. */
  readonly approvalNotifyFailures: Counter;
}

const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function createMetrics(version: string): Metrics {
  const registry = new Registry();
  // Node's defaults as portcullis_process_* and portcullis_nodejs_*.
  collectDefaultMetrics({ register: registry, prefix: 'portcullis_' });
  const buildInfo = new Gauge({
    name: 'portcullis_build_info',
    help: 'Build information; always 1',
    labelNames: ['version', 'node'],
    registers: [registry],
  });
  buildInfo.set({ version, node: process.version }, 1);
  return {
    registry,
    requests: talliedCounter({
      name: 'portcullis_requests_total',
      help: 'HTTP requests answered, by route, JSON-RPC method (or HTTP method for GET/DELETE) and status',
      labelNames: ['route', 'method', 'status'],
      registers: [registry],
    }),
    requestDuration: new Histogram({
      name: 'portcullis_request_duration_seconds',
      help: 'Time from request received to response finished, for requests the gateway did not refuse (SSE streams excluded)',
      labelNames: ['route'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    upstreamDuration: new Histogram({
      name: 'portcullis_upstream_duration_seconds',
      help: 'Time from forwarding a request to the upstream answering with its status and headers',
      labelNames: ['route'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    upstreamErrors: new Counter({
      name: 'portcullis_upstream_errors_total',
      help: 'Upstream failures, by route and kind (unreachable, timeout, bad_answer, stream_ended, too_large)',
      labelNames: ['route', 'kind'],
      registers: [registry],
    }),
    internalErrors: zeroed(
      new Counter({
        name: 'portcullis_internal_errors_total',
        help: 'Exceptions in the gateway’s own code while handling a request, by where they were caught (request, stream, relay, close, timer, outcome); each ended its one request, never the process',
        labelNames: ['where'],
        registers: [registry],
      }),
      'where',
      INTERNAL_ERROR_SITES,
    ),
    toolCalls: talliedCounter({
      name: 'portcullis_tool_calls_total',
      help: `${TOOLS_CALL} requests, by route, tool (the policy entry that matched, else other), decision and MCP outcome (ok, tool_error, rpc_error, none)`,
      labelNames: ['route', 'tool', 'decision', 'outcome'],
      registers: [registry],
    }),
    failOpen: new Counter({
      name: 'portcullis_ratelimit_fail_open_total',
      help: 'Requests on failMode: open routes let through on the in-process fallback because Redis did not answer',
      labelNames: ['route'],
      registers: [registry],
    }),
    policyInfo: new Gauge({
      name: 'portcullis_policy_info',
      help: 'The policy in force: 1, labelled with the SHA-256 of the file (first 16 hex digits)',
      labelNames: ['hash'],
      registers: [registry],
    }),
    certificateExpiry: new Gauge({
      name: 'portcullis_certificate_expiry_timestamp_seconds',
      help: 'When a certificate expires (Unix time): the serving certificate and each client CA',
      labelNames: ['certificate', 'subject'],
      registers: [registry],
    }),
    refusals: new Counter({
      name: 'portcullis_refusals_total',
      help: 'Requests refused by the gateway, by route and reason',
      labelNames: ['route', 'reason'],
      registers: [registry],
    }),
    redisErrors: new Counter({
      name: 'portcullis_redis_errors_total',
      help: 'Limiter calls Redis did not answer (kind: timeout, unavailable); each was answered by the in-process fallback, or refused on failMode: closed routes',
      labelNames: ['kind'],
      registers: [registry],
    }),
    idpErrors: new Counter({
      name: 'portcullis_idp_errors_total',
      help: 'JWKS fetches that failed, by issuer (as configured) and kind (unreachable, timeout, status, invalid); while they fail, callers of that issuer get 503 idp_unavailable',
      labelNames: ['issuer', 'kind'],
      registers: [registry],
    }),
    reloads: zeroed(
      new Counter({
        name: 'portcullis_policy_reloads_total',
        help: 'Policy reloads by result (applied, invalid, refused)',
        labelNames: ['result'],
        registers: [registry],
      }),
      'result',
      ['applied', 'invalid', 'refused'],
    ),
    decisions: talliedCounter({
      name: 'portcullis_policy_decisions_total',
      help: 'Policy decisions per JSON-RPC message, by route and decision (allow, deny, shadow-deny)',
      labelNames: ['route', 'decision'],
      registers: [registry],
    }),
    authFailures: new Counter({
      name: 'portcullis_auth_failures_total',
      help: 'Failed authentications, by route, method and reason',
      labelNames: ['route', 'method', 'reason'],
      registers: [registry],
    }),
    toolChanges: new Counter({
      name: 'portcullis_tool_changes_total',
      help: 'Tool and prompt definitions a pinned route saw differ from their pin (verdict changed) or without one (unpinned), once per definition hash, by route and kind',
      labelNames: ['route', 'kind', 'verdict'],
      registers: [registry],
    }),
    federationRequests: new Counter({
      name: 'portcullis_federation_requests_total',
      help: 'Requests a federated route sent to one of its servers, by route, server and outcome (ok, error, timeout, unreachable, bad_answer, session_ended)',
      labelNames: ['route', 'server', 'outcome'],
      registers: [registry],
    }),
    federationServerDuration: new Histogram({
      name: 'portcullis_federation_server_duration_seconds',
      help: 'Time one federated server took to answer, by route and server',
      labelNames: ['route', 'server'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    federationFanOutDuration: new Histogram({
      name: 'portcullis_federation_fanout_duration_seconds',
      help: 'Time a request fanned out to every server of a federated route took, until the merged answer, by route and method',
      labelNames: ['route', 'method'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
    tokenExchanges: new Counter({
      name: 'portcullis_token_exchanges_total',
      help: 'Token exchanges (RFC 8693) at an authorization server for an upstream, by route, server (empty for a single-server route) and result (issued; refused: 403 exchange_refused; unavailable: 503 idp_unavailable)',
      labelNames: ['route', 'server', 'result'],
      registers: [registry],
    }),
    confirmations: new Counter({
      name: 'portcullis_confirmations_total',
      help: 'Human confirmations of confirm tool calls, by route and result (asked, accepted, declined, expired: too late, used or for another call, unavailable: the client cannot be asked)',
      labelNames: ['route', 'result'],
      registers: [registry],
    }),
    confirmationSeconds: new Histogram({
      name: 'portcullis_confirmation_duration_seconds',
      help: 'Time from asking the caller to confirm a call to the yes, by route',
      labelNames: ['route'],
      buckets: [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600],
      registers: [registry],
    }),
    approvals: new Counter({
      name: 'portcullis_approvals_total',
      help: 'Approvals of confirm: approver tool calls, by route and result (pending: created; approved, denied: decided on the page; refused: a decision the page refused; expired: a retry found it gone; used: the call forwarded)',
      labelNames: ['route', 'result'],
      registers: [registry],
    }),
    approvalSeconds: new Histogram({
      name: 'portcullis_approval_decision_seconds',
      help: 'Time from a pending approval to its decision on the approval page, by route',
      labelNames: ['route'],
      buckets: [5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 86400],
      registers: [registry],
    }),
    approvalNotifyFailures: new Counter({
      name: 'portcullis_approval_notify_failures_total',
      help: 'Approver webhooks (approvals.notify) that failed or timed out',
      registers: [registry],
    }),
    stdioProcesses: new Gauge({
      name: 'portcullis_stdio_processes',
      help: 'stdio servers running, by route',
      labelNames: ['route'],
      registers: [registry],
    }),
    stdioStarts: new Counter({
      name: 'portcullis_stdio_starts_total',
      help: 'stdio server starts, by route, result (started, failed) and restart (true when it followed a crash)',
      labelNames: ['route', 'result', 'restart'],
      registers: [registry],
    }),
    stdioExits: new Counter({
      name: 'portcullis_stdio_exits_total',
      help: 'stdio server exits, by route and reason (crashed; stopped: idle, evicted, session ended, reload or shutdown)',
      labelNames: ['route', 'reason'],
      registers: [registry],
    }),
    stdioInFlight: new Gauge({
      name: 'portcullis_stdio_in_flight',
      help: 'Client requests stdio servers are working on, by route',
      labelNames: ['route'],
      registers: [registry],
    }),
    stdioDropped: new Counter({
      name: 'portcullis_stdio_dropped_total',
      help: 'Messages and lines a stdio server wrote that reached no client, by route and kind',
      labelNames: ['route', 'kind'],
      registers: [registry],
    }),
    activeStreams: new Gauge({
      name: 'portcullis_active_sse_streams',
      help: 'SSE streams open through the gateway',
      labelNames: ['route'],
      registers: [registry],
    }),
  };
}

/**
 * Creates a counter's series at 0: `increase()` cannot see a series' first step when it appears
 * already at 1, so an alert on the first failed reload would never fire.
 */
function zeroed<L extends string>(counter: Counter<L>, label: L, values: readonly string[]): Counter<L> {
  for (const value of values) counter.inc({ [label]: value } as Partial<Record<L, string>>, 0);
  return counter;
}
