import type { Logger } from 'pino';
import type { Identity } from '../../auth/identity.js';
import { Cancellation } from '../../cancellation.js';
import type { ServerConfig } from '../../config/schema.js';
import type { UpstreamTarget } from '../../config/upstreams.js';
import { isRefusal, type Refusal, refuse } from '../../errors.js';
import { DISCOVER, INITIALIZE, INITIALIZED_NOTIFICATION, mirroredNameOf } from '../../jsonrpc/methods.js';
import { isModern, LEGACY_VERSION, LEGACY_VERSIONS, MODERN_VERSION } from '../../jsonrpc/protocol-version.js';
import type { Metrics } from '../../metrics/registry.js';
import { compileGlob, type Glob } from '../../policy/glob.js';
import { GATEWAY_CAPABILITIES, GATEWAY_CLIENT_INFO, modernMeta } from '../gateway-client.js';
import type { Upstream, UpstreamAnswer, UpstreamRequest } from '../upstream.js';
import { type MemberMessage, readMemberMessages, type Unreadable } from './answers.js';

/** How the gateway speaks to one server for one request: the version, and its session there if any. */
export interface Link {
  readonly version: string;
  /** The server's own `Mcp-Session-Id` (an HTTP server's), or the gateway's local session (stdio). */
  readonly id: string | undefined;
  /**
   * When client and server speak different generations (DESIGN.md's era table, for HTTP servers):
   * `toLegacy` — a 2026-07-28 caller of a 2025-era server, through a session the gateway opened for
   * the caller's identity; `toModern` — a 2025-era client of a server that speaks only 2026-07-28,
   * each request carrying the `_meta` protocol fields and mirrored headers the gateway adds.
   */
  readonly translate: 'none' | 'toLegacy' | 'toModern';
}

/** Why a server is left out of an answer (logged, counted; fails the request when it is `required`). */
export type Failure = Unreadable | 'error' | 'timeout' | 'unreachable' | 'session_ended' | 'absent';

export interface MemberDeps {
  readonly logger: Logger;
  readonly metrics?: Metrics | undefined;
  /** `limits.maxResponseBytes`: the most read of one server's answer. */
  readonly maxResponseBytes: number;
  /** `limits.maxJsonDepth`: the deepest server answer read. */
  readonly maxJsonDepth: number;
}

/** What one server's answer to one request said: its response message, or why there is none. */
export type Asked = { readonly message: MemberMessage } | Failed;
/** Why a server gave no answer, and the refusal it made if it made one. */
export interface Failed {
  readonly failure: Failure;
  readonly refusal?: Refusal;
}

/** The most caller identities one 2025-era HTTP server holds a session for, for 2026-07-28 clients. */
const MAX_IDENTITY_LINKS = 1024;
/** How long an HTTP server's protocol generation is trusted before it is asked again. */
const ERA_TTL_MS = 5 * 60_000;

/** Request headers never passed to a server as the client sent them (the session id is the server's own). */
const NOT_FORWARDED: ReadonlySet<string> = new Set(['mcp-session-id']);
/** ...nor to a 2025-era server, which the 2026-07-28 mirrored headers mean nothing to. */
const NOT_TO_LEGACY: ReadonlySet<string> = new Set(['mcp-session-id', 'mcp-method', 'mcp-name']);

/** The failure a refusal of an upstream stands for. */
function failureOf(refusal: Refusal): Failure {
  if (refusal.reason === 'upstream_timeout') return 'timeout';
  if (refusal.reason === 'session_not_found') return 'session_ended';
  if (refusal.reason === 'upstream_unreachable' || refusal.reason === 'upstream_unavailable')
    return 'unreachable';
  return 'bad_answer' as Failure;
}

/**
 * One server of a federated route (DESIGN.md "Upstreams" → Federation): its own upstream (HTTP or
 * stdio, built as for a route of its own), its prefix, the resource patterns it owns, and how the
 * gateway speaks to it. Every request to it goes through {@link send}: the route's forwarded
 * headers with the server's own session id, protocol version and `upstreamHeaders` — never another
 * server's, never the client's sealed session id.
 */
