import type { OutgoingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import {
  type AnswerScanner,
  createJsonAnswerScanner,
  createSseAnswerScanner,
} from '../audit/answer-outcome.js';
import { refusalBody, refuse } from '../errors.js';
import type { Authenticated } from '../exchange.js';
import type { ParsedBody } from '../jsonrpc/parse.js';
import type { Metrics } from '../metrics/registry.js';
import { ANY_LIST, filterListAnswer, isFilteredList } from '../policy/filter.js';
import { DROP_UPDATE, mayReceiveUpdate, withoutDeniedUpdates } from '../policy/resource-updates.js';
import { readCapped } from '../server/body.js';
import type { Containment } from '../server/contain.js';
import { corsHeaders } from '../server/respond.js';
import type { Router } from '../server/router.js';
import type { UpstreamAnswer } from '../upstream/upstream.js';
import { clientResponseHeaders } from './headers.js';
import { type BodyKind, bodyKind, isEventStream } from './media-type.js';
import { clientSessionId } from './session-stage.js';
import type { SessionStreams } from './session-streams.js';
import type { SessionSealer } from './sessions.js';
import {
  createSseEventRewriter,
  DROP_EVENT,
  type RewriteResult,
  type SseEventRewriter,
  UnreadableEventError,
  type UnreadableReason,
} from './sse.js';
import type { AnswerLifetimes } from './stream-lifetime.js';

/**
 * How an answer the gateway must filter (a list answer, a GET stream) is read: a JSON body whole,
 * an SSE stream event by event — or refused, when it cannot be filtered: any 2xx but 200 (an
 * answer to a request is 200), an unknown media type on a 200, a `Content-Encoding` (the gateway
 * asks for `identity`; bytes it cannot decode it cannot filter). An error status with a body that
 * is neither JSON nor SSE (an HTML error page) carries no JSON-RPC answer a client would read: it
 * goes as it came. Never relayed as it came otherwise: an unfiltered list is exactly what a
 * hostile or careless upstream would slip past the policy.
 */
export function howToRead(
  status: number,
  kind: BodyKind,
  encoding: string | string[] | undefined,
): 'read-json' | 'rewrite-sse' | 'relay' | 'refuse' {
  if (
    encoding !== undefined &&
    !(typeof encoding === 'string' && encoding.trim().toLowerCase() === 'identity')
  )
    return 'refuse';
  if (status >= 200 && status < 300 && status !== 200) return 'refuse';
  if (kind === 'json') return 'read-json';
  if (kind === 'sse') return 'rewrite-sse';
  return status === 200 ? 'refuse' : 'relay';
}

/** The refusal for an answer the gateway had to read and could not. */
export function unreadableRefusal(reason: UnreadableReason): 'response_too_large' | 'upstream_rejected' {
  return reason === 'too_large' ? 'response_too_large' : 'upstream_rejected';
}

function upstreamErrorKind(reason: UnreadableReason): string {
  return reason === 'too_large' ? 'too_large' : 'bad_answer';
}

/** An answer read whole: its text, or why it could not be read. */
export type ReadAnswer = string | { readonly unreadable: 'too_large' | 'not_json' };

/**
 * Reads an upstream answer whole with the one capped reader, up to `limit` bytes; text that is not
 * UTF-8 is not JSON. An answer over the limit is dropped (its upstream request aborted).
 */
export async function readAnswer(body: Readable, limit: number): Promise<ReadAnswer> {
  let text = '';
  const read = await readCapped(body, limit, (piece) => {
    text += piece;
  });
  if (read === 'too_large') {
    discard(body);
    return { unreadable: 'too_large' };
  }
  return read === 'not_utf8' ? { unreadable: 'not_json' } : text;
}

/** Drops an upstream body the gateway will not relay; undici reports the abort as an error event. */
export function discard(body: Readable): void {
  body.once('error', () => undefined);
  body.destroy();
}

export interface AnswerRelayDeps {
  /** Seals the upstream's session id into the one the client holds. */
  readonly sessions: SessionSealer;
  /** `portcullis_active_streams` goes up here, as a stream starts; the exchange's finish takes it down. */
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Makes the stream handlers safe: an exception ends the exchange, never the process. */
  readonly contain: Containment;
  /** `limits.maxResponseBytes`: the response-size cap, and the largest answer read whole. */
  readonly maxResponseBytes: number;
  /** `limits.maxJsonDepth`: the deepest answer the gateway filters. */
  readonly maxJsonDepth: number;
  /**
   * The routes in force now (a reload swaps them): a `resources/updated` is decided under the
   * policy in force when it is delivered, not the one its stream was admitted under.
   */
  readonly router: () => Pick<Router, 'match'>;
  /** The identity each open answer's caller has now (re-authenticated at the last reload). */
  readonly lifetimes: Pick<AnswerLifetimes, 'identityOf'>;
  /** Legacy sessions' GET streams, held where the gateway tells a client something of its own. */
  readonly sessionStreams?: SessionStreams | undefined;
}

/**
 * The one module that relays an upstream's answer to the client (DESIGN.md step 10), JSON or SSE:
 * - nothing to read (the common case): the upstream's bytes go out untouched as they arrive, by
 *   `pipe`-style `data`/`write` with backpressure — no `stream.pipeline` (it allocates and aborts
 *   an AbortController per call, a measurable share of the gateway's CPU) and no copy;
 * - a list answer in JSON is read whole (capped) and filtered to what the caller may use;
 * - an SSE stream that may carry a list (a list request's answer, any GET stream) is rewritten
 *   event by event, only the list events changed;
 * - every SSE stream (a GET stream, a POST's answer, a `subscriptions/listen` stream) is read for
 *   `resources/updated`: one the caller may not read under the policy in force now is dropped
 *   (a subscription was authorized once; a reload may since have taken the access away);
 * - the response-size cap is counted as it flows: an answer declared too large never starts, one
 *   that grows past it is cut (with a JSON-RPC error event where it is SSE);
 * - what the answer says at the MCP level (`isError`, a JSON-RPC error) is scanned as it is
 *   relayed, for the audit record.
 * The exchange finishes when the response closes (or at once, when the answer was read whole).
 */
export function createAnswerRelay(
  deps: AnswerRelayDeps,
): (exchange: Authenticated, answer: UpstreamAnswer) => Promise<void> {
  return async (exchange, answer) => {
    // The client left while the upstream was answering: its exchange finished as 499.
    if (exchange.finished) return discard(answer.body);
    // A confirmed legacy call: the gateway opened its SSE answer to ask, the upstream's answer follows.
    if (exchange.res.headersSent) return relayIntoOpenStream(exchange, answer, deps);
    const contentType = answer.headers['content-type'];
    const kind = bodyKind(contentType);
    // A stream for accounting (the gauge) whatever its spelling; readable only when `kind` says so.
    const sse = kind === 'sse' || isEventStream(contentType);
    // What the gateway must read before relaying: answers to list requests (filtered to what the
    // caller may use), a GET stream, which may replay (Last-Event-ID) an earlier list answer, and
    // any SSE stream, which may carry a `resources/updated` (a JSON answer carries answers only).
    const list = exchange.body === undefined ? undefined : listRequestsOf(exchange.body);
    const lists = list !== undefined || exchange.forwardMethod === 'GET';
    // A federated server's JSON answer, checked to answer only the request routed to it.
    const mustCheck = answer.answers !== undefined && kind === 'json';
    const reading =
      lists || sse || mustCheck
        ? howToRead(answer.status, kind, answer.headers['content-encoding'])
        : 'relay';
    if (reading === 'refuse') {
      // An answer that must be filtered and cannot be is never passed through.
      exchange.upstreamError = 'bad_answer';
      exchange.refuse(refuse('upstream_rejected'));
      return discard(answer.body);
    }
    const headers = answerHeaders(exchange, answer, deps.sessions, reading !== 'relay');
    // An answer known to be too large never starts. (Admission — slots, streams, rates — was
    // decided before sending: nothing is refused here for admission reasons.)
    if (Number(answer.headers['content-length'] ?? 0) > deps.maxResponseBytes) {
      exchange.upstreamError = 'too_large';
      exchange.refuse(refuse('response_too_large'));
      return discard(answer.body);
    }
    if (sse) {
      exchange.sse = true;
      exchange.streamCounted = true;
      deps.metrics.activeStreams.inc({ route: exchange.route.path });
    }
    exchange.scanner = answerScanner(exchange.body, answer.status, kind);
    if (reading === 'read-json')
      return lists || answer.answers === undefined
        ? relayRead(exchange, answer, headers, list ?? ANY_LIST, deps)
        : relayOwnAnswer(exchange, answer, answer.answers, headers, deps);
    relayStream(exchange, answer, headers, reading === 'rewrite-sse', lists, list, deps);
  };
}

/**
 * The upstream's answer to a call whose SSE answer the gateway already opened (a legacy
 * confirmation asked on it): an SSE answer's events follow in the same stream (read for
 * `resources/updated` like any other), a JSON answer becomes one event, read whole within the
 * response-size cap. Its status and headers cannot be sent any more: an answer that is neither —
 * or not a 200 SSE — ends the stream with a JSON-RPC error event.
 */
async function relayIntoOpenStream(
  exchange: Authenticated,
  answer: UpstreamAnswer,
  deps: AnswerRelayDeps,
): Promise<void> {
  const kind = bodyKind(answer.headers['content-type']);
  const reading = howToRead(answer.status, kind, answer.headers['content-encoding']);
  if (reading === 'refuse' || reading === 'relay' || (kind === 'sse' && answer.status !== 200)) {
    exchange.upstreamError = 'bad_answer';
    exchange.refuse(refuse('upstream_rejected'));
    return discard(answer.body);
  }
  exchange.scanner = answerScanner(exchange.body, answer.status, kind);
  if (kind === 'sse') return relayStream(exchange, answer, {}, true, false, undefined, deps);
  exchange.answerBody = answer.body;
  let whole: Buffer | 'too_large';
  try {
    whole = await readBytes(answer.body, deps.maxResponseBytes);
  } catch (err) {
    if (exchange.clientGone) return;
    throw err;
  }
  if (exchange.finished) return;
  if (whole === 'too_large') {
    discard(answer.body);
    exchange.upstreamError = 'too_large';
    return exchange.refuse(refuse('response_too_large'));
  }
  const text = whole.toString('utf8');
  if (answer.answers !== undefined && answersAnother(text, answer.answers)) {
    exchange.upstreamError = 'bad_answer';
    return exchange.refuse(refuse('upstream_rejected'));
  }
  exchange.scanner?.write(whole);
  // One event: each line of the JSON its own `data:` line (an SSE reader joins them with newlines).
  exchange.res.end(`event: message\ndata: ${text.split(/\r\n|\r|\n/).join('\ndata: ')}\n\n`);
  exchange.finish();
}

/** The client's headers for an answer: the upstream's minus hop-by-hop ones, plus the gateway's. */
function answerHeaders(
  exchange: Authenticated,
  answer: UpstreamAnswer,
  sessions: SessionSealer,
  rewritten: boolean,
): OutgoingHttpHeaders {
  // The body is rewritten: the upstream's length and digests describe bytes the client never gets.
  const headers = clientResponseHeaders(answer.headers, rewritten);
  headers['x-request-id'] = exchange.requestId;
  if (exchange.limitHeaders !== undefined) Object.assign(headers, exchange.limitHeaders);
  const upstreamSession = answer.headers['mcp-session-id'];
  if (typeof upstreamSession === 'string') {
    // The client only ever sees the sealed id: route, identity and version bound to it.
    exchange.sessionId = clientSessionId(sessions, exchange, upstreamSession);
    headers['mcp-session-id'] = exchange.sessionId;
  }
  if (exchange.origin !== undefined) Object.assign(headers, corsHeaders(exchange.origin));
  return headers;
}

/**
 * A federated server's JSON answer (`answer.answers`): held whole as it came — its bytes, never
 * decoded and re-encoded — and relayed only when no response in it answers another id. Of no use
 * to the client before it is whole, it is delayed by nothing.
 */
async function relayOwnAnswer(
  exchange: Authenticated,
  answer: UpstreamAnswer,
  id: string | number,
  headers: OutgoingHttpHeaders,
  deps: AnswerRelayDeps,
): Promise<void> {
  exchange.answerBody = answer.body;
  let whole: Buffer | 'too_large';
  try {
    whole = await readBytes(answer.body, deps.maxResponseBytes);
  } catch (err) {
    // The client left and its upstream request was aborted mid-answer: finished already.
    if (exchange.clientGone) return;
    throw err;
  }
  if (exchange.finished) return;
  if (whole === 'too_large') {
    discard(answer.body);
    exchange.upstreamError = 'too_large';
    return exchange.refuse(refuse('response_too_large'));
  }
  const text = whole.toString('utf8');
  if (!(answer.answersGuard === 'lists' && listFree(text)) && answersAnother(text, id)) {
    deps.logger.warn(
      { requestId: exchange.requestId, servers: answer.servers },
      'server answered another request than the one routed to it: refused',
    );
    exchange.upstreamError = 'bad_answer';
    return exchange.refuse(refuse('upstream_rejected'));
  }
  exchange.scanner?.write(whole);
  headers['content-length'] = whole.length;
  exchange.res.writeHead(answer.status, headers);
  exchange.res.end(whole);
  exchange.finish();
}

/** A body's bytes, at most `limit` of them; rejects when it fails or closes before its end. */
function readBytes(source: Readable, limit: number): Promise<Buffer | 'too_large'> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > limit) {
        cleanup();
        resolve('too_large');
      } else chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onGone = (err?: Error): void => {
      cleanup();
      reject(err ?? new Error('stream closed before its end'));
    };
    const cleanup = (): void => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onGone);
      source.off('close', onGone);
    };
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onGone);
    source.on('close', onGone);
  });
}

