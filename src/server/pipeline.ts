import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import { isRefusal, type Refusal, refuse } from '../errors.js';
import {
  type Authorized,
  Exchange,
  type ExchangeContext,
  type Finish,
  type Guarded,
  type Routed,
} from '../exchange.js';
import type { Metrics } from '../metrics/registry.js';
import { createAnswerRelay } from '../proxy/answer.js';
import { createSessionOpening } from '../proxy/session-stage.js';
import type { SessionStreams } from '../proxy/session-streams.js';
import type { SessionSealer } from '../proxy/sessions.js';
import type { AnswerLifetimes } from '../proxy/stream-lifetime.js';
import type { Concurrency } from '../ratelimit/concurrency.js';
import type { Limiter, Rate } from '../ratelimit/limiter.js';
import type { Tracing } from '../tracing/tracer.js';
import { createSending } from '../upstream/send.js';
import type { UpstreamAnswer } from '../upstream/upstream.js';
import { createMessageAdmission, createRequestAdmission } from './admit.js';
import { createAuthentication } from './authenticate.js';
import { createAuthorization } from './authorize.js';
import type { ClientAddress } from './client-address.js';
import { type ConfirmationDeps, createConfirmation, createContinuation } from './confirm.js';
import { createContainment } from './contain.js';
import { guardRequest } from './guard.js';
import { createParsing } from './parse.js';
import { sendMetadata, sendPreflight } from './respond.js';
import type { Router } from './router.js';

export interface PipelineDeps {
  readonly router: () => Router;
  readonly clientAddress: (req: IncomingMessage) => ClientAddress;
  /** Counts failed authentications per client address (`authFailures`), and the routes' rate limits. */
  readonly limiter: Limiter;
  readonly authFailureRate: Rate;
  readonly maxBodyBytes: number;
  /** Deepest JSON nesting of a request body, and of an upstream answer the gateway must filter (`limits.maxJsonDepth`). */
  readonly maxJsonDepth: number;
  /** The response-size cap, and the largest answer the gateway reads whole (a filtered list result). */
  readonly maxResponseBytes: number;
  /** Seals and opens legacy session ids. */
  readonly sessions: SessionSealer;
  readonly sessionMaxAgeSec: number;
  readonly concurrency: Concurrency;
  /** Holds every admitted exchange to its credential: closed at expiry or when a reload revokes it. */
  readonly lifetimes: AnswerLifetimes;
  readonly proto: 'http' | 'https';
  readonly metrics: Metrics;
  /** Audit records, metrics, span and log line of a finished exchange (`createFinish`). */
  readonly finish: Finish;
  readonly logger: Logger;
  /** True once SIGTERM started the drain: new requests on open connections are answered 503 `draining`. */
  readonly isDraining: () => boolean;
  /** Human confirmation of `confirm` calls: the sealer of its `requestState`, the used nonces, the timeout. */
  readonly confirmation: Omit<ConfirmationDeps, 'metrics' | 'concurrency'>;
  /** OpenTelemetry, when `tracing` is configured. */
  readonly tracing?: Tracing | undefined;
  /** Legacy sessions' GET streams (the relay holds them; approvals write to them). */
  readonly sessionStreams?: SessionStreams | undefined;
  /** The approval pages under `/portcullis/` (`confirm: approver`), when `approvals` is configured. */
  readonly approvalPages?: ((req: IncomingMessage, res: ServerResponse) => Promise<void>) | undefined;
}

/**
 * The request pipeline in DESIGN.md order: read `handle` top to bottom, one line per stage, and
 * open each stage's module. Every stage reads the exchange and adds its facts, or returns a
 * refusal; the exchange finishes once, wherever it ends (`src/exchange.ts`).
 */
