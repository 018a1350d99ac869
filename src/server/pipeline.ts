import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import {
  type AnswerScanner,
  createJsonAnswerScanner,
  createSseAnswerScanner,
} from '../audit/answer-outcome.js';
import type { Identity } from '../auth/identity.js';
import { isRefusal, REFUSALS, type Refusal, refusalBody, refuse } from '../errors.js';
import { opensSession } from '../jsonrpc/methods.js';
import type { ParsedBody } from '../jsonrpc/parse.js';
import { DEFAULT_VERSION, isModern } from '../jsonrpc/protocol-version.js';
import { parseMcpRequest, requestIds } from '../jsonrpc/request.js';
import type { Metrics } from '../metrics/registry.js';
import { authorize } from '../policy/authorize.js';
import { mirrorCanonicalName, withCanonicalUris } from '../policy/canonical-body.js';
import type { Decision } from '../policy/decide.js';
import { ANY_LIST, filterListAnswer, isFilteredList } from '../policy/filter.js';
import {
  howToRead,
  type ReadAnswer,
  readAnswer,
  unreadableRefusal,
  upstreamErrorKind,
} from '../proxy/answer-reading.js';
import { BODY_FRAMING_HEADERS, clientResponseHeaders, upstreamRequestHeaders } from '../proxy/headers.js';
import { type BodyKind, bodyKind, isEventStream } from '../proxy/media-type.js';
import { discard, relay } from '../proxy/relay.js';
import type { SessionClaims, SessionSealer } from '../proxy/sessions.js';
import { createSseRewriter, UnreadableEventError } from '../proxy/sse.js';
import type { AnswerLifetimes } from '../proxy/stream-lifetime.js';
import { type Concurrency, opensStream } from '../ratelimit/concurrency.js';
import type { Limiter, MultiDecision, Rate } from '../ratelimit/limiter.js';
import { type RuleCharge, rateLimitHeaders } from '../ratelimit/rules.js';
import type { RequestSpan, Tracing } from '../tracing/tracer.js';
import { readBody } from './body.js';
import type { ClientAddress } from './client-address.js';
import { type ContainedExchange, createContainment } from './contain.js';
import { guardRequest } from './guard.js';
import type { Outcome, RecordOutcome } from './outcome.js';
import { corsHeaders, sendMetadata, sendPreflight, sendRefusal } from './respond.js';
import type { CompiledRoute, Router } from './router.js';

/** What every request has from the start. */
interface Arrived {
  readonly requestId: string;
  readonly startedAt: number;
  /** The socket's peer, or the client a trusted proxy named in `X-Forwarded-For`. */
  readonly clientAddress: string;
  /** The connection's peer; the client itself unless a trusted proxy is in between. */
  readonly peer: string;
  /** The `X-Forwarded-For` chain received from a trusted proxy. */
  readonly forwardedFor: string | undefined;
  readonly httpMethod: string;
  /** The request's trace span, when tracing is on. */
  readonly span: RequestSpan | undefined;
  /** Set once the request's outcome is recorded: one audit record, one span end, whatever races. */
  readonly recorded: { done: boolean };
}
/** Routed and guarded (DESIGN.md steps 2–3). */
interface Received extends Arrived {
  readonly route: CompiledRoute;
  readonly httpMethod: 'POST' | 'GET' | 'DELETE';
  readonly origin: string | undefined;
}
/** Step 4 done (and the session, if any, opened): the compiler refuses to parse or forward before. */
interface Authenticated extends Received {
  readonly identity: Identity;
  /** The legacy session the request belongs to, unsealed and checked against route and identity. */
  readonly session: SessionClaims | undefined;
}
/** Step 5 done (POST only). */
interface Parsed extends Authenticated {
  readonly body: ParsedBody;
  readonly version: string;
}
/** Step 6 done: every message has its decision. */
interface Authorized extends Parsed {
  readonly decisions: readonly Decision[];
}