/** A list answer in JSON, read whole and filtered (errors and anything not a list result pass). */
async function relayRead(
  exchange: Authenticated,
  answer: UpstreamAnswer,
  headers: OutgoingHttpHeaders,
  lists: ReadonlyMap<string | number, string>,
  deps: AnswerRelayDeps,
): Promise<void> {
  exchange.answerBody = answer.body;
  let read: ReadAnswer;
  try {
    read = await readAnswer(answer.body, deps.maxResponseBytes);
  } catch (err) {
    // The client left and its upstream request was aborted mid-answer: finished already.
    if (exchange.clientGone) return;
    throw err;
  }
  if (exchange.finished) return;
  const filtered =
    typeof read === 'string'
      ? filterListAnswer(read, lists, exchange.route.policy, exchange.identity, deps.maxJsonDepth)
      : read;
  if (typeof filtered === 'object') {
    // Never relay a list unfiltered: an answer too large, too deep or not JSON is refused.
    exchange.upstreamError = upstreamErrorKind(filtered.unreadable);
    return exchange.refuse(refuse(unreadableRefusal(filtered.unreadable)));
  }
  const relayed = filtered ?? (read as string);
  exchange.scanner?.write(Buffer.from(relayed));
  headers['content-length'] = Buffer.byteLength(relayed);
  exchange.res.writeHead(answer.status, headers);
  exchange.res.end(relayed);
  exchange.finish();
}