export class Member {
  readonly name: string;
  readonly prefix: string;
  readonly required: boolean;
  /** Its declared `resources` patterns: URIs they match route here whatever others advertise. */
  readonly owns: readonly Glob[];
  readonly stdio: boolean;
  private readonly headers: Readonly<Record<string, string>>;
  private readonly deadlineMs: number;
  /** How long this server may take to begin an answer (`upstreamTimeouts.headersMs`). */
  get deadline(): number {
    return this.deadlineMs;
  }
  private readonly labels: { route: string; server: string };
  private readonly duration: { observe(seconds: number): void } | undefined;
  /** An HTTP server's generation, asked once (`server/discover`) and kept a while. */
  private era: { readonly modern: Promise<boolean>; readonly until: number; known?: boolean } | undefined;
  /** What this 2025-era HTTP server said at the last handshake the gateway made for a 2026-07-28 caller. */
  legacyResult: Readonly<Record<string, unknown>> | undefined;
  /** What this HTTP server answered `server/discover` with, when it speaks 2026-07-28. */
  modernResult: Readonly<Record<string, unknown>> | undefined;
  /** Sessions the gateway opened on a 2025-era HTTP server for 2026-07-28 callers, by identity. */
  private readonly links = new Map<string, Promise<Link | Refusal>>();

