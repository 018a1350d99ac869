import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import type { StdioUpstreamConfig } from '../../config/schema.js';
import type { UpstreamTarget } from '../../config/upstreams.js';
import { isRefusal, type Refusal, refuse } from '../../errors.js';
import {
  CANCELLED_NOTIFICATION,
  INITIALIZED_NOTIFICATION,
  LIST_CHANGED_FILTERS,
  LISTEN,
  LISTEN_ACKNOWLEDGED,
  opensSession,
  PROGRESS_NOTIFICATION,
  RESOURCES_SUBSCRIBE,
  RESOURCES_UNSUBSCRIBE,
  RESOURCES_UPDATED,
  ROOTS_LIST_CHANGED,
  SUBSCRIPTION_ID_META,
} from '../../jsonrpc/methods.js';
import { isModern, MODERN_VERSION } from '../../jsonrpc/protocol-version.js';
import type { Metrics } from '../../metrics/registry.js';
import { acceptsEventStream } from '../../proxy/media-type.js';
import type { Sealer } from '../../proxy/seal.js';
import { INPUT_WAIT_MS, inputCapabilities, UNKNOWN_REQUEST_STATE } from '../input-required.js';
import { bufferBody, jsonAnswer } from '../local-answer.js';
import type { Upstream, UpstreamAnswer, UpstreamRequest } from '../upstream.js';
import { Call, type CallOwner, type ClientId, MAX_BUFFERED_BYTES } from './call.js';
import type { ServerFacts } from './connection.js';
import { resolveAccount } from './environment.js';
import { agreedVersion, localAnswer, modernResults, offers, toProcess, unsupportedVersion } from './eras.js';
import { ProcessPool, type Ready } from './pool.js';
import type { ManagedProcess } from './process.js';

export interface StdioUpstreamDeps {
  readonly logger: Logger;
  /** The gateway's instruments; none in unit tests of the router. */
  readonly metrics?: Metrics | undefined;
  /** Seals a 2026-07-28 process's `requestState` inside the gateway's own (session keys). */
  readonly sealer: Sealer;
  /** `limits.maxResponseBytes`: the longest line read from a child. */
  readonly maxResponseBytes: number;
  /** `limits.maxJsonDepth`: the deepest message read from a child. */
  readonly maxJsonDepth: number;
}

/** A legacy client's session with the gateway, bound to the process that serves it. */
interface LocalSession {
  /** Its id here (what the sealed id the client holds carries). */
  readonly id: string;
  readonly owner: string;
  readonly process: ManagedProcess;
  /** The version the client and the gateway agreed on in `initialize`. */
  readonly version: string;
}

type Message = Readonly<Record<string, unknown>>;

/** The purpose label of a sealed requestState: it opens as nothing else. */
const REQUEST_STATE_PURPOSE = 'stdio-request-state';

/**
 * A 2026-07-28 process's `input_required` result for a legacy client, which could not read it (and
 * must not see the process's raw `requestState`): an error instead. Carrying the process's input
 * requests to a legacy client as server requests, and retrying for it, is not built yet.
 */
function noInputRequired(
  _id: ClientId,
  answer: Readonly<Record<string, unknown>>,
): Readonly<Record<string, unknown>> {
  const result = answer.result as Record<string, unknown> | undefined;
  if (result?.resultType !== 'input_required') return answer;
  return {
    jsonrpc: '2.0',
    error: {
      code: -32603,
      message:
        'The server needs input from the client, which the gateway cannot yet ask a 2025-era client for',
      data: { reason: 'input_required_unsupported' },
    },
  };
}

/** What may wait in a child's stdin before new calls are refused 429. */
const MAX_UNREAD_BYTES = 8 * 1024 * 1024;

/** A retry whose `requestState` is not (or no longer) waiting here, or that lacks the input asked for. */
/** Legacy sessions one identity may hold on one process: a new one ends its own oldest. */
const MAX_SESSIONS_PER_IDENTITY = 64;
/** Legacy sessions one process serves at most: beyond, a new one is refused (never another's evicted). */
const MAX_SESSIONS_PER_PROCESS = 4096;

/**
 * The stdio upstream (DESIGN.md "Upstreams" → stdio): a route's unmodified stdio MCP server,
 * spawned and spoken to by the gateway as its one client, behind the same `Upstream` interface as
 * HTTP — so authentication, policy, list filtering, limits and audit apply unchanged.
 *
 * Clients of both generations are served. Legacy clients get a session of the gateway's own
 * (`initialize` answered from what the process said at start; the id sealed like any upstream's);
 * modern clients are answered per request (`server/discover` from the same facts). Each POST
 * becomes a {@link Call}: its requests go to the process under gateway ids and come back as JSON or
 * an SSE stream.
 */