export interface PipelineDeps {
  readonly router: () => Router;
  readonly clientAddress: (req: IncomingMessage) => ClientAddress;
  /** Counts failed authentications per client address (`authFailures`). */
  readonly limiter: Limiter;
  readonly authFailureRate: Rate;
  readonly maxBodyBytes: number;
  /** Deepest JSON nesting of a request body, and of an upstream answer the gateway must filter (`limits.maxJsonDepth`). */
  readonly maxJsonDepth: number;
  /** Largest answer the gateway reads whole (a filtered list result). */
  readonly maxResponseBytes: number;
  /** Seals and opens legacy session ids. */
  readonly sessions: SessionSealer;
  readonly sessionMaxAgeSec: number;
  readonly concurrency: Concurrency;
  /** Holds every admitted exchange to its credential: closed at expiry or when a reload revokes it. */
  readonly lifetimes: AnswerLifetimes;
  readonly proto: 'http' | 'https';
  readonly metrics: Metrics;
  /** Writes the audit records and counts the metrics of a finished request. */
  readonly recordOutcome: RecordOutcome;
  readonly logger: Logger;
  /** True once SIGTERM started the drain: new requests on open connections are answered 503 `draining`. */
  readonly isDraining: () => boolean;
  /** OpenTelemetry, when `tracing` is configured. */
  readonly tracing?: Tracing | undefined;
}