  constructor(
    readonly target: UpstreamTarget,
    spec: ServerConfig,
    readonly upstream: Upstream,
    private readonly deps: MemberDeps,
  ) {
    this.name = target.server as string;
    this.prefix = spec.prefix ?? `${this.name}__`;
    this.required = spec.required;
    this.owns = spec.resources.map((pattern) =>
      pattern.includes('*') ? compileGlob(pattern) : { test: (uri: string) => uri === pattern },
    );
    this.stdio = typeof target.upstream !== 'string';
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(target.headers)) headers[name.toLowerCase()] = value;
    this.headers = headers;
    this.deadlineMs = target.timeouts.headersMs;
    this.labels = { route: target.route, server: this.name };
    // Labelled once: a routed call observes without hashing its labels again.
    this.duration = deps.metrics?.federationServerDuration.labels(this.labels);
  }

  /**
   * Sends `messages` to this server as part of `request`: the request's forwarded headers with this
   * server's session, version and headers; `name` replaces `Mcp-Name` (the name this server knows).
   * The answer's own `Mcp-Session-Id` is dropped: the client's session is the federation's.
   */
  async send(
    request: UpstreamRequest,
    messages: unknown,
    link: Link,
    name?: string,
    cancellation: Cancellation = request.cancellation,
  ): Promise<UpstreamAnswer | Refusal> {
    // Copied without the client's session id (and, for a 2025-era server, the 2026-07-28 headers
    // that mean nothing to it): no `delete`, which would leave a slow dictionary-mode object.
    const skip = link.translate === 'toLegacy' ? NOT_TO_LEGACY : NOT_FORWARDED;
    const headers: Record<string, string> = {};
    for (const header in request.headers)
      if (!skip.has(header)) headers[header] = request.headers[header] as string;
    if (link.id !== undefined) headers['mcp-session-id'] = link.id;
    if (link.translate === 'toModern') messages = asModern(messages, headers);
    else if (name !== undefined && headers['mcp-name'] !== undefined) headers['mcp-name'] = name;
    if (
      request.headers['mcp-protocol-version'] !== undefined ||
      link.id !== undefined ||
      link.translate !== 'none'
    )
      headers['mcp-protocol-version'] = link.version;
    Object.assign(headers, this.headers);
    const started = performance.now();
    const answer = await this.upstream.send({
      method: 'POST',
      headers,
      body: undefined,
      text: JSON.stringify(messages),
      cancellation,
      version: link.version,
      identity: request.identity,
      session: this.sessionOf(request, link),
      // What the call needed, for an identity of scope `call` (a batch: every message's).
      decisions: request.decisions,
    });
    this.duration?.observe((performance.now() - started) / 1000);
    if (isRefusal(answer)) {
      this.count(failureOf(answer));
      return answer;
    }
    if (answer.status === 404 && link.id !== undefined) {
      answer.body.resume();
      this.count('session_ended');
      return refuse('session_not_found');
    }
    const { 'mcp-session-id': _own, ...rest } = answer.headers;
    return { status: answer.status, headers: rest, body: answer.body };
  }

  /**
   * Sends one request and reads its answer whole, within this server's `upstreamTimeouts.headersMs`
   * (a fanned-out list waits no longer for it): the response to `message`, or why there is none.
   */
  async ask(request: UpstreamRequest, message: MemberMessage, link: Link): Promise<Asked> {
    const cancellation = new Cancellation();
    const cancel = (): void => cancellation.cancel();
    request.cancellation.onCancel(cancel);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      cancellation.cancel();
    }, this.deadlineMs);
    try {
      const answer = await this.send(request, message, link, undefined, cancellation);
      if (isRefusal(answer)) return { failure: timedOut ? 'timeout' : failureOf(answer), refusal: answer };
      const read = await readMemberMessages(answer, this.deps.maxResponseBytes, this.deps.maxJsonDepth).catch(
        () => 'status' as const,
      );
      if (timedOut) return this.failed('timeout');
      if (typeof read === 'string') return this.failed(read);
      const response = read.find((m) => m.id === message.id && m.method === undefined);
      if (response === undefined) return this.failed('not_json');
      if (typeof response.result !== 'object' || response.result === null) {
        this.count('error');
        return { message: response };
      }
      this.count('ok');
      return { message: response };
    } finally {
      clearTimeout(timer);
      request.cancellation.off(cancel);
    }
  }

  /** Counts one request to this server by its outcome. */
  count(outcome: string): void {
    this.deps.metrics?.federationRequests.inc({ ...this.labels, outcome });
  }

  private failed(failure: Failure): Asked {
    this.count(
      failure === 'status' || failure === 'not_json' || failure === 'too_large' ? 'bad_answer' : failure,
    );
    return { failure };
  }

  /**
   * How a request of `request`'s generation reaches this server when it carries no session of the
   * federation's own: as it is, or — a 2026-07-28 caller and a 2025-era HTTP server — through a
   * session the gateway keeps for the caller's identity in this replica's memory.
   */
  statelessLink(request: UpstreamRequest): Link | Refusal | Promise<Link | Refusal> {
    const direct: Link = { version: request.version, id: undefined, translate: 'none' };
    if (this.stdio || !isModern(request.version)) return direct;
    // Known (the common case, on the hot path): no promise to wait for.
    const era = this.era;
    if (era?.known !== undefined && era.until >= Date.now())
      return era.known ? direct : this.legacyLink(request);
    return this.speaksModern(request).then((modern) => (modern ? direct : this.legacyLink(request)));
  }

  /** The session this replica keeps on this 2025-era HTTP server for the caller's identity. */
  private legacyLink(request: UpstreamRequest): Promise<Link | Refusal> {
    const key = request.identity.key;
    let link = this.links.get(key);
    if (link === undefined) {
      if (this.links.size >= MAX_IDENTITY_LINKS) this.forgetOldest();
      link = this.openLink(request);
      this.links.set(key, link);
      void link.then((opened) => {
        if (isRefusal(opened) && this.links.get(key) === link) this.links.delete(key);
      });
    }
    return link;
  }

  /** Forgets the caller's session here (the server ended it): the next request opens another. */
  forgetLink(request: UpstreamRequest, link: Link): void {
    const key = request.identity.key;
    const held = this.links.get(key);
    if (held !== undefined)
      void held.then((opened) => {
        if (!isRefusal(opened) && opened.id === link.id && this.links.get(key) === held)
          this.links.delete(key);
      });
  }

  private forgetOldest(): void {
    const [oldest] = this.links.keys();
    if (oldest === undefined) return;
    const link = this.links.get(oldest);
    this.links.delete(oldest);
    void link?.then((opened) => {
      if (!isRefusal(opened) && opened.id !== undefined) void this.end(opened.id, opened.version);
    });
  }

  /** Whether this HTTP server speaks 2026-07-28 (`server/discover` answered), asked at most every few minutes. */
  speaksModern(request: UpstreamRequest): Promise<boolean> {
    const now = Date.now();
    if (this.era === undefined || this.era.until < now) {
      const modern = this.ask(
        {
          ...request,
          version: MODERN_VERSION,
          headers: {
            ...request.headers,
            'mcp-method': DISCOVER,
            'mcp-protocol-version': MODERN_VERSION,
            accept: 'application/json, text/event-stream',
            'content-type': 'application/json',
          },
        },
        { jsonrpc: '2.0', id: 0, method: DISCOVER, params: { _meta: modernMeta({}) } },
        { version: MODERN_VERSION, id: undefined, translate: 'none' },
      ).then((asked) => {
        if ('failure' in asked && asked.failure !== 'error' && asked.failure !== 'status') {
          // Unreachable or slow: no answer about its generation; ask again next time.
          this.era = undefined;
          return false;
        }
        const result =
          'message' in asked ? (asked.message.result as Record<string, unknown> | undefined) : undefined;
        const modern =
          Array.isArray(result?.supportedVersions) && result.supportedVersions.includes(MODERN_VERSION);
        if (modern) this.modernResult = result;
        return modern;
      });
      const era: NonNullable<Member['era']> = { modern, until: now + ERA_TTL_MS };
      void modern.then((known) => {
        if (this.era === era) era.known = known;
      });
      this.era = era;
    }
    return this.era.modern;
  }

  /** Opens a 2025-era session on this HTTP server for a 2026-07-28 caller: `initialize`, then `initialized`. */
  private async openLink(request: UpstreamRequest): Promise<Link | Refusal> {
    const legacy: UpstreamRequest = {
      ...request,
      version: LEGACY_VERSION,
      headers: withoutModernHeaders(request.headers),
    };
    const opened = await this.handshake(legacy, {
      jsonrpc: '2.0',
      id: 0,
      method: INITIALIZE,
      params: {
        protocolVersion: LEGACY_VERSION,
        capabilities: GATEWAY_CAPABILITIES,
        clientInfo: GATEWAY_CLIENT_INFO,
      },
    });
    if ('failure' in opened) return opened.refusal ?? refuse('upstream_unreachable');
    this.legacyResult = opened.result;
    return { version: opened.link.version, id: opened.link.id, translate: 'toLegacy' };
  }

  /**
   * A legacy client's `initialize` on this server: its 2025-era handshake, or — an HTTP server that
   * refuses it and answers `server/discover` — the session's way to a server that speaks only
   * 2026-07-28 (no session id; each request translated), with what that server said of itself.
   */
  async initialize(
    request: UpstreamRequest,
    message: MemberMessage,
  ): Promise<{ readonly link: Link; readonly result: Readonly<Record<string, unknown>> } | Failed> {
    const opened = await this.handshake(request, message);
    if (!('failure' in opened) || this.stdio) return opened;
    if (opened.failure !== 'error' && opened.failure !== 'status') return opened;
    if (!(await this.speaksModern(request)) || this.modernResult === undefined) return opened;
    const link: Link = { version: MODERN_VERSION, id: undefined, translate: 'toModern' };
    return { link, result: this.modernResult };
  }

  /**
   * The 2025-era handshake with this server, for a legacy client's `initialize` (its own message)
   * or for a 2026-07-28 caller's session: the server's result, and how to reach it in the session.
   */
  private async handshake(
    request: UpstreamRequest,
    message: MemberMessage,
  ): Promise<{ readonly link: Link; readonly result: Readonly<Record<string, unknown>> } | Failed> {
    const cancellation = new Cancellation();
    const cancel = (): void => cancellation.cancel();
    request.cancellation.onCancel(cancel);
    const timer = setTimeout(cancel, this.deadlineMs);
    try {
      const headers = { ...request.headers };
      delete headers['mcp-protocol-version'];
      const answer = await this.upstream.send({
        method: 'POST',
        headers: { ...headers, ...this.headers },
        body: undefined,
        text: JSON.stringify(message),
        cancellation,
        version: request.version,
        identity: request.identity,
        session: undefined,
        decisions: request.decisions,
      });
      if (isRefusal(answer)) {
        this.count(failureOf(answer));
        return { failure: failureOf(answer), refusal: answer };
      }
      const session = answer.headers['mcp-session-id'];
      const read = await readMemberMessages(answer, this.deps.maxResponseBytes, this.deps.maxJsonDepth).catch(
        () => 'status' as const,
      );
      if (typeof read === 'string') {
        this.count('bad_answer');
        return { failure: cancellation.cancelled ? 'timeout' : read };
      }
      const response = read.find((m) => m.id === message.id && m.method === undefined);
      const result = response?.result as Record<string, unknown> | undefined;
      if (typeof result !== 'object' || result === null || typeof result.protocolVersion !== 'string') {
        this.count('error');
        return { failure: 'error' };
      }
      // The version goes back to this server as a header on every request of the session, and
      // into the client's sealed id: one the gateway does not know as a 2025-era version (a
      // header-breaking `2025-06-18\r\n…` included) is no usable handshake.
      if (!LEGACY_VERSIONS.has(result.protocolVersion)) {
        this.count('bad_answer');
        return { failure: 'not_json' };
      }
      // An id the gateway could not carry in the client's sealed session is no usable session.
      if (session !== undefined && (typeof session !== 'string' || !/^[\x21-\x7e]{1,256}$/.test(session))) {
        this.count('bad_answer');
        return { failure: 'not_json' };
      }
      const link: Link = { version: result.protocolVersion, id: session, translate: 'none' };
      this.count('ok');
      // The handshake's second half; what it answers (202) says nothing more.
      const initialized = await this.send(
        { ...request, headers: { ...request.headers, 'mcp-protocol-version': link.version } },
        { jsonrpc: '2.0', method: INITIALIZED_NOTIFICATION },
        link,
        undefined,
        cancellation,
      );
      if (!isRefusal(initialized)) initialized.body.resume();
      return { link, result };
    } finally {
      clearTimeout(timer);
      request.cancellation.off(cancel);
    }
  }

  /**
   * This server's GET stream in the client's session (its session id, version and headers;
   * `lastEventId` to resume it where it left off).
   */
  openStream(
    request: UpstreamRequest,
    link: Link,
    lastEventId: string | undefined,
    cancellation: Cancellation,
  ): Promise<UpstreamAnswer | Refusal> {
    const headers: Record<string, string> = {};
    for (const header in request.headers)
      if (!NOT_FORWARDED.has(header) && header !== 'last-event-id')
        headers[header] = request.headers[header] as string;
    if (link.id !== undefined) headers['mcp-session-id'] = link.id;
    headers['mcp-protocol-version'] = link.version;
    if (lastEventId !== undefined) headers['last-event-id'] = lastEventId;
    Object.assign(headers, this.headers);
    return this.upstream
      .send({
        method: 'GET',
        headers,
        body: undefined,
        text: undefined,
        cancellation,
        version: link.version,
        identity: request.identity,
        session: this.sessionOf(request, link),
        decisions: request.decisions,
      })
      .then((answer) => {
        if (!isRefusal(answer) && answer.status === 404 && link.id !== undefined) {
          answer.body.resume();
          return refuse('session_not_found');
        }
        return answer;
      });
  }

  /** What a stdio server's upstream reads as the session: the local session it gave. */
  private sessionOf(request: UpstreamRequest, link: Link): UpstreamRequest['session'] {
    if (link.id === undefined || !this.stdio) return undefined;
    return {
      upstreamId: link.id,
      route: this.target.route,
      identity: request.identity.key,
      version: link.version,
      issuedAt: 0,
    };
  }

  /** Ends this server's session `id` (DELETE on HTTP; the local session on stdio). Failures are only logged. */
  async end(id: string, version: string, identity: Identity = GATEWAY): Promise<void> {
    const headers: Record<string, string> = {
      'mcp-session-id': id,
      'mcp-protocol-version': version,
      ...this.headers,
    };
    const answer = await this.upstream
      .send({
        method: 'DELETE',
        headers,
        body: undefined,
        text: undefined,
        cancellation: new Cancellation(),
        version,
        identity,
        session: this.stdio
          ? {
              upstreamId: id,
              route: this.target.route,
              identity: identity.key,
              version,
              issuedAt: 0,
            }
          : undefined,
      })
      .catch((err: unknown) => {
        this.deps.logger.warn(
          { err, route: this.target.route, server: this.name },
          'ending a server session failed',
        );
        return undefined;
      });
    if (answer !== undefined && !isRefusal(answer)) answer.body.resume();
  }
}