export function createStdioUpstream(
  target: UpstreamTarget,
  spec: StdioUpstreamConfig,
  deps: StdioUpstreamDeps,
): Upstream {
  const pool = new ProcessPool({
    route: target.route,
    spec,
    account: resolveAccount(spec),
    maxLineBytes: deps.maxResponseBytes,
    maxJsonDepth: deps.maxJsonDepth,
    logger: deps.logger,
    metrics: deps.metrics,
  });
  const labels = { route: target.route };
  const sessions = new Map<string, LocalSession>();
  const firstMessageMs = target.timeouts.headersMs;

  /** The pool key of a request: whose process serves it. */
  const keyOf = (request: UpstreamRequest, session: string | undefined): string => {
    if (spec.processes === 'shared') return 'shared';
    if (spec.processes === 'perSession') return `session:${session}`;
    return request.identity.key;
  };

  /** The legacy session a request names, if it is still served here. */
  const sessionOf = (request: UpstreamRequest): LocalSession | Refusal | undefined => {
    const id = request.session?.upstreamId;
    if (id === undefined) return undefined;
    const local = sessions.get(id);
    // Another replica's, or its process exited or was stopped: the client initializes again.
    if (local === undefined || !local.process.usable || local.owner !== request.identity.key) {
      if (local !== undefined) sessions.delete(id);
      return refuse('session_not_found');
    }
    return local;
  };

  return {
    async send(request) {
      const local = sessionOf(request);
      if (isRefusal(local)) return local;
      if (request.method === 'GET') return openStream(request, local);
      if (request.method === 'DELETE') return endSession(request, local);
      const messages = parsedMessages(request.text);
      // The gateway speaks for the process: a version neither of them speaks is refused here, as a
      // 2026-07-28 server would (HTTP 400, the versions it does support).
      if (isModern(request.version) && request.version !== MODERN_VERSION)
        return unsupportedVersion(messages, request.version);
      const owner: CallOwner = { identity: request.identity.key, session: request.session?.upstreamId };
      const first = messages[0];
      if (typeof first?.method === 'string' && opensSession(first.method) && first.id !== undefined)
        // The handshake stands alone (2025-03-26 forbids it in a batch): nothing beside it is dropped unanswered.
        return messages.length === 1
          ? initialize(request, first, owner)
          : refuse('invalid_request', {
              ids: messages.flatMap((m) =>
                typeof m.method === 'string' && m.id !== undefined ? [m.id as ClientId] : [],
              ),
              batch: true,
            });
      if (spec.processes === 'perSession' && local === undefined)
        return refuse(isModern(request.version) ? 'invalid_request' : 'session_not_found', {
          data: { detail: 'this route serves legacy sessions only (processes: perSession)' },
        });
      const ready = local === undefined ? await pool.acquire(keyOf(request, undefined)) : readyOf(local);
      if (isRefusal(ready)) return ready;
      if (first?.method === LISTEN && first.id !== undefined && ready.facts.era === 'legacy')
        return listen(request, ready.process, ready.facts, first);
      return exchange(request, ready, messages, owner, local);
    },
    close: () => pool.close(),
  };

  function readyOf(local: LocalSession): Ready | Refusal {
    const facts = local.process.connection.facts;
    return facts === undefined ? refuse('session_not_found') : { process: local.process, facts };
  }

  /** A legacy `initialize`: a new gateway session, answered from the process's facts. */
  async function initialize(
    request: UpstreamRequest,
    message: Message,
    owner: CallOwner,
  ): Promise<UpstreamAnswer | Refusal> {
    const id = randomUUID();
    const ready = await pool.acquire(keyOf(request, id));
    if (isRefusal(ready)) return ready;
    const { process, facts } = ready;
    // Sessions are capped per identity, evicting only the caller's own oldest: on a shared
    // process one identity opening sessions in a loop must not end another's.
    const own = [...process.sessions].filter((session) => sessions.get(session)?.owner === owner.identity);
    if (own.length >= MAX_SESSIONS_PER_IDENTITY) {
      const oldest = own[0] as string;
      process.endSession(oldest);
      sessions.delete(oldest);
    } else if (process.sessions.size >= MAX_SESSIONS_PER_PROCESS)
      return refuse('concurrency_limited', {
        ids: [message.id as ClientId],
        headers: { 'retry-after': '1' },
      });
    const params = (message.params ?? {}) as Record<string, unknown>;
    const version = agreedVersion(params.protocolVersion, facts);
    sessions.set(id, { id, owner: owner.identity, process, version });
    process.sessions.add(id);
    const result = {
      protocolVersion: version,
      capabilities: facts.capabilities,
      serverInfo: facts.serverInfo,
      ...(facts.instructions === undefined ? {} : { instructions: facts.instructions }),
    };
    return jsonAnswer(200, { jsonrpc: '2.0', id: message.id, result }, { 'mcp-session-id': id });
  }

  /** A POST's messages, sent to the process through one call. */
  function exchange(
    request: UpstreamRequest,
    ready: Ready,
    messages: readonly Message[],
    owner: CallOwner,
    local: LocalSession | undefined,
  ): Promise<UpstreamAnswer | Refusal> {
    const { process, facts } = ready;
    const connection = process.connection;
    const requests = messages.filter((m) => typeof m.method === 'string' && m.id !== undefined);
    // A child that does not read its stdin is busy: new work waits, rather than piling up here.
    if (requests.length > 0 && process.unread > MAX_UNREAD_BYTES)
      return Promise.resolve(refuse('concurrency_limited', { headers: { 'retry-after': '1' } }));
    for (const message of messages) {
      if (typeof message.method !== 'string') {
        // A client's answer to a server request: only to the one sent to this owner.
        if (!connection.answerHeld(owner, message))
          deps.logger.info(
            { route: target.route, process: process.key },
            'stdio answer matched no server request',
          );
      } else if (message.id === undefined) clientNotification(process, message, owner);
    }
    if (requests.length === 0) {
      pool.settled(process);
      return Promise.resolve({ status: 202, headers: {}, body: bufferBody('') });
    }
    return new Promise((settle) => {
      const acceptsStream = acceptsEventStream(request.headers.accept);
      const legacyClient = !isModern(request.version);
      const call = new Call({
        owner,
        acceptsStream,
        // 2026-07-28 clients take no server-initiated requests (their multi round-trip results
        // replace them); a legacy client takes them on its call's SSE answer.
        takesServerRequests: acceptsStream && legacyClient,
        adapt: legacyClient
          ? facts.era === 'modern'
            ? noInputRequired
            : undefined
          : facts.era === 'legacy'
            ? modernResults(requests)
            : (_id, answer) => sealRequestState(answer, owner),
        inputCapabilities:
          !legacyClient && facts.era === 'legacy' && requests.length === 1
            ? inputCapabilities(requests[0] as Message)
            : undefined,
        batch: request.body?.batch ?? false,
        ids: requests.map((m) => m.id as ClientId),
        headers: {},
        firstMessageMs,
        settle,
        onDone: (done) => {
          deps.metrics?.stdioInFlight.dec(labels);
          connection.end(done, 'The client is no longer waiting for this request');
          pool.settled(process);
        },
        onTimeout: () => undefined,
        onPressure: (blocked, isBlocked) => connection.setBlocked(blocked, isBlocked),
      });
      deps.metrics?.stdioInFlight.inc(labels);
      connection.begin(call);
      request.cancellation.onCancel(() => call.abandon());
      for (const message of requests) {
        const id = message.id as ClientId;
        const answer = localAnswer(message, facts, legacyClient);
        const params = message.params as Record<string, unknown> | undefined;
        if (answer !== undefined) call.answer(id, answer);
        else if (local !== undefined && subscription(process, local, call, id, message)) {
          // Answered here: the process already holds (or still holds) this subscription for others.
        } else if (
          !legacyClient &&
          facts.era === 'legacy' &&
          params?.inputResponses !== undefined &&
          params.requestState === undefined
        ) {
          // Input for a request the process never asked anything of: a protocol error, not a call.
          call.answer(id, { jsonrpc: '2.0', error: UNKNOWN_REQUEST_STATE });
        } else if (!legacyClient && facts.era === 'legacy' && params?.requestState !== undefined) {
          // The retry of a call answered `input_required`: it carries the answer the process waits for.
          const token = (params._meta as Record<string, unknown> | undefined)?.progressToken;
          if (!connection.resume(call, id, params.requestState, params.inputResponses, token))
            call.answer(id, { jsonrpc: '2.0', error: UNKNOWN_REQUEST_STATE });
        } else if (
          facts.era === 'modern' &&
          (legacyClient
            ? params?.requestState !== undefined || params?.inputResponses !== undefined
            : params?.requestState !== undefined && typeof params.requestState !== 'string')
        ) {
          // A legacy client has no multi round-trip with a 2026-07-28 process through the gateway
          // (it never received a requestState to bring back); a state that is no string is no seal.
          call.answer(id, { jsonrpc: '2.0', error: UNKNOWN_REQUEST_STATE });
        } else if (!legacyClient && typeof params?.requestState === 'string') {
          // A retry carrying a 2026-07-28 process's requestState: only inside the gateway's seal,
          // only from the identity it was given to, before it expires.
          const own = openRequestState(params.requestState, owner);
          if (own === undefined) call.answer(id, { jsonrpc: '2.0', error: UNKNOWN_REQUEST_STATE });
          else connection.forward(call, { ...message, params: { ...params, requestState: own } });
        } else connection.forward(call, toProcess(message, facts, legacyClient));
      }
    });
  }

  /** A client notification: what the process may hear of it. */
  function clientNotification(process: ManagedProcess, message: Message, owner: CallOwner): void {
    const method = message.method as string;
    // The gateway did the handshake itself: the client's half of it stops here.
    if (method === INITIALIZED_NOTIFICATION) return;
    if (method === CANCELLED_NOTIFICATION) {
      process.connection.cancelFor(owner, message);
      return;
    }
    // The process's roots are the route's (answered by the gateway), never a client's.
    if (method === ROOTS_LIST_CHANGED) return;
    // A client's progress on a server request: on a shared process its token could be another's.
    if (method === PROGRESS_NOTIFICATION && spec.processes === 'shared') return;
    process.connection.notify(method, message.params as Record<string, unknown> | undefined);
  }

  /**
   * An `input_required` result of a 2026-07-28 process: its `requestState` goes to the client
   * sealed inside the gateway's own, with the route, the identity it was given to and an expiry —
   * the process cannot tell which identity a retry comes from, the gateway can.
   */
  function sealRequestState(answer: Message, owner: CallOwner): Message {
    const result = answer.result as Record<string, unknown> | undefined;
    if (typeof result?.requestState !== 'string') return answer;
    const sealed = deps.sealer.seal(REQUEST_STATE_PURPOSE, [
      target.route,
      owner.identity,
      Date.now() + INPUT_WAIT_MS,
      result.requestState,
    ]);
    return { ...answer, result: { ...result, requestState: sealed } };
  }

  /** The process's own `requestState` inside a sealed one, if it opens for this route and owner in time. */
  function openRequestState(sealed: string, owner: CallOwner): string | undefined {
    const fields = deps.sealer.open(REQUEST_STATE_PURPOSE, sealed);
    if (fields === undefined) return undefined;
    const [sealedRoute, identity, expires, state] = fields;
    if (sealedRoute !== target.route || identity !== owner.identity) return undefined;
    if (typeof expires !== 'number' || expires < Date.now() || typeof state !== 'string') return undefined;
    return state;
  }

  /** A legacy session's GET stream: what the process says to everyone (the `list_changed` notifications). */
  function openStream(request: UpstreamRequest, local: LocalSession | undefined): UpstreamAnswer {
    if (local === undefined) return jsonAnswer(405, undefined, { allow: 'POST' });
    const { process } = local;
    const body = new Readable({ read: () => undefined });
    const listener = {
      session: local.id,
      push: (message: Message) => {
        // A GET stream whose client stopped reading is dropped rather than buffered without end.
        if (body.readableLength > MAX_BUFFERED_BYTES) body.destroy();
        else body.push(`event: message\ndata: ${JSON.stringify(message)}\n\n`);
      },
      end: () => body.push(null),
    };
    process.listeners.add(listener);
    // A 2026-07-28 process sends list_changed only on a subscription: the gateway opens its own.
    process.followModern();
    pool.touch(process);
    const stop = (): void => {
      process.listeners.delete(listener);
      pool.settled(process);
    };
    body.once('close', stop);
    request.cancellation.onCancel(() => body.destroy());
    return {
      status: 200,
      headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
      body,
    };
  }

  /**
   * A 2026-07-28 client's `subscriptions/listen` on a legacy process (the era table): the gateway
   * answers it as a 2026-07-28 server would — the acknowledgment first, naming what the process
   * can send (its `listChanged` capabilities; resource subscriptions when it has `subscribe`),
   * then those notifications, each carrying the subscription id — from the process's list_changed
   * notifications and from `resources/subscribe` requests it makes for the URIs (reference-counted
   * with every other subscriber, ended with the stream).
   */
  function listen(
    request: UpstreamRequest,
    process: ManagedProcess,
    facts: ServerFacts,
    message: Message,
  ): UpstreamAnswer {
    const filter = ((message.params as Record<string, unknown> | undefined)?.notifications ?? {}) as Record<
      string,
      unknown
    >;
    const meta = { [SUBSCRIPTION_ID_META]: message.id };
    const honored: Record<string, unknown> = {};
    const wanted = new Set<string>();
    for (const row of LIST_CHANGED_FILTERS)
      if (filter[row.filter] === true && offers(facts, row.capability, 'listChanged')) {
        honored[row.filter] = true;
        wanted.add(row.method);
      }
    const asked = Array.isArray(filter.resourceSubscriptions) ? filter.resourceSubscriptions : [];
    const uris = offers(facts, 'resources', 'subscribe')
      ? asked.filter((u): u is string => typeof u === 'string')
      : [];
    if (uris.length > 0) honored.resourceSubscriptions = uris;
    const key = `listen:${randomUUID()}`;
    const body = new Readable({ read: () => undefined });
    const send = (out: Message): void => {
      if (body.readableLength > MAX_BUFFERED_BYTES) body.destroy();
      else body.push(`event: message\ndata: ${JSON.stringify(out)}\n\n`);
    };
    send({ jsonrpc: '2.0', method: LISTEN_ACKNOWLEDGED, params: { _meta: meta, notifications: honored } });
    const listener = {
      session: key,
      push: (out: Message) => {
        const method = out.method as string;
        if (method !== RESOURCES_UPDATED && !wanted.has(method)) return;
        const params = (out.params ?? {}) as Record<string, unknown>;
        send({ ...out, params: { ...params, _meta: { ...(params._meta as object | undefined), ...meta } } });
      },
      end: () => body.push(null),
    };
    for (const uri of uris)
      if (process.subscriptions.add(uri, key)) void process.connection.ask(RESOURCES_SUBSCRIBE, { uri });
    process.listeners.add(listener);
    pool.touch(process);
    body.once('close', () => {
      process.listeners.delete(listener);
      process.endSession(key);
      pool.settled(process);
    });
    request.cancellation.onCancel(() => body.destroy());
    return {
      status: 200,
      headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
      body,
    };
  }

  /** DELETE: the session ends here; on a `perSession` route its process stops. */
  async function endSession(
    _request: UpstreamRequest,
    local: LocalSession | undefined,
  ): Promise<UpstreamAnswer> {
    if (local === undefined) return jsonAnswer(405, undefined, { allow: 'POST' });
    sessions.delete(local.id);
    local.process.endSession(local.id);
    if (spec.processes === 'perSession') await pool.retire(local.process);
    else pool.settled(local.process);
    return jsonAnswer(200, undefined, {});
  }
}