/** Composes the request pipeline in DESIGN.md order; read `handle` top to bottom. */
export function createPipeline(deps: PipelineDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { metrics, logger } = deps;
  const contain = createContainment(logger, metrics);
  /**
   * Records a request's outcome the first time only (a client leaving can race an answer). It
   * runs inside stream and `close` handlers: an exception in it (an audit or metrics bug) is
   * logged and counted, never thrown into the event loop; the answer has gone out by then.
   */
  const recordOutcome = (outcome: Outcome & { readonly recorded: { done: boolean } }): void => {
    if (outcome.recorded.done) return;
    outcome.recorded.done = true;
    try {
      deps.recordOutcome(outcome);
    } catch (err) {
      metrics.internalErrors.inc({ where: 'outcome' });
      logger.error(
        { err, requestId: outcome.requestId, where: 'outcome' },
        'internal error: outcome not recorded',
      );
    }
  };

  return (req, res) => {
    const client = deps.clientAddress(req);
    const arrived: Arrived = {
      requestId: randomUUID(),
      startedAt: performance.now(),
      clientAddress: client.address,
      peer: client.peer,
      forwardedFor: client.forwardedFor,
      httpMethod: req.method ?? 'UNKNOWN',
      span: deps.tracing?.start(req.headers, req.method ?? 'UNKNOWN'),
      recorded: { done: false },
    };
    handle(req, res, arrived).catch((err: unknown) => {
      // Not a refusal but a bug: keep the stack, answer 500, count it.
      metrics.internalErrors.inc({ where: 'request' });
      logger.error({ err, requestId: arrived.requestId, where: 'request' }, 'request failed');
      if (!res.headersSent) refuseRequest(res, refuse('internal'), arrived, { close: true });
      else res.destroy();
    });
  };

  async function handle(req: IncomingMessage, res: ServerResponse, arrived: Arrived): Promise<void> {
    // 2. Router: exact path, nothing else; no upstream contact for anything unrouted.
    const router = deps.router();
    const route = router.match(req.url);
    if (route === undefined) {
      const metadata = router.metadata(req.url);
      if (metadata !== undefined && (req.method === 'GET' || req.method === 'HEAD')) {
        arrived.span?.end(200, 'protected resource metadata');
        return sendMetadata(res, metadata);
      }
      return refuseRequest(res, refuse('not_found'), arrived);
    }
    if (deps.isDraining()) {
      return refuseRequest(res, refuse('draining', { headers: { 'retry-after': '1' } }), arrived, {
        route,
        close: true,
      });
    }
    // 3. Guard: method, media type, framing, encoding, Origin, credentials in the query.
    const guarded = guardRequest(req, route);
    if (isRefusal(guarded)) {
      return refuseRequest(res, guarded, arrived, { route, close: guarded.reason === 'bad_framing' });
    }
    if (guarded.kind === 'preflight') {
      arrived.span?.end(204, `OPTIONS ${route.path}`);
      sendPreflight(res, guarded.origin, req.headers['access-control-request-headers']);
      return;
    }
    const received: Received = { ...arrived, route, httpMethod: guarded.method, origin: guarded.origin };

    // 4. Authenticate. An address over its failure budget is refused before any credential it
    // presents is checked. Damping guards guessable header credentials; a request without one
    // guesses nothing and costs no limiter call.
    const guessing = req.headers.authorization !== undefined || req.headers['x-api-key'] !== undefined;
    const damping = guessing
      ? await deps.limiter.peek(`auth:${received.clientAddress}`, deps.authFailureRate)
      : undefined;
    if (damping !== undefined && !damping.allowed) {
      const refusal = refuse('too_many_failures', {
        headers: { 'retry-after': String(damping.retryAfterSec) },
      });
      return refuseRequest(res, refusal, received, { route, origin: received.origin });
    }
    const attempt = route.authenticate(req);
    const identity = attempt instanceof Promise ? await attempt : attempt;
    if ('refusal' in identity) {
      // Only a presented credential that failed is a guess; a missing one is how clients discover
      // auth, and one the IdP could not check (idp_unavailable) was never judged: neither counts
      // toward damping (an IdP outage must not lock real users out with 429).
      if (identity.refusal.reason === 'invalid_credential')
        await deps.limiter.consume(`auth:${received.clientAddress}`, deps.authFailureRate);
      // The IdP's outage is counted as such (portcullis_idp_errors_total), not as the caller's failure.
      if (identity.refusal.reason !== 'idp_unavailable')
        metrics.authFailures.inc({ route: route.path, method: identity.method, reason: identity.why });
      return refuseRequest(res, identity.refusal, received, {
        route,
        origin: received.origin,
        authFailure: { method: identity.method, why: identity.why },
      });
    }
    // Sessions (DESIGN.md step 8, legacy protocol), opened here because parsing needs the version
    // they seal: the id must open, be this route's and this identity's, and not be older than
    // sessions.maxAgeSec — else 404 and nothing is forwarded.
    const session = openSession(req.headers, route.path, identity.key);
    if (isRefusal(session))
      return refuseRequest(res, session, received, { route, origin: received.origin, identity });
    const authenticated: Authenticated = { ...received, identity, session };
    // Concurrency caps (step 7, per replica), taken before the body is read so a flood of slow
    // bodies cannot exceed them: a slot per request in flight, and per GET stream.
    const slot = deps.concurrency.request(identity.key);
    const streamSlot =
      slot !== undefined && received.httpMethod === 'GET' ? deps.concurrency.stream(identity.key) : null;
    if (slot === undefined || streamSlot === undefined) {
      slot?.();
      const refusal = refuse('concurrency_limited', { headers: { 'retry-after': '1' } });
      return refuseRequest(res, refusal, received, { route, origin: received.origin, identity });
    }
    res.once(
      'close',
      contain.wrap('close', { requestId: received.requestId, res }, () => {
        slot();
        streamSlot?.();
      }),
    );
    // The client may have left while its credential was checked: that 'close' is past, and the
    // slots just taken would never be freed.
    if (res.destroyed || req.socket.destroyed) {
      slot();
      streamSlot?.();
      return recordOutcome({
        ...authenticated,
        route: route.path,
        session: undefined,
        body: undefined,
        status: 499,
        upstreamStatus: null,
        decision: 'error',
      });
    }
    deps.lifetimes.hold({ req, res, route: route.path, policy: route, identity });
    if (authenticated.httpMethod !== 'POST') return forward(req, res, authenticated, undefined);

    // 5. Parse: the forwarded body is the parsed message re-serialized; modern headers checked.
    const refusalContext = { route, origin: received.origin, identity };
    // The strict-JSON scan (depth, keys, numbers) runs on each chunk as it arrives.
    const text = await readBody(req, deps.maxBodyBytes, deps.maxJsonDepth);
    if (isRefusal(text)) {
      return refuseRequest(res, text, authenticated, {
        ...refusalContext,
        close: text.reason === 'body_too_large',
      });
    }
    let request = parseMcpRequest(text, req.headers, session?.version);
    if ('refusal' in request) {
      return refuseRequest(res, request.refusal, authenticated, { ...refusalContext, body: request.body });
    }
    // 6. Authorize every message from the parsed body alone.
    const authorization = authorize(route.policy, request.body, identity, {
      modern: isModern(request.version),
      resourceMetadata: route.resourceMetadata,
    });
    // The canonical resource URIs policy matched are what is forwarded and audited, never the client's spelling.
    request = withCanonicalUris(request, authorization.decisions);
    if (authorization.refusal !== undefined) {
      return refuseRequest(res, authorization.refusal, authenticated, {
        ...refusalContext,
        body: request.body,
        decisions: authorization.decisions,
      });
    }
    // A `subscriptions/listen` answer is a stream: its stream slot is reserved here, before anything
    // is forwarded (never after the upstream ran the call), and before any rate token is charged.
    if (opensStream(request.body.messages)) {
      const listenSlot = deps.concurrency.stream(identity.key);
      if (listenSlot === undefined) {
        const refusal = refuse('concurrency_limited', { headers: { 'retry-after': '1' } });
        return refuseRequest(res, refusal, authenticated, {
          ...refusalContext,
          body: request.body,
          decisions: authorization.decisions,
        });
      }
      res.once('close', contain.wrap('close', { requestId: received.requestId, res }, listenSlot));
      if (res.destroyed) listenSlot(); // its 'close' may be past: give the slot back now
    }
    // 7. Rate limits: every rule the request matches, charged together; a refusal charges nothing.
    const charges = route.rateLimits(request.body.messages, {
      identity: identity.key,
      client: received.clientAddress,
    });
    let limitHeaders: Record<string, string> | undefined;
    if (charges.length > 0) {
      const verdict = await deps.limiter.consumeAll(charges);
      if (verdict.degraded && route.config.failMode === 'closed') {
        // The shared limiter cannot answer and this route would rather refuse than run unlimited.
        const refusal = refuse('limiter_unavailable', {
          ids: requestIds(request.body),
          batch: request.body.batch,
          headers: { 'retry-after': '1' },
        });
        return refuseRequest(res, refusal, authenticated, {
          ...refusalContext,
          body: request.body,
          decisions: authorization.decisions,
        });
      }
      // Let through on the per-replica fallback: counted, so a Redis outage shows on a dashboard.
      if (verdict.degraded && verdict.allowed) metrics.failOpen.inc({ route: route.path });
      limitHeaders = rateLimitHeaders(charges, verdict.remaining, verdict.resetSec);
      if (!verdict.allowed) {
        const refusal = rateLimited(
          charges,
          verdict,
          limitHeaders,
          requestIds(request.body),
          request.body.batch,
        );
        return refuseRequest(res, refusal, authenticated, {
          ...refusalContext,
          body: request.body,
          decisions: authorization.decisions,
        });
      }
    }
    return forward(
      req,
      res,
      authenticated,
      { ...authenticated, ...request, decisions: authorization.decisions },
      limitHeaders,
    );
  }

  // 9. Forward and stream back.
  async function forward(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: Authenticated,
    parsed: Authorized | undefined,
    limitHeaders?: Record<string, string>,
  ): Promise<void> {
    const { route } = ctx;
    const body = parsed?.body;
    // The sealed id the client holds: the one it sent, or the one this answer issues.
    let session = ctx.session === undefined ? undefined : (req.headers['mcp-session-id'] as string);
    // A client that left before its answer began is still audited: status 499 (nothing was sent).
    const recordGone = (upstreamStatus: number | null) =>
      recordOutcome({
        ...ctx,
        route: route.path,
        body,
        decisions: parsed?.decisions,
        status: 499,
        upstreamStatus,
        decision: 'allow',
        session,
      });
    // The client may have left while the limiter or the body was awaited: its 'close' has passed,
    // so nothing below would notice. Such a call is not forwarded.
    if (res.destroyed || req.socket.destroyed) return recordGone(null);
    // A client that goes away aborts its upstream request: no leaked sockets or upstream work.
    // An EventEmitter is undici's cheaper alternative to an AbortSignal on the hot path.
    const cancel = new EventEmitter();
    const exchange: ContainedExchange = { requestId: ctx.requestId, res };
    let clientGone = false;
    let streaming: { readonly body: Readable; readonly done: () => void } | undefined;
    res.once(
      'close',
      contain.wrap('close', exchange, () => {
        if (!res.writableEnded) {
          clientGone = true;
          cancel.emit('abort');
        }
        if (streaming === undefined) return;
        if (!streaming.body.readableEnded) streaming.body.destroy();
        streaming.done();
      }),
    );
    /** Refuses after asking the upstream — or, with the client gone, records that it left. */
    const refuseForwarded = (refusal: Refusal, upstreamStatus: number | null) => {
      if (clientGone) return recordGone(upstreamStatus);
      refuseRequest(res, refusal, ctx, {
        route,
        origin: ctx.origin,
        identity: ctx.identity,
        body,
        decisions: parsed?.decisions,
        session,
        ...(upstreamStatus === null ? {} : { upstreamStatus }),
      });
    };
    const upstreamHeaders = upstreamRequestHeaders(req.headers, route.upstreamHeaders, {
      peer: ctx.peer,
      ...(ctx.forwardedFor === undefined ? {} : { forwardedFor: ctx.forwardedFor }),
      proto: deps.proto,
      ...(ctx.session === undefined ? {} : { sessionId: ctx.session.upstreamId }),
    });
    if (parsed !== undefined) mirrorCanonicalName(upstreamHeaders, parsed.body, parsed.decisions);
    // The upstream's trace continues the gateway's span.
    ctx.span?.inject(upstreamHeaders);
    const forwardedAt = performance.now();
    const answer = await route.forwarder.forward({
      method: ctx.httpMethod,
      headers: upstreamHeaders,
      ...(body ? { body: body.forward } : {}),
      signal: cancel,
    });
    if (isRefusal(answer)) {
      metrics.upstreamErrors.inc({
        route: route.path,
        kind: UPSTREAM_ERROR_KIND[answer.reason] ?? answer.reason,
      });
      return refuseForwarded(answer, null);
    }
    metrics.upstreamDuration.observe({ route: route.path }, (performance.now() - forwardedAt) / 1000);
    const kind = bodyKind(answer.headers['content-type']);
    // A stream for accounting (slots, gauge) whatever its spelling; readable only when `kind` says so.
    const sse = kind === 'sse' || isEventStream(answer.headers['content-type']);
    // What the gateway must read before relaying: answers to list requests (filtered to what the
    // caller may use), and a GET stream, which may replay (Last-Event-ID) an earlier list answer.
    const list = parsed === undefined ? undefined : listRequestsOf(parsed);
    const mustFilter = list !== undefined || ctx.httpMethod === 'GET';
    const reading = mustFilter ? howToRead(answer.status, kind, answer.headers['content-encoding']) : 'relay';
    if (reading === 'refuse') {
      // An answer that must be filtered and cannot be is never passed through.
      metrics.upstreamErrors.inc({ route: route.path, kind: 'bad_answer' });
      refuseForwarded(refuse('upstream_rejected'), answer.status);
      discard(answer.body);
      return;
    }
    const headers = clientResponseHeaders(answer.headers);
    // The body is rewritten: the upstream's length and digests describe bytes the client never gets.
    if (reading !== 'relay') for (const name of BODY_FRAMING_HEADERS) delete headers[name];
    headers['x-request-id'] = ctx.requestId;
    if (limitHeaders !== undefined) Object.assign(headers, limitHeaders);
    const upstreamSession = answer.headers['mcp-session-id'];
    if (typeof upstreamSession === 'string' && upstreamSession === ctx.session?.upstreamId) {
      // The session the client is in: it keeps the id it holds (stable for the client and the
      // audit trail; sessions.maxAgeSec counts from when it was opened).
      headers['mcp-session-id'] = session as string;
    } else if (typeof upstreamSession === 'string') {
      // The client only ever sees the sealed id: route, identity and version bound to it.
      session = deps.sessions.seal({
        upstreamId: upstreamSession,
        route: route.path,
        identity: ctx.identity.key,
        version: ctx.session?.version ?? negotiatedVersion(parsed),
        issuedAt: Math.floor(Date.now() / 1000),
      });
      headers['mcp-session-id'] = session;
    }
    if (ctx.origin !== undefined) Object.assign(headers, corsHeaders(ctx.origin));
    const declared = Number(answer.headers['content-length'] ?? 0);
    // An answer known to be too large never starts. (Admission — slots, streams, rates — was
    // decided before forwarding: nothing is refused here for admission reasons.)
    if (declared > deps.maxResponseBytes) {
      refuseForwarded(refuse('response_too_large'), answer.status);
      metrics.upstreamErrors.inc({ route: route.path, kind: 'too_large' });
      discard(answer.body);
      return;
    }
    if (sse) metrics.activeStreams.inc({ route: route.path });
    // What the answer says at the MCP level (isError, a JSON-RPC error), read as it is relayed.
    const scanner = answerScanner(parsed, answer.status, kind);
    const answered = () =>
      recordOutcome({
        ...ctx,
        route: route.path,
        body,
        decisions: parsed?.decisions,
        status: res.statusCode,
        upstreamStatus: answer.status,
        decision: 'allow',
        session,
        answers: scanner?.end(),
        sse,
      });
    if (reading === 'read-json') {
      // A list answer in JSON is read whole and filtered (errors and anything not a list result pass).
      let read: ReadAnswer;
      try {
        read = await readAnswer(answer.body, deps.maxResponseBytes);
      } catch (err) {
        // The client left and its upstream request was aborted mid-answer.
        if (clientGone) return recordGone(answer.status);
        throw err;
      }
      if (clientGone) return recordGone(answer.status);
      const filtered =
        typeof read === 'string'
          ? filterListAnswer(read, list ?? ANY_LIST, route.policy, ctx.identity, deps.maxJsonDepth)
          : { unreadable: read.unreadable };
      if (typeof filtered === 'object') {
        // Never relay a list unfiltered: an answer too large, too deep or not JSON is refused.
        metrics.upstreamErrors.inc({ route: route.path, kind: upstreamErrorKind(filtered.unreadable) });
        return refuseForwarded(refuse(unreadableRefusal(filtered.unreadable)), answer.status);
      }
      const relayed = filtered ?? (read as string);
      scanner?.write(Buffer.from(relayed));
      headers['content-length'] = Buffer.byteLength(relayed);
      res.writeHead(answer.status, headers);
      res.end(relayed);
      answered();
      return;
    }
    streaming = {
      body: answer.body,
      done: () => {
        if (sse) metrics.activeStreams.dec({ route: route.path });
        answered();
      },
    };
    res.writeHead(answer.status, headers);
    // An SSE answer's status and headers go out now, not with its first event: a stream may stay
    // silent for minutes, and clients and proxies with a headers timeout give up on it.
    if (sse) res.flushHeaders();
    // SSE and JSON alike stream through chunk by chunk as they arrive; nothing is buffered.
    // `pipe` rather than `stream.pipeline`: pipeline allocates and aborts an AbortController per
    // call (a DOMException with a stack), a measurable share of the gateway's CPU per request.
    let cut = false;
    /**
     * Ends a stream the gateway will not relay further: an SSE answer with a JSON-RPC error event
     * for the list requests it carries (its status went out long ago), a JSON answer by cutting
     * its connection (it cannot carry an error after it started).
     */
    const endWith = (reason: 'response_too_large' | 'upstream_rejected') => {
      cut = true;
      metrics.refusals.inc({ route: route.path, reason });
      metrics.upstreamErrors.inc({
        route: route.path,
        kind: reason === 'response_too_large' ? 'too_large' : 'bad_answer',
      });
      discard(answer.body);
      if (!sse) return res.destroy();
      const ids = list === undefined ? [] : Array.from(list.keys());
      const refusal = refuse(reason, { ids, batch: parsed?.body.batch ?? false });
      // The blank lines end whatever partial event was relayed before, so the error stands alone.
      res.end(`\n\nevent: message\ndata: ${refusalBody(refusal)}\n\n`);
    };
    answer.body.once(
      'error',
      contain.wrap('stream', exchange, (err: Error) => {
        if (cut) return; // destroyed on purpose by the gateway, which answered already
        if (!clientGone) {
          metrics.upstreamErrors.inc({ route: route.path, kind: 'stream_ended' });
          logger.warn({ requestId: ctx.requestId, code: errorCode(err) }, 'upstream stream ended early');
        }
        res.destroy();
      }),
    );
    // List results are filtered event by event; everything else flows as it came. On a GET stream
    // the gateway no longer knows the ids of earlier list requests: results are recognised by shape.
    let source: Readable = answer.body;
    if (reading === 'rewrite-sse') {
      const rewriter = createSseRewriter(
        (data) => filterListAnswer(data, list ?? ANY_LIST, route.policy, ctx.identity, deps.maxJsonDepth),
        { maxEventLength: deps.maxResponseBytes },
      );
      rewriter.once(
        'error',
        contain.wrap('stream', exchange, (err: Error) => {
          if (!(err instanceof UnreadableEventError)) return contain.fail('stream', exchange, err);
          if (clientGone || cut) return;
          endWith(unreadableRefusal(err.reason));
        }),
      );
      source = answer.body.pipe(rewriter);
    }
    // The response-size cap, counted as it flows: a stream that grows past it is cut, with a
    // JSON-RPC error event where the answer is SSE.
    relay(
      source,
      res,
      deps.maxResponseBytes,
      scanner,
      () => endWith('response_too_large'),
      (fn) => contain.wrap('relay', exchange, fn),
    );
  }

  function openSession(
    headers: IncomingMessage['headers'],
    route: string,
    identityKey: string,
  ): SessionClaims | undefined | Refusal {
    const sealed = headers['mcp-session-id'];
    if (typeof sealed !== 'string') return undefined;
    // 2026-07-28 has no sessions: a modern request's session header is ignored (and not forwarded).
    const version = headers['mcp-protocol-version'];
    if (typeof version === 'string' && isModern(version)) return undefined;
    const claims = deps.sessions.open(sealed);
    const fresh = claims !== undefined && Date.now() / 1000 - claims.issuedAt <= deps.sessionMaxAgeSec;
    if (!fresh || claims.route !== route || claims.identity !== identityKey)
      return refuse('session_not_found');
    return claims;
  }

  /** Answers a refusal (the request's ids, CORS for an accepted origin) and records it. */
  function refuseRequest(
    res: ServerResponse,
    refusal: Refusal,
    ctx: Arrived,
    opts: {
      readonly route?: CompiledRoute;
      readonly origin?: string | undefined;
      readonly identity?: Identity;
      readonly body?: ParsedBody | undefined;
      readonly decisions?: readonly Decision[] | undefined;
      readonly close?: boolean;
      readonly session?: string | undefined;
      readonly authFailure?: Outcome['authFailure'];
      /** The upstream's status when it answered and the gateway refused to relay the answer. */
      readonly upstreamStatus?: number;
    } = {},
  ): void {
    const { body } = opts;
    // A refusal decided without the body at hand (upstream failures) still answers the request's ids.
    const answer =
      refusal.ids.length === 0 && body ? { ...refusal, ids: requestIds(body), batch: body.batch } : refusal;
    sendRefusal(res, answer, { requestId: ctx.requestId, origin: opts.origin, close: opts.close ?? false });
    const spec = REFUSALS[refusal.reason];
    recordOutcome({
      ...ctx,
      route: opts.route?.path ?? null,
      identity: opts.identity ?? null,
      body,
      decisions: opts.decisions,
      status: spec.status,
      upstreamStatus: opts.upstreamStatus ?? null,
      decision: spec.decision,
      reason: refusal.reason,
      authFailure: opts.authFailure,
      session: opts.session,
    });
  }
}

