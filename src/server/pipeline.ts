import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream';
import type { Logger } from 'pino';
import type { AuditRecord, AuditStream } from '../audit/stream.js';
import type { Identity } from '../auth/identity.js';
import { isRefusal, REFUSALS, type Refusal, refuse } from '../errors.js';
import { checkMirroredHeaders } from '../jsonrpc/mirrored-headers.js';
import { type ParsedBody, parseJsonRpc, type RpcMessage } from '../jsonrpc/parse.js';
import {
  BATCH_VERSION,
  DEFAULT_VERSION,
  isModern,
  PROTOCOL_VERSION_META,
} from '../jsonrpc/protocol-version.js';
import { type Metrics, methodLabel } from '../metrics/registry.js';
import { clientResponseHeaders, upstreamRequestHeaders } from '../proxy/headers.js';
import { readBody } from './body.js';
import { guardRequest } from './guard.js';
import { corsHeaders, sendPreflight, sendRefusal } from './respond.js';
import type { CompiledRoute, Router } from './router.js';

/** What the gateway knows once a request has been routed and guarded (DESIGN.md steps 1–3). */
interface Received {
  readonly requestId: string;
  readonly startedAt: number;
  readonly route: CompiledRoute;
  readonly clientAddress: string;
  readonly httpMethod: 'POST' | 'GET' | 'DELETE';
  readonly origin: string | undefined;
}
/** Step 4 done: the compiler refuses to parse or forward before authentication. */
interface Authenticated extends Received {
  readonly identity: Identity;
}
/** Step 5 done (POST only). */
interface Parsed extends Authenticated {
  readonly body: ParsedBody;
  readonly version: string;
}

/** Shared, process-wide state the pipeline reads: draining and the requests in flight. */
export interface GatewayState {
  draining: boolean;
  readonly inflight: Set<ServerResponse>;
}

export interface PipelineDeps {
  readonly router: () => Router;
  readonly maxBodyBytes: number;
  readonly proto: 'http' | 'https';
  readonly metrics: Metrics;
  readonly audit: AuditStream;
  readonly logger: Logger;
  readonly state: GatewayState;
}