/**
 * Streams an answer through chunk by chunk as it arrives — SSE and JSON alike, nothing buffered —
 * rewriting SSE events when `rewrite` says so: list results when `lists` says so, and updates of
 * resources the caller may no longer read. The exchange finishes when its response closes.
 */
function relayStream(
  exchange: Authenticated,
  answer: UpstreamAnswer,
  headers: OutgoingHttpHeaders,
  rewrite: boolean,
  lists: boolean,
  list: ReadonlyMap<string | number, string> | undefined,
  deps: AnswerRelayDeps,
): void {
  const { res } = exchange;
  exchange.answerBody = answer.body;
  if (!res.headersSent) {
    res.writeHead(answer.status, headers);
    // An SSE answer's status and headers go out now, not with its first event: a stream may stay
    // silent for minutes, and clients and proxies with a headers timeout give up on it.
    if (exchange.sse) res.flushHeaders();
  }
  // List results are filtered event by event, updates the caller may not read dropped; everything
  // else flows as it came. On a GET stream the gateway no longer knows the ids of earlier list
  // requests: results are recognised by shape.
  let rewriter: SseEventRewriter | undefined;
  if (rewrite) {
    const { policy } = exchange.route;
    const updates = updateFilter(exchange, deps);
    rewriter = createSseEventRewriter(
      lists
        ? (data) => {
            const filtered = filterListAnswer(
              data,
              list ?? ANY_LIST,
              policy,
              exchange.identity,
              deps.maxJsonDepth,
            );
            if (typeof filtered === 'object') return filtered;
            return updates(filtered ?? data) ?? filtered;
          }
        : updates,
      { maxEventLength: deps.maxResponseBytes },
    );
  }
  const relay = new StreamRelay(exchange, answer.body, rewriter, list, deps);
  answer.body.once('error', relay.onUpstreamError);
  relay.start();
  // A session's GET stream: held, so that the gateway can tell the client (an approval decided).
  // Rewritten, so each relayed write ends at an event's end and the gateway's events fit between.
  if (rewriter !== undefined && exchange.forwardMethod === 'GET' && exchange.session !== undefined)
    deps.sessionStreams?.hold(exchange.route.path, exchange.session.upstreamId, res);
}