/**
 * A legacy session's `resources/subscribe` and `resources/unsubscribe`, reference-counted on the
 * process: only the first subscriber's and the last unsubscriber's go to it; the others are
 * answered here (true). A first subscription the process refuses is forgotten again.
 */
function subscription(
  process: ManagedProcess,
  local: LocalSession,
  call: Call,
  id: ClientId,
  message: Message,
): boolean {
  const uri = (message.params as { uri?: unknown } | undefined)?.uri;
  if (typeof uri !== 'string') return false;
  if (message.method === RESOURCES_SUBSCRIBE) {
    if (process.subscriptions.add(uri, local.id)) {
      call.watch(id, (answer) => {
        if (answer.error !== undefined) process.subscriptions.remove(uri, local.id);
      });
      return false;
    }
  } else if (message.method === RESOURCES_UNSUBSCRIBE) {
    if (process.subscriptions.remove(uri, local.id)) return false;
  } else return false;
  call.answer(id, { jsonrpc: '2.0', result: {} });
  return true;
}

/** The messages of a POST as the gateway forwards them: the authorized text, parsed again. */
function parsedMessages(text: string | undefined): readonly Message[] {
  if (text === undefined) return [];
  const value: unknown = JSON.parse(text);
  return (Array.isArray(value) ? value : [value]) as Message[];
}