/** Composes the request pipeline in DESIGN.md order; read it top to bottom. */
export function createPipeline(deps: PipelineDeps): (req: IncomingMessage, res: ServerResponse) => void {
  const { metrics, audit, logger, state } = deps;

  return (req, res) => {
    const requestId = randomUUID();
    const startedAt = performance.now();
    state.inflight.add(res);
    res.once('close', () => state.inflight.delete(res));
    handle(req, res, requestId, startedAt).catch((err: unknown) => {
      logger.error({ err, requestId }, 'request failed');
      if (!res.headersSent) sendRefusal(res, refuse('internal'), { requestId, close: true });
      else res.destroy();
    });
  };

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    requestId: string,
    startedAt: number,
  ): Promise<void> {
    const clientAddress = req.socket.remoteAddress ?? 'unknown';
    // 2. Router: exact path, nothing else; no upstream contact for anything unrouted.
    const route = deps.router().match(req.url);
    if (route === undefined) {
      return refuseEarly(res, refuse('not_found'), { requestId, startedAt, clientAddress, req, route: null });
    }
    if (state.draining) {
      return refuseEarly(res, refuse('draining', { headers: { 'retry-after': '1' } }), {
        requestId,
        startedAt,
        clientAddress,
        req,
        route: route.path,
        close: true,
      });
    }
    // 3. Guard: method, media type, framing, encoding, Origin, credentials in the query.
    const guarded = guardRequest(req, route);
    if (isRefusal(guarded)) {
      const close = guarded.reason === 'bad_framing';
      return refuseEarly(res, guarded, {
        requestId,
        startedAt,
        clientAddress,
        req,
        route: route.path,
        close,
      });
    }
    if (guarded.kind === 'preflight') {
      sendPreflight(res, guarded.origin, req.headers['access-control-request-headers']);
      return;
    }
    const received: Received = {
      requestId,
      startedAt,
      route,
      clientAddress,
      httpMethod: guarded.method,
      origin: guarded.origin,
    };
    // 4. Authenticate.
    const identity = route.authenticate(req.headers);
    if (isRefusal(identity)) return refuseReceived(res, received, identity, null);
    const authenticated: Authenticated = { ...received, identity };
    if (authenticated.httpMethod !== 'POST') return forward(req, res, authenticated, undefined);

    // 5. Parse: the forwarded body is the parsed message re-serialized.
    const text = await readBody(req, deps.maxBodyBytes);
    if (isRefusal(text))
      return refuseReceived(
        res,
        authenticated,
        text,
        authenticated.identity,
        text.reason === 'body_too_large',
      );
    const parsed = parse(text, req, authenticated);
    if (isRefusal(parsed.result)) {
      return refuseReceived(res, authenticated, parsed.result, identity, false, parsed.body);
    }
    // 6–8 (policy, limits, sessions) plug in here in later issues.
    return forward(req, res, authenticated, parsed.result);
  }

  function parse(
    text: string,
    req: IncomingMessage,
    ctx: Authenticated,
  ): { result: Parsed | Refusal; body?: ParsedBody } {
    const header = req.headers['mcp-protocol-version'];
    const version = typeof header === 'string' && header !== '' ? header : DEFAULT_VERSION;
    const body = parseJsonRpc(text, { allowBatch: version === BATCH_VERSION });
    if (isRefusal(body)) return { result: body };
    if (isModern(version)) {
      for (const message of body.messages) {
        const mismatch = checkMirroredHeaders(message, req.headers, version);
        if (mismatch) return { result: mismatch, body };
      }
    } else if (header === undefined && body.messages.some(claimsModernVersion)) {
      // A modern body without its header: an intermediary routing by header would see another version.
      const ids = body.messages.flatMap((m) => (m.kind === 'notification' ? [] : [m.id]));
      return { result: refuse('header_mismatch', { ids }), body };
    }
    return { result: { ...ctx, body, version }, body };
  }

  async function forward(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: Authenticated,
    parsed: Parsed | undefined,
  ): Promise<void> {
    const { route } = ctx;
    // 9. A client that goes away aborts its upstream request: no leaked sockets or upstream work.
    // An EventEmitter is undici's cheaper alternative to an AbortSignal on the hot path.
    const cancel = new EventEmitter();
    let clientGone = false;
    let onDone: (() => void) | undefined;
    res.once('close', () => {
      if (!res.writableEnded) {
        clientGone = true;
        cancel.emit('abort');
      }
      onDone?.();
    });
    const answer = await route.forwarder.forward({
      method: ctx.httpMethod,
      headers: upstreamRequestHeaders(req.headers, route.upstreamHeaders, {
        clientAddress: ctx.clientAddress,
        proto: deps.proto,
      }),
      ...(parsed ? { body: parsed.body.forward } : {}),
      signal: cancel,
    });
    if (isRefusal(answer)) {
      if (clientGone) return; // nobody left to answer
      return refuseReceived(res, ctx, answer, ctx.identity, false, parsed?.body);
    }
    const headers = clientResponseHeaders(answer.headers);
    headers['x-request-id'] = ctx.requestId;
    if (ctx.origin !== undefined) Object.assign(headers, corsHeaders(ctx.origin));
    const contentType = answer.headers['content-type'];
    const sse = typeof contentType === 'string' && contentType.startsWith('text/event-stream');
    if (sse) metrics.activeStreams.inc({ route: route.path });
    onDone = () => {
      if (sse) metrics.activeStreams.dec({ route: route.path });
      record(ctx, parsed?.body, res.statusCode, answer.status, sse);
    };
    res.writeHead(answer.status, headers);
    // SSE and JSON alike stream through chunk by chunk as they arrive; nothing is buffered.
    pipeline(answer.body, res, (err) => {
      if (err && !clientGone)
        logger.warn({ requestId: ctx.requestId, code: errorCode(err) }, 'upstream stream ended early');
    });
  }

  /** A refusal before authentication: no identity, no parsed body. */
  function refuseEarly(
    res: ServerResponse,
    refusal: Refusal,
    ctx: {
      requestId: string;
      startedAt: number;
      clientAddress: string;
      req: IncomingMessage;
      route: string | null;
      close?: boolean;
    },
  ): void {
    sendRefusal(res, refusal, { requestId: ctx.requestId, close: ctx.close ?? false });
    const status = REFUSALS[refusal.reason].status;
    const httpMethod = ctx.req.method ?? 'UNKNOWN';
    writeAudit({
      time: new Date().toISOString(),
      requestId: ctx.requestId,
      route: ctx.route,
      clientAddress: ctx.clientAddress,
      identity: null,
      httpMethod,
      method: null,
      decision: REFUSALS[refusal.reason].decision,
      reason: refusal.reason,
      upstreamStatus: null,
      status,
      durationMs: elapsed(ctx.startedAt),
    });
    const route = ctx.route ?? 'none';
    metrics.requests.inc({ route, method: methodLabel(httpMethod === 'POST' ? 'none' : httpMethod), status });
    metrics.refusals.inc({ route, reason: refusal.reason });
  }

  function refuseReceived(
    res: ServerResponse,
    ctx: Received,
    refusal: Refusal,
    identity: Identity | null,
    close = false,
    body?: ParsedBody,
  ): void {
    // A refusal decided without the body at hand (upstream failures) still answers the request's ids.
    const answer =
      refusal.ids.length === 0 && body ? { ...refusal, ids: requestIds(body), batch: body.batch } : refusal;
    sendRefusal(res, answer, { requestId: ctx.requestId, origin: ctx.origin, close });
    const status = REFUSALS[refusal.reason].status;
    const decision = REFUSALS[refusal.reason].decision;
    const base = baseRecord(ctx, identity, status, null);
    const messages = body?.messages ?? [];
    if (messages.length === 0) writeAudit({ ...base, method: null, decision, reason: refusal.reason });
    for (const message of messages)
      writeAudit({ ...base, ...describe(message), decision, reason: refusal.reason });
    metrics.requests.inc({ route: ctx.route.path, method: methodOf(ctx, body), status });
    metrics.refusals.inc({ route: ctx.route.path, reason: refusal.reason });
  }

  function record(
    ctx: Authenticated,
    body: ParsedBody | undefined,
    status: number,
    upstreamStatus: number,
    sse: boolean,
  ): void {
    const base = baseRecord(ctx, ctx.identity, status, upstreamStatus);
    if (body === undefined) writeAudit({ ...base, method: null, decision: 'allow' });
    else
      for (const message of body.messages) writeAudit({ ...base, ...describe(message), decision: 'allow' });
    metrics.requests.inc({ route: ctx.route.path, method: methodOf(ctx, body), status });
    if (!sse) metrics.requestDuration.observe({ route: ctx.route.path }, elapsed(ctx.startedAt) / 1000);
  }

  function baseRecord(
    ctx: Received,
    identity: Identity | null,
    status: number,
    upstreamStatus: number | null,
  ) {
    return {
      time: new Date().toISOString(),
      requestId: ctx.requestId,
      route: ctx.route.path,
      clientAddress: ctx.clientAddress,
      identity: identity?.key ?? null,
      httpMethod: ctx.httpMethod,
      upstreamStatus,
      status,
      durationMs: elapsed(ctx.startedAt),
    };
  }

  function writeAudit(entry: AuditRecord): void {
    audit.write(entry);
  }
}