/**
 * A 2025-era client's message as a server that speaks only 2026-07-28 must receive it: the
 * `_meta` protocol fields in its params (the gateway speaks for a client that declared nothing it
 * could be asked for), and the mirrored `Mcp-Method` and `Mcp-Name` headers.
 */
function asModern(message: unknown, headers: Record<string, string>): unknown {
  if (typeof message !== 'object' || message === null || Array.isArray(message)) return message;
  const { method, params } = message as { method?: unknown; params?: Record<string, unknown> };
  if (typeof method !== 'string') return message;
  headers['mcp-method'] = method;
  const mirrored = mirroredNameOf(method);
  const named = mirrored === undefined ? undefined : params?.[mirrored.field];
  if (typeof named === 'string') headers['mcp-name'] = named;
  else delete headers['mcp-name'];
  const meta = { ...(params?._meta as Record<string, unknown> | undefined), ...modernMeta({}) };
  return { ...message, params: { ...params, _meta: meta } };
}

/** Who ends a session the gateway opened for no one caller in particular (an HTTP server's, which reads no identity). */
const GATEWAY: Identity = { key: 'gateway', subject: 'portcullis', methods: [], scopes: new Set() };

/** The request's headers without what only a 2026-07-28 server reads. */
function withoutModernHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  const out = { ...headers };
  delete out['mcp-method'];
  delete out['mcp-name'];
  delete out['mcp-protocol-version'];
  return out;
}