/**
 * What becomes of one event's data for the `resources/updated` it may carry: `undefined` (as it
 * came), new data (a batch without the updates the caller may not receive), or dropped. Each update
 * is decided at delivery, under the route's policy in force now and the identity its caller has
 * now (`policy/resource-updates.ts`, which decides it as a `resources/read` of its URI): after a
 * reload that took read access away the stream stays open but the updates stop. A route the
 * reload removed delivers no update (its answers are being closed). One closure per stream.
 */
function updateFilter(exchange: Authenticated, deps: AnswerRelayDeps): (data: string) => RewriteResult {
  const { route, res } = exchange;
  const mayReceive = (uri: unknown): boolean => {
    const now = deps.router().match(route.path);
    if (now === undefined) return false;
    // The policy it was admitted under, while no reload replaced it: the identity it has is then
    // the one it authenticated with.
    const identity =
      now === route ? exchange.identity : (deps.lifetimes.identityOf(res) ?? exchange.identity);
    return mayReceiveUpdate(now.policy, uri, identity);
  };
  return (data) => {
    const checked = withoutDeniedUpdates(data, mayReceive, deps.maxJsonDepth);
    if (checked !== DROP_UPDATE) return checked;
    // Debug only, no URI: a busy resource would otherwise write a line per change per subscriber.
    if (deps.logger.isLevelEnabled('debug'))
      deps.logger.debug(
        { requestId: exchange.requestId, route: route.path },
        'resource update not relayed: the caller may not read it',
      );
    return DROP_EVENT;
  };
}