function describe(message: RpcMessage): Pick<AuditRecord, 'method' | 'id' | 'tool'> {
  if (message.kind === 'response') return { method: null, id: message.id };
  const tool = message.method === 'tools/call' ? message.params?.name : undefined;
  return {
    method: message.method,
    ...(message.kind === 'request' ? { id: message.id } : {}),
    ...(typeof tool === 'string' ? { tool } : {}),
  };
}

function requestIds(body: ParsedBody): (string | number)[] {
  return body.messages.flatMap((m) => (m.kind === 'request' ? [m.id] : []));
}

function methodOf(ctx: Received, body: ParsedBody | undefined): string {
  if (body === undefined) return ctx.httpMethod === 'POST' ? 'none' : ctx.httpMethod;
  if (body.batch) return 'batch';
  const first = body.messages[0];
  return methodLabel(first === undefined || first.kind === 'response' ? 'response' : first.method);
}

function claimsModernVersion(message: RpcMessage): boolean {
  if (message.kind === 'response') return false;
  const meta = message.params?._meta;
  const version =
    typeof meta === 'object' && meta !== null
      ? (meta as Record<string, unknown>)[PROTOCOL_VERSION_META]
      : undefined;
  return typeof version === 'string' && isModern(version);
}

function elapsed(startedAt: number): number {
  return Math.round((performance.now() - startedAt) * 1000) / 1000;
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown';
}