/**
 * 429 `rate_limited`: `Retry-After`, the IETF headers, and a JSON-RPC error an agent can act on —
 * which limit, and when to retry.
 */
function rateLimited(
  charges: readonly RuleCharge[],
  verdict: MultiDecision,
  limitHeaders: Record<string, string>,
  ids: (string | number)[],
  batch: boolean,
): Refusal {
  let refusedAt = 0;
  verdict.resetSec.forEach((reset, i) => {
    if (verdict.remaining[i] === 0 && reset >= (verdict.resetSec[refusedAt] ?? 0)) refusedAt = i;
  });
  const rule = charges[refusedAt]?.rule;
  return refuse('rate_limited', {
    ids,
    batch,
    headers: { 'retry-after': String(verdict.retryAfterSec), ...limitHeaders },
    data: { limit: rule?.limit, per: rule?.per, retryAfterSec: verdict.retryAfterSec },
  });
}

/** Upstream failures as `portcullis_upstream_errors_total` names them. */
const UPSTREAM_ERROR_KIND: Partial<Record<string, string>> = {
  upstream_unreachable: 'unreachable',
  upstream_timeout: 'timeout',
  upstream_rejected: 'bad_answer',
};

/**
 * A scanner for the MCP-level outcome of an answer to requests (not to notifications, nor a GET
 * stream): SSE event by event, or one JSON text.
 */
function answerScanner(
  parsed: Authorized | undefined,
  status: number,
  kind: BodyKind,
): AnswerScanner | undefined {
  if (parsed === undefined || status !== 200) return undefined;
  if (!parsed.body.messages.some((m) => m.kind === 'request')) return undefined;
  if (kind === 'sse') return createSseAnswerScanner();
  return kind === 'json' ? createJsonAnswerScanner() : undefined;
}

/** The list requests of a body (by id) whose answers are filtered; undefined when there are none. */
function listRequestsOf(parsed: Parsed): ReadonlyMap<string | number, string> | undefined {
  let lists: Map<string | number, string> | undefined;
  for (const message of parsed.body.messages) {
    if (message.kind === 'request' && isFilteredList(message.method)) {
      lists ??= new Map();
      lists.set(message.id, message.method);
    }
  }
  return lists;
}

/** The version an `initialize` asked for (the session's version from then on), else the request's. */
function negotiatedVersion(parsed: Parsed | undefined): string {
  const [first] = parsed?.body.messages ?? [];
  const asked =
    first?.kind === 'request' && opensSession(first.method) ? first.params?.protocolVersion : undefined;
  return typeof asked === 'string' ? asked : (parsed?.version ?? DEFAULT_VERSION);
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown';
}