export function createPipeline(deps: PipelineDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { metrics, logger } = deps;
  const contain = createContainment(logger, metrics);
  const context: ExchangeContext = { finish: deps.finish, metrics, contain };
  const authenticate = createAuthentication(deps);
  const openSession = createSessionOpening({ sessions: deps.sessions, maxAgeSec: deps.sessionMaxAgeSec });
  const admitRequest = createRequestAdmission(deps.concurrency);
  const parse = createParsing(deps);
  const authorize = createAuthorization();
  const admitMessages = createMessageAdmission(deps);
  const send = createSending(deps);
  const confirm = createConfirmation({
    ...deps.confirmation,
    concurrency: deps.concurrency,
    metrics: deps.metrics,
  });
  const continueConfirmed = createContinuation({ ...deps.confirmation, ...deps });
  const relay = createAnswerRelay({ ...deps, contain });

  return (req, res) => {
    const method = req.method ?? 'UNKNOWN';
    const exchange = new Exchange(
      req,
      res,
      deps.clientAddress(req),
      deps.tracing?.start(req.headers, method),
      context,
    );
    handle(exchange).catch((err: unknown) => {
      // Not a refusal but a bug: keep the stack, answer 500, count it.
      metrics.internalErrors.inc({ where: 'request' });
      logger.error({ err, requestId: exchange.requestId, where: 'request' }, 'request failed');
      if (!res.headersSent) exchange.refuse(refuse('internal'), true);
      else res.destroy();
    });
  };

  /** `exchange` authorized again under the routes in force now and the identity its caller has now. */
  function decideAgain(exchange: Authorized): Authorized | Refusal {
    const route = deps.router().match(exchange.req.url);
    if (route === undefined) return refuse('not_found');
    // The one place facts are replaced: the stages that read them run again from here.
    const current = exchange as Exchange;
    current.route = route;
    current.identity = deps.lifetimes.identityOf(exchange.res) ?? exchange.identity;
    return authorize(exchange);
  }

  async function handle(exchange: Exchange): Promise<void> {
    const { req, res } = exchange;
    // 2. Router: exact path, nothing else; no upstream contact for anything unrouted.
    const router = deps.router();
    const route = router.match(req.url);
    if (route === undefined) {
      if (deps.approvalPages !== undefined && req.url?.startsWith('/portcullis/') === true) {
        // People's pages, not MCP: their decisions are audited as approval events.
        await deps.approvalPages(req, res);
        return exchange.finishUnrecorded('approval page');
      }
      const metadata = router.metadata(req.url);
      if (metadata !== undefined && (req.method === 'GET' || req.method === 'HEAD')) {
        sendMetadata(res, metadata);
        return exchange.finishUnrecorded('well-known document');
      }
      return exchange.refuse(refuse('not_found'));
    }
    exchange.route = route;
    const routed = exchange as Routed;
    if (deps.isDraining())
      return routed.refuse(refuse('draining', { headers: { 'retry-after': '1' } }), true);

    // 3. Guard: method, media type, framing, encoding, Origin, credentials in the query.
    const guard = guardRequest(req, route);
    if (isRefusal(guard)) return routed.refuse(guard, guard.reason === 'bad_framing');
    if (guard.kind === 'preflight') {
      sendPreflight(res, guard.origin, req.headers['access-control-request-headers']);
      return routed.finishUnrecorded(`OPTIONS ${route.path}`);
    }
    routed.forwardMethod = guard.method;
    routed.origin = guard.origin;
    const guarded = routed as Guarded;

    // 4. Authenticate (failure damping first), then open the legacy session the request names.
    // A stage that answers at once is not awaited: each await is a promise and a microtask hop.
    const authenticating = authenticate(guarded);
    const authenticated = authenticating instanceof Promise ? await authenticating : authenticating;
    if (isRefusal(authenticated)) return guarded.refuse(authenticated);
    const sessionRefusal = openSession(authenticated);
    if (sessionRefusal !== undefined) return authenticated.refuse(sessionRefusal);

    // 8a. Admit the request: concurrency slots, before the body is read.
    if (authenticated.finished) return; // the client left while its credential was checked
    const slotRefusal = admitRequest(authenticated);
    if (slotRefusal !== undefined) return authenticated.refuse(slotRefusal);
    deps.lifetimes.hold({ req, res, route: route.path, policy: route, identity: authenticated.identity });

    let admitted = authenticated;
    if (authenticated.forwardMethod === 'POST') {
      // 5. Parse: the forwarded body is the parsed message re-serialized; modern headers checked.
      const parsed = await parse(authenticated);
      if (parsed === 'gone') return;
      if (isRefusal(parsed)) return authenticated.refuse(parsed, parsed.reason === 'body_too_large');

      // 6. Authorize every message from the parsed body alone.
      const authorized = authorize(parsed);
      if (isRefusal(authorized)) return parsed.refuse(authorized);

      // 8b. Admit the messages: the listen stream slot, then every rate limit in one limiter call.
      const admitting = admitMessages(authorized);
      const limitRefusal = admitting instanceof Promise ? await admitting : admitting;
      if (limitRefusal !== undefined) return authorized.refuse(limitRefusal);

      // 9. Confirm: a `confirm` call goes on only with the caller's yes (rate tokens charged first).
      const confirming = confirm(authorized);
      const confirmed = confirming instanceof Promise ? await confirming : confirming;
      if (isRefusal(confirmed)) return authorized.refuse(confirmed);
      if (confirmed !== authorized) return relay(authorized, confirmed as UpstreamAnswer);
      // A legacy confirmation may have waited minutes: a reload since decides the call again,
      // under the route and identity in force now (its old upstream's connections are closed).
      if (deps.router() !== router) {
        const again = decideAgain(authorized);
        if (isRefusal(again)) return authorized.refuse(again);
        // The caller's yes is no approver's: a reload that now asks for one refuses the call.
        if (again.decisions.some((d) => d.confirm === 'approver') && again.confirmation?.step !== 'approved')
          return authorized.refuse(refuse('confirmation_expired', { data: { detail: 'policy_changed' } }));
      }
      admitted = authorized;
    }

    // 10. Send through the route's upstream, and relay its answer.
    if (admitted.finished) return; // the client left while its body or the limiter was awaited
    const sent = await send(admitted);
    if (isRefusal(sent)) return admitted.refuse(sent);
    // A confirmed call's upstream asking for more input: its state sealed inside the gateway's.
    const continuing =
      admitted.forwardMethod === 'POST' ? continueConfirmed(admitted as Authorized, sent) : sent;
    const answer = continuing instanceof Promise ? await continuing : continuing;
    if (isRefusal(answer)) return admitted.refuse(answer);
    return relay(admitted, answer);
  }
}