/**
 * One streamed answer: the byte count against the response-size cap, backpressure, the outcome
 * scan, and the ways it ends early. Its handlers are fields built once per answer (no closure per
 * chunk) and each contains its own exceptions: they run from the upstream socket's events, where a
 * throw would end the process.
 */
class StreamRelay {
  private relayed = 0;

  constructor(
    private readonly exchange: Authenticated,
    private readonly source: Readable,
    /** Reads the SSE events on their way (in line: no stream between upstream and response). */
    private readonly rewriter: SseEventRewriter | undefined,
    private readonly list: ReadonlyMap<string | number, string> | undefined,
    private readonly deps: AnswerRelayDeps,
  ) {}

  start(): void {
    this.source.on('data', this.onData);
    this.exchange.res.on('drain', this.onDrain);
    this.source.once('end', this.onEnd);
  }

  private readonly onData = (received: Buffer | string): void => {
    try {
      let chunk: Buffer | string | undefined = received;
      if (this.rewriter !== undefined) {
        try {
          chunk = this.rewriter.write(typeof received === 'string' ? Buffer.from(received) : received);
        } catch (err) {
          // Nothing more of this answer is read: it is cut (or the exchange contained).
          this.source.off('data', this.onData);
          this.exchange.res.off('drain', this.onDrain);
          this.onRewriterError(err as Error);
          return;
        }
        if (chunk === undefined) return; // all of it held (an event not complete yet) or dropped
      }
      this.relayed += chunk.length;
      if (this.relayed > this.deps.maxResponseBytes) {
        this.source.off('data', this.onData);
        this.exchange.res.off('drain', this.onDrain);
        this.cut('response_too_large');
        return;
      }
      this.exchange.scanner?.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
      if (!this.exchange.res.write(chunk)) this.source.pause();
    } catch (err) {
      this.deps.contain.fail('relay', this.exchange, err);
    }
  };

  private readonly onDrain = (): void => {
    this.source.resume();
  };

  private readonly onEnd = (): void => {
    try {
      // Let go of the upstream body: undici 8 keeps finished requests (and so their bodies'
      // listeners) reachable for a while, and through these listeners the whole exchange — request,
      // response, parsed body — would survive young-generation collections with them (measured:
      // old-space growth and mark-compacts under load, about 10 % of the gateway's CPU).
      this.source.off('data', this.onData);
      this.source.off('error', this.onUpstreamError);
      this.source.on('error', ignore);
      this.exchange.res.off('drain', this.onDrain);
      if (!this.exchange.res.writableEnded) this.exchange.res.end();
    } catch (err) {
      this.deps.contain.fail('relay', this.exchange, err);
    }
  };

  readonly onUpstreamError = (err: Error): void => {
    try {
      const { exchange } = this;
      if (exchange.cut !== undefined) return; // destroyed on purpose by the gateway, which answered already
      if (!exchange.clientGone) {
        exchange.upstreamError = 'stream_ended';
        this.deps.logger.warn(
          { requestId: exchange.requestId, code: errorCode(err) },
          'upstream stream ended early',
        );
      }
      exchange.res.destroy();
    } catch (failure) {
      this.deps.contain.fail('stream', this.exchange, failure);
    }
  };

  private readonly onRewriterError = (err: Error): void => {
    try {
      if (!(err instanceof UnreadableEventError)) this.deps.contain.fail('stream', this.exchange, err);
      else if (!this.exchange.clientGone && this.exchange.cut === undefined)
        this.cut(unreadableRefusal(err.reason));
    } catch (failure) {
      this.deps.contain.fail('stream', this.exchange, failure);
    }
  };

  /**
   * Ends a stream the gateway will not relay further: an SSE answer with a JSON-RPC error event
   * for the list requests it carries (its status went out long ago), a JSON answer by cutting its
   * connection (it cannot carry an error after it started).
   */
  private cut(reason: 'response_too_large' | 'upstream_rejected'): void {
    const { exchange } = this;
    exchange.cut = reason;
    exchange.upstreamError = reason === 'response_too_large' ? 'too_large' : 'bad_answer';
    discard(this.source);
    if (!exchange.sse) {
      exchange.res.destroy();
      return;
    }
    const ids = this.list === undefined ? [] : Array.from(this.list.keys());
    const refusal = refuse(reason, { ids, batch: exchange.body?.batch ?? false });
    // The blank lines end whatever partial event was relayed before, so the error stands alone.
    exchange.res.end(`\n\nevent: message\ndata: ${refusalBody(refusal)}\n\n`);
  }
}

/**
 * A scanner for the MCP-level outcome of an answer to requests (not to notifications, nor a GET
 * stream): SSE event by event, or one JSON text.
 */
function answerScanner(
  body: ParsedBody | undefined,
  status: number,
  kind: BodyKind,
): AnswerScanner | undefined {
  if (body === undefined || status !== 200) return undefined;
  if (!body.messages.some((m) => m.kind === 'request')) return undefined;
  if (kind === 'sse') return createSseAnswerScanner();
  return kind === 'json' ? createJsonAnswerScanner() : undefined;
}

/** The list requests of a body (by id) whose answers are filtered; undefined when there are none. */
function listRequestsOf(body: ParsedBody): ReadonlyMap<string | number, string> | undefined {
  let lists: Map<string | number, string> | undefined;
  for (const message of body.messages) {
    if (message.kind === 'request' && isFilteredList(message.method)) {
      lists ??= new Map();
      lists.set(message.id, message.method);
    }
  }
  return lists;
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : err instanceof Error ? err.name : 'unknown';
}

/** A listener that keeps a late 'error' of a finished upstream body from being thrown. */
function ignore(): void {}

/**
 * Whether a JSON text can hold no `tools` or `prompts` field: it is ASCII, neither name (in any
 * case) ends a string in it, and no `\u` escape could spell one. Two linear regular expressions,
 * no parse.
 */
function listFree(text: string): boolean {
  // ASCII only: a non-ASCII key can fold to one (`toolſ`); such answers are parsed.
  return ASCII.test(text) && !LIST_KEY.test(text);
}

/** Printable ASCII and JSON whitespace: any other character (non-ASCII, a raw control one) takes the parsing path. */
const ASCII = /^[\t\n\r\x20-\x7e]*$/;
/** A key ending a list field's name in any case, or an escape that could spell one. */
const LIST_KEY = /tools"|prompts"|\\u/i;

/**
 * Whether a JSON text holds a response to another id than `id` (a null id answers nothing). Every
 * key a case-insensitive decoder (Go's encoding/json) would read as `id` counts, not only `id`.
 */
function answersAnother(text: string, id: string | number): boolean {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // Not JSON: no response in it the client could take for another request's.
    return false;
  }
  const messages = Array.isArray(value) ? value : [value];
  for (const message of messages) {
    if (typeof message !== 'object' || message === null || Array.isArray(message)) continue;
    const fields = message as Record<string, unknown>;
    if (fields.method !== undefined) continue;
    for (const key in fields) {
      if (key.length !== 2 || key.toLowerCase() !== 'id') continue;
      const answered = fields[key];
      if ((typeof answered === 'string' || typeof answered === 'number') && answered !== id) return true;
    }
  }
  return false;
}
