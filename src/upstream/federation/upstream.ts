import type { Readable } from 'node:stream';
import { Cancellation } from '../../cancellation.js';
import type { RouteConfig, ServerConfig } from '../../config/schema.js';
import type { UpstreamTarget } from '../../config/upstreams.js';
import { isRefusal, type Refusal, type RpcId, refuse } from '../../errors.js';
import {
  CANCELLED_NOTIFICATION,
  DISCOVER,
  federationOf,
  INITIALIZED_NOTIFICATION,
  LIST_CHANGED_FILTERS,
  LIST_METHODS,
  listAnswerOf,
  PROGRESS_NOTIFICATION,
} from '../../jsonrpc/methods.js';
import { isModern, LEGACY_VERSION, LEGACY_VERSIONS, MODERN_VERSION } from '../../jsonrpc/protocol-version.js';
import { bodyKind, isEventStream } from '../../proxy/media-type.js';
import type { Sealer } from '../../proxy/seal.js';
import { createSseRewriter } from '../../proxy/sse.js';
import { VERSION } from '../../version.js';
import { inputCapabilities, inputRequired, NO_CLIENT, UNKNOWN_REQUEST_STATE } from '../input-required.js';
import { jsonAnswer, rewriteMessages, through } from '../local-answer.js';
import type { Upstream, UpstreamAnswer, UpstreamRequest } from '../upstream.js';
import { memberMessages, readMemberMessages } from './answers.js';
import { openCursor, type ServerCursors, sealFittingCursor } from './cursor.js';
import { type ListenTarget, mergedListen } from './listen.js';
import { type Link, Member, type MemberDeps } from './member.js';
import { type MemberPage, mergePages } from './merge.js';
import { ExposedNames, prefixesOf } from './names.js';
import { type CallOutcome, nextOutcome, type Parked, ParkedCalls, type Running } from './parked.js';
import { ResourceOwners } from './resources.js';
import {
  AnsweredRequests,
  type Answering,
  openRequestId,
  sealRequestId,
  sealServerRequests,
} from './server-requests.js';
import { decodeSessions, encodeSessions, type MemberSessions } from './sessions.js';
import { openMergedStream } from './streams.js';
import { sealTaskIds, TaskIds } from './tasks.js';

export interface FederationDeps extends MemberDeps {
  /** Seals list cursors (the session keys: any replica with them opens another's cursor). */
  readonly sealer: Sealer;
}

type Message = Readonly<Record<string, unknown>>;

/** One request as the federation serves it: the client's request, and its session's servers. */
interface Context {
  readonly request: UpstreamRequest;
  /** A legacy session's servers (each one's link); undefined outside a session. */
  readonly sessions: MemberSessions | undefined;
}

/**
 * The federated upstream (DESIGN.md "Upstreams" → Federation): several servers, HTTP or stdio,
 * behind one route, as one server to the client. Lists fan out to every server and merge under
 * sealed composite cursors; calls, prompts and completions route by exposed name, resource reads
 * by URI owner; a legacy client's session holds one session per server. Authentication, policy
 * (on exposed names), limits and audit run above it unchanged; the policy filter reads the merged
 * lists as it reads any server's.
 */
export function createFederatedUpstream(
  route: RouteConfig,
  targets: readonly { readonly target: UpstreamTarget; readonly upstream: Upstream }[],
  deps: FederationDeps,
): Upstream {
  const servers = route.servers ?? {};
  const members = targets.map(
    ({ target, upstream }) =>
      new Member(target, servers[target.server as string] as ServerConfig, upstream, deps),
  );
  const byName = new Map(members.map((member) => [member.name, member]));
  const names = new ExposedNames(prefixesOf(servers));
  const owners = new ResourceOwners(new Map(members.map((member) => [member.name, member.owns])));
  const serverInfo = route.serverInfo ?? { name: 'portcullis', version: VERSION };
  const logger = deps.logger.child({ route: route.route });
  const taskIds = new TaskIds(deps.sealer);
  const answered = new AnsweredRequests();
  /** 2026-07-28 calls of 2025-era servers waiting for the client's input (the era table). */
  const parkedCalls = new ParkedCalls((call) => void expire(call));
  let nextKey = 0;
  /** When an unknown URI last made this route ask for every server's resource lists. */
  let lastDiscovery = 0;
  /**
   * The server running each routed request in flight in this replica, by caller, session and the
   * client's request id: where a client's `notifications/cancelled` goes.
   */
  const inFlight = new Map<string, Member>();
  /** The server running the request each progress token in flight belongs to (same keys). */
  const progressOwners = new Map<string, Member>();

  /**
   * Whether a GET-stream event is no progress report, or reports the progress of a request this
   * server is running for this caller: another's would keep alive (or fake) a request the client
   * sent another server.
   */
  const ownProgress = (ctx: Context, member: Member, data: string): boolean => {
    let value: unknown;
    try {
      value = JSON.parse(data);
    } catch {
      return true;
    }
    const message = value as { method?: unknown; params?: { progressToken?: unknown } } | null;
    if (message?.method !== PROGRESS_NOTIFICATION) return true;
    const token = message.params?.progressToken;
    if (typeof token !== 'string' && typeof token !== 'number') return false;
    return progressOwners.get(inFlightKey(ctx, token)) === member;
  };
  const inFlightKey = (ctx: Context, id: RpcId): string =>
    `${ctx.request.identity.key}\u0000${ctx.request.session?.upstreamId ?? ''}\u0000${typeof id}:${id}`;

  return {
    async send(request) {
      const sessions = request.session === undefined ? undefined : decodeSessions(request.session.upstreamId);
      if (request.session !== undefined && sessions === undefined) return refuse('session_not_found');
      const ctx: Context = { request, sessions };
      if (request.method === 'GET')
        return sessions === undefined
          ? jsonAnswer(405, undefined, { allow: 'POST' })
          : openMergedStream(request, sessions, byName, {
              route: route.route,
              sealer: deps.sealer,
              logger,
              maxEventLength: deps.maxResponseBytes,
              // Server requests and task ids alike, sealed to this caller; a response is no one's.
              sealRequests: (member, link, data) => {
                const sealed = sealRequests(ctx, member, link, data, null);
                if (sealed === 'foreign') {
                  logger.warn({ server: member.name }, 'server sent a response on its GET stream: dropped');
                  return undefined;
                }
                if (!ownProgress(ctx, member, data)) {
                  logger.warn(
                    { server: member.name },
                    'server reported progress of another server’s request: dropped',
                  );
                  return undefined;
                }
                const requests = sealed ?? data;
                return sealTasksIn(ctx, member, requests) ?? requests;
              },
            });
      if (request.method === 'DELETE') return endSession(ctx);
      const messages = parsedMessages(request.text);
      const requests = messages.filter((m) => typeof m.method === 'string' && m.id !== undefined);
      if (messages.length > 1)
        // Each message may belong to another server: a batch is not split across them.
        return refuse('invalid_request', {
          ids: requests.map((m) => m.id as RpcId),
          batch: true,
          data: { detail: 'a federated route takes one message per request (no batches)' },
        });
      const message = messages[0];
      if (message === undefined) return jsonAnswer(202, undefined, {});
      if (typeof message.method !== 'string') return clientAnswer(ctx, message);
      if (message.id === undefined) return notify(ctx, message);
      return serve(ctx, message);
    },
    // Each server's upstream belongs to the router (HTTP pools) or the stdio registry (processes);
    // the calls waiting for input here end (their servers told).
    close: async () => parkedCalls.close(),
  };

  async function serve(ctx: Context, message: Message): Promise<UpstreamAnswer | Refusal> {
    const method = message.method as string;
    const id = message.id as RpcId;
    const params = (message.params ?? {}) as Record<string, unknown>;
    switch (federationOf(method)) {
      case 'local':
        return answer(id, {});
      case 'handshake':
        return method === DISCOVER ? discover(ctx, message) : initialize(ctx, message);
      case 'list':
        return list(ctx, message);
      case 'everyServer':
        return everyServer(ctx, message);
      case 'name': {
        const exposed = typeof params.name === 'string' ? names.resolve(params.name) : undefined;
        const member = exposed === undefined ? undefined : byName.get(exposed.server);
        if (exposed === undefined || member === undefined) return refuse('method_denied', { ids: [id] });
        return routed(ctx, member, { ...message, params: { ...params, name: exposed.name } }, exposed.name);
      }
      case 'uri': {
        const uri = params.uri;
        if (typeof uri !== 'string') return refuse('invalid_params', { ids: [id] });
        const owner = await ownerOf(ctx, uri);
        return typeof owner === 'string'
          ? routed(ctx, byName.get(owner) as Member, message)
          : notFound(ctx, id, uri);
      }
      case 'ref':
        return completion(ctx, message, params);
      case 'listen':
        return listen(ctx, message, params);
      case 'task': {
        // Only the identity that created the task opens its id; for anyone else it is no task.
        const owner = taskIds.open({ route: route.route, identity: ctx.request.identity.key }, params.taskId);
        const member = owner === undefined ? undefined : byName.get(owner.server);
        if (owner === undefined || member === undefined)
          return refuse('invalid_params', { ids: [id], data: { detail: 'no such task' } });
        return routed(ctx, member, { ...message, params: { ...params, taskId: owner.id } }, owner.id, true);
      }
      default:
        return refuse('method_not_found', {
          ids: [id],
          data: { detail: 'not served on a federated route yet' },
        });
    }
  }

  /** The link to `member` for this request: its session's, one the gateway keeps, or none (absent). */
  function linkOf(
    ctx: Context,
    member: Member,
  ): Link | Refusal | undefined | Promise<Link | Refusal | undefined> {
    if (ctx.sessions !== undefined) return ctx.sessions.get(member.name);
    return member.statelessLink(ctx.request);
  }

  /**
   * One request to the one server it belongs to. Its answer is relayed as the server gave it
   * (streamed, SSE included), but for a 2026-07-28 caller of a 2025-era server, whose results are
   * read and given the fields a modern client expects. A server that ended the caller's session
   * ends the federated session (404: the client initializes again).
   */
  async function routed(
    ctx: Context,
    member: Member,
    message: Message,
    name?: string,
    taskMethod = false,
  ): Promise<UpstreamAnswer | Refusal> {
    const id = message.id as RpcId;
    for (let attempt = 0; ; attempt++) {
      const found = linkOf(ctx, member);
      const link = found instanceof Promise ? await found : found;
      if (link === undefined)
        return refuse('upstream_unavailable', {
          ids: [id],
          data: {
            detail: `server ${member.name} was not available when this session began: open a new session`,
          },
        });
      if (isRefusal(link)) return { ...link, ids: [id] };
      const running = inFlightKey(ctx, id);
      inFlight.set(running, member);
      // Whose progress token this is: progress on the GET stream is relayed only from its server.
      const params = message.params as Record<string, unknown> | undefined;
      const token = (params?._meta as Record<string, unknown> | undefined)?.progressToken;
      const progressKey =
        typeof token === 'string' || typeof token === 'number' ? inFlightKey(ctx, token) : undefined;
      if (progressKey !== undefined) progressOwners.set(progressKey, member);
      const done = (): void => {
        inFlight.delete(running);
        if (progressKey !== undefined && progressOwners.get(progressKey) === member)
          progressOwners.delete(progressKey);
      };
      const answer =
        link.translate === 'toLegacy'
          ? await legacyCall(ctx, member, link, message, name)
          : await member.send(ctx.request, message, link, name);
      const streamed = !isRefusal(answer) && isEventStream(answer.headers['content-type']);
      // A JSON answer came whole with its headers: nothing is left running to cancel.
      if (streamed && link.translate === 'none') answer.body.once('close', done);
      else done();
      if (isRefusal(answer)) {
        if (answer.reason === 'session_not_found' && link.translate === 'toLegacy' && attempt === 0) {
          // The server ended the session the gateway kept for this caller: open another, once.
          member.forgetLink(ctx.request, link);
          continue;
        }
        if (answer.reason === 'session_not_found' && ctx.sessions !== undefined) void endOthers(ctx, member);
        return { ...answer, ids: [id] };
      }
      if (link.translate === 'toLegacy') return { ...answer, servers: [member.name] };
      if (link.translate === 'toModern') return translated(answer, id);
      // Task ids in what a task-augmented call or a tasks method answers are sealed to the caller.
      const tasks = taskMethod || params?.task !== undefined;
      if (!streamed) {
        if (answer.status !== 200 || bodyKind(answer.headers['content-type']) !== 'json')
          return { ...answer, servers: [member.name] };
        if (tasks) return withSealedTasks(ctx, member, answer, id);
        // Relayed only when it answers this request (the relay reads and checks it).
        return { ...answer, servers: [member.name], answers: id as string | number };
      }
      return {
        ...answer,
        body: withSealedRequests(ctx, member, link, answer, { id, progressToken: token }, tasks),
        servers: [member.name],
      };
    }

    /**
     * A 2025-era client's answer from a server that speaks only 2026-07-28, read whole: its
     * `input_required` — which a 2025-era client could not read — is an error for it (asking that
     * client for the input is not built: DESIGN.md's era table, legacy ↔ modern).
     */
    async function translated(answer: UpstreamAnswer, id: RpcId): Promise<UpstreamAnswer | Refusal> {
      const read = await readMemberMessages(answer, deps.maxResponseBytes, deps.maxJsonDepth);
      if (typeof read === 'string')
        return refuse(read === 'too_large' ? 'response_too_large' : 'upstream_rejected', { ids: [id] });
      const response = read.find((m) => m.id === id && m.method === undefined);
      if (response === undefined) return refuse('upstream_rejected', { ids: [id] });
      const result = response.result as Record<string, unknown> | undefined;
      let out: Message = response;
      if (typeof result === 'object' && result !== null && result.resultType === 'input_required')
        out = {
          jsonrpc: '2.0',
          id,
          error: {
            code: -32603,
            message:
              'The server needs input from the client, which the gateway cannot yet ask a 2025-era client for',
            data: { reason: 'input_required_unsupported' },
          },
        };
      return { ...jsonAnswer(200, out, {}), servers: [member.name] };
    }
  }

  /**
   * A 2026-07-28 client's call of a 2025-era HTTP server (the era table, modern ↔ legacy): the
   * server's call stream is read message by message; a request the server makes of the client
   * mid-call goes to the client as `input_required` (for the capabilities the client's request
   * declared) while the call waits, still running, for the client's retry — which carries the
   * answer (`inputResponses`) and the `requestState` handle, and gets the call's answer or the
   * server's next question. A retry whose state does not resume a call of this identity on this
   * server, or lacks the answer, is refused and reaches no server.
   */
  async function legacyCall(
    ctx: Context,
    member: Member,
    link: Link,
    message: Message,
    name: string | undefined,
  ): Promise<UpstreamAnswer | Refusal> {
    const id = message.id as RpcId;
    const params = (message.params ?? {}) as Record<string, unknown>;
    if (params.requestState !== undefined || params.inputResponses !== undefined) {
      const resumed = parkedCalls.take(
        params.requestState,
        ctx.request.identity.key,
        member.name,
        params.inputResponses,
      );
      if (resumed === undefined)
        return jsonAnswer(200, { jsonrpc: '2.0', id, error: UNKNOWN_REQUEST_STATE }, {});
      const { call, input } = resumed;
      const stop = (): void => call.cancellation.cancel();
      ctx.request.cancellation.onCancel(stop);
      void tell(call.request, member, call.link, { jsonrpc: '2.0', id: call.asked, result: input });
      return continueCall(ctx, member, { ...call, request: ctx.request }, id, stop);
    }
    const cancellation = new Cancellation();
    const stop = (): void => cancellation.cancel();
    ctx.request.cancellation.onCancel(stop);
    const answer = await member.send(ctx.request, message, link, name, cancellation);
    if (isRefusal(answer)) {
      ctx.request.cancellation.off(stop);
      return answer;
    }
    const call: Running = {
      request: ctx.request,
      link,
      callId: id,
      stream: memberMessages(answer, deps.maxResponseBytes, deps.maxJsonDepth),
      cancellation,
      capabilities: inputCapabilities(message) ?? NONE_DECLARED,
    };
    return continueCall(ctx, member, call, id, stop);
  }

  /** The client's answer to what `call`'s server says next: the call's response, or its next question. */
  async function continueCall(
    ctx: Context,
    member: Member,
    call: Running,
    id: RpcId,
    stop: () => void,
  ): Promise<UpstreamAnswer | Refusal> {
    let outcome: CallOutcome;
    try {
      outcome = await nextOutcome(call.stream, call.callId, call.capabilities, (reply) =>
        tell(call.request, member, call.link, reply),
      );
    } catch {
      // The server's stream failed (it ended the connection, or stayed silent past `idleMs`).
      outcome = { unreadable: 'status' };
    } finally {
      ctx.request.cancellation.off(stop);
    }
    if ('response' in outcome) {
      const result = outcome.response.result;
      const complete =
        typeof result === 'object' && result !== null && !Array.isArray(result)
          ? { resultType: 'complete', ...result }
          : result;
      void call.stream.return(undefined);
      return jsonAnswer(
        200,
        { ...outcome.response, id, ...(complete === undefined ? {} : { result: complete }) },
        {},
      );
    }
    if ('asks' in outcome) {
      const key = `portcullis-${++nextKey}`;
      const state = parkedCalls.park({
        ...call,
        identity: ctx.request.identity.key,
        server: member.name,
        asked: outcome.asks.id,
        key,
      });
      return jsonAnswer(200, { jsonrpc: '2.0', id, result: inputRequired(key, outcome.asks, state) }, {});
    }
    void call.stream.return(undefined);
    call.cancellation.cancel();
    return refuse(outcome.unreadable === 'too_large' ? 'response_too_large' : 'upstream_rejected', {
      ids: [id],
    });
  }

  /** No retry came in time (or the gateway stops): the server's request is refused and its call cancelled. */
  async function expire(call: Parked): Promise<void> {
    const member = byName.get(call.server);
    if (member !== undefined) {
      await tell(call.request, member, call.link, { jsonrpc: '2.0', id: call.asked, error: NO_CLIENT });
      await tell(call.request, member, call.link, {
        jsonrpc: '2.0',
        method: CANCELLED_NOTIFICATION,
        params: { requestId: call.callId, reason: 'The client did not retry in time' },
      });
    }
    void call.stream.return(undefined);
    call.cancellation.cancel();
  }

  /** One message to a server whose answer no one reads (a reply to its request, a notification). */
  async function tell(request: UpstreamRequest, member: Member, link: Link, message: Message): Promise<void> {
    const answer = await member.send(request, message, link, undefined, new Cancellation());
    if (!isRefusal(answer)) answer.body.resume();
  }

  /**
   * An SSE answer with every server request in it under a sealed gateway id (bound to this
   * server, the caller and this server's session): the client's answer can only come back to the
   * server that asked. Failures and the client leaving travel both ways between the two streams.
   */
  function withSealedRequests(
    ctx: Context,
    member: Member,
    link: Link,
    answer: UpstreamAnswer,
    answering: Answering,
    tasks: boolean,
  ): Readable {
    const rewriter = createSseRewriter(
      (data) => {
        const sealed = sealRequests(ctx, member, link, data, answering);
        if (sealed === 'foreign') {
          // Another request's answer: the client may have sent that id to another server.
          logger.warn(
            { server: member.name },
            'server answered, or reported progress of, another request on a call stream: refused',
          );
          return { unreadable: 'not_json' };
        }
        return tasks ? (sealTasksIn(ctx, member, sealed ?? data) ?? sealed) : sealed;
      },
      { maxEventLength: deps.maxResponseBytes },
    );
    return through(answer.body, rewriter);
  }

  /** One message's text with its task ids sealed to the caller; undefined when it names none. */
  function sealTasksIn(ctx: Context, member: Member, data: string): string | undefined {
    const scope = { route: route.route, identity: ctx.request.identity.key };
    const seal = (id: string) => taskIds.seal(scope, { server: member.name, id });
    return rewriteMessages(data, (message) => sealTaskIds(message, seal) ?? message);
  }

  /** A JSON answer naming tasks, read whole and given back with their ids sealed to the caller. */
  async function withSealedTasks(
    ctx: Context,
    member: Member,
    answer: UpstreamAnswer,
    id: RpcId,
  ): Promise<UpstreamAnswer | Refusal> {
    const read = await readMemberMessages(answer, deps.maxResponseBytes, deps.maxJsonDepth);
    if (typeof read === 'string')
      return refuse(read === 'too_large' ? 'response_too_large' : 'upstream_rejected', { ids: [id] });
    const scope = { route: route.route, identity: ctx.request.identity.key };
    const sealed = read.map(
      (message) =>
        sealTaskIds(message, (task) => taskIds.seal(scope, { server: member.name, id: task })) ?? message,
    );
    const [only] = sealed;
    // One answer, to this call: another id could answer a request the client sent another server.
    if (sealed.length !== 1 || only === undefined || only.id !== id)
      return refuse('upstream_rejected', { ids: [id] });
    return { ...jsonAnswer(200, only, {}), servers: [member.name] };
  }

  /** An event's data with the server's requests in it under sealed gateway ids; undefined: none in it. */
  function sealRequests(
    ctx: Context,
    member: Member,
    link: Link,
    data: string,
    answering: Answering | null,
  ): string | undefined | 'foreign' {
    const scope = { route: route.route, identity: ctx.request.identity.key, session: link.id };
    return sealServerRequests(
      data,
      (id) => sealRequestId(deps.sealer, scope, { server: member.name, id }),
      answering,
    );
  }

  /**
   * A client's answer to a server's request: to the server that asked, under the id it used — only
   * when the gateway id opens for this route, this identity and that server's session in the
   * client's session, and once; anything else is dropped (202) and logged, and reaches no server.
   */
  async function clientAnswer(ctx: Context, message: Message): Promise<UpstreamAnswer> {
    const scope = { route: route.route, identity: ctx.request.identity.key };
    const asked = openRequestId(deps.sealer, scope, message.id, (server) => ctx.sessions?.get(server)?.id);
    const member = asked === undefined ? undefined : byName.get(asked.server);
    const link = member === undefined ? undefined : linkOf(ctx, member);
    const ready = link instanceof Promise ? await link : link;
    if (asked === undefined || member === undefined || ready === undefined || isRefusal(ready)) {
      logger.info('client answer matched no server request of this caller: dropped');
      return jsonAnswer(202, undefined, {});
    }
    if (!answered.first(message.id as string, asked.expires)) {
      logger.warn({ server: member.name }, 'client answered a server request a second time: dropped');
      return jsonAnswer(202, undefined, {});
    }
    const answer = await member.send(ctx.request, { ...message, id: asked.id }, ready);
    if (!isRefusal(answer)) answer.body.resume();
    return { ...jsonAnswer(202, undefined, {}), servers: [member.name] };
  }

  /**
   * A client notification: to every server of the session (`initialized` was sent at `initialize`);
   * a server that speaks only 2026-07-28 hears none (`notifications/cancelled`, its one client
   * notification, goes only to the server running that request).
   */
  async function notify(ctx: Context, message: Message): Promise<UpstreamAnswer> {
    if (message.method === CANCELLED_NOTIFICATION) {
      // To the server running that request, and no other: ids are the client's, and two servers
      // may each be running a request of that id for other callers.
      const requestId = (message.params as { requestId?: unknown } | undefined)?.requestId;
      const member =
        typeof requestId === 'string' || typeof requestId === 'number'
          ? inFlight.get(inFlightKey(ctx, requestId))
          : undefined;
      const found = member === undefined ? undefined : linkOf(ctx, member);
      const link = found instanceof Promise ? await found : found;
      if (member !== undefined && link !== undefined && !isRefusal(link)) {
        const answer = await member.send(ctx.request, message, link);
        if (!isRefusal(answer)) answer.body.resume();
      }
      return jsonAnswer(202, undefined, {});
    }
    if (message.method !== INITIALIZED_NOTIFICATION)
      await Promise.all(
        members.map(async (member) => {
          const link = await linkOf(ctx, member);
          if (link === undefined || isRefusal(link)) return;
          if (link.translate === 'toModern') return;
          const answer = await member.send(ctx.request, message, link);
          if (!isRefusal(answer)) answer.body.resume();
        }),
      );
    return jsonAnswer(202, undefined, {});
  }

  /**
   * A legacy `initialize`: the client's own handshake with every server at once. Each server that
   * answers joins the session (its session id and version kept inside the client's sealed id);
   * one that does not stays absent for the session (logged). Capabilities are merged — without
   * `listChanged` and `subscribe`, whose notifications reach no one until streams are merged —,
   * `serverInfo` is the route's, and each server's `instructions` come under its name.
   */
  async function initialize(ctx: Context, message: Message): Promise<UpstreamAnswer | Refusal> {
    const id = message.id as RpcId;
    if (ctx.sessions !== undefined || isModern(ctx.request.version))
      return refuse('invalid_request', {
        ids: [id],
        data: { detail: 'the 2025-era handshake opens a session and stands alone' },
      });
    const asked = (message.params as Record<string, unknown> | undefined)?.protocolVersion;
    // Each server hears the client's own capabilities: what it asks the client (sampling,
    // elicitation, roots) comes back to it through sealed request ids.
    const opened = await Promise.all(members.map((member) => member.initialize(ctx.request, message)));
    const sessions = new Map<string, Link>();
    const results: [string, Readonly<Record<string, unknown>>][] = [];
    let failedRequired: Refusal | undefined;
    for (const [i, member] of members.entries()) {
      const outcome = opened[i];
      if (outcome === undefined || 'failure' in outcome) {
        logger.warn({ server: member.name, failure: outcome?.failure }, 'server left out of a new session');
        if (member.required) failedRequired ??= outcome?.refusal ?? refuse('upstream_unreachable');
        continue;
      }
      sessions.set(member.name, outcome.link);
      results.push([member.name, outcome.result]);
    }
    // What one client id can carry: servers with the longest ids are left out until it fits
    // (a required one cannot be). The sealed id stays far below header limits.
    for (const [server, link] of [...sessions].sort(
      ([, a], [, b]) => (b.id?.length ?? 0) - (a.id?.length ?? 0),
    )) {
      if (encodeSessions(sessions).length <= MAX_SESSIONS_TEXT) break;
      if (byName.get(server)?.required === true) continue;
      logger.warn(
        { server },
        'server left out of a new session: the session ids are too long to carry together',
      );
      sessions.delete(server);
      if (link.id !== undefined) void byName.get(server)?.end(link.id, link.version, ctx.request.identity);
    }
    if (encodeSessions(sessions).length > MAX_SESSIONS_TEXT)
      failedRequired ??= refuse('upstream_rejected', {
        data: { detail: "the required servers' session ids are too long to carry in one session id" },
      });
    if (failedRequired !== undefined) {
      // Every session opened for this client ends with it: none is left behind on a server.
      void endAll(ctx.request, sessions);
      return { ...failedRequired, ids: [id] };
    }
    if (sessions.size === 0) return refuse('upstream_unreachable', { ids: [id] });
    const version = typeof asked === 'string' && LEGACY_VERSIONS.has(asked) ? asked : LEGACY_VERSION;
    const instructions = results
      .filter(([, result]) => typeof result.instructions === 'string' && result.instructions !== '')
      .map(([server, result]) => `## ${server}\n${result.instructions as string}`)
      .join('\n\n');
    return {
      ...jsonAnswer(
        200,
        {
          jsonrpc: '2.0',
          id,
          result: {
            protocolVersion: version,
            capabilities: mergeCapabilities(
              results.map(([, result]) => ({ capabilities: result.capabilities, notifies: true })),
            ),
            serverInfo,
            ...(instructions === '' ? {} : { instructions }),
          },
        },
        { 'mcp-session-id': encodeSessions(sessions) },
      ),
      servers: [...sessions.keys()],
    };
  }

  /** `server/discover` (2026-07-28): the route as one server, from what every server says of itself. */
  async function discover(ctx: Context, message: Message): Promise<UpstreamAnswer | Refusal> {
    const id = message.id as RpcId;
    const listens = new Set<string>();
    const asked = await Promise.all(
      members.map(async (member) => {
        const link = await linkOf(ctx, member);
        if (link === undefined || isRefusal(link)) return undefined;
        if (link.translate === 'toLegacy') {
          // Through a session of the gateway's: nothing of it reaches `subscriptions/listen`.
          listens.add(member.name);
          return member.legacyResult;
        }
        const reply = await member.ask(ctx.request, message, link);
        return 'message' in reply ? (reply.message.result as Record<string, unknown> | undefined) : undefined;
      }),
    );
    const results = asked.flatMap((result, i) =>
      result === undefined ? [] : [[(members[i] as Member).name, result] as const],
    );
    for (const [i, member] of members.entries())
      if (asked[i] === undefined && member.required) return refuse('upstream_unreachable', { ids: [id] });
    const instructions = results
      .filter(([, result]) => typeof result.instructions === 'string' && result.instructions !== '')
      .map(([server, result]) => `## ${server}\n${result.instructions as string}`)
      .join('\n\n');
    return answer(id, {
      resultType: 'complete',
      ttlMs: 0,
      cacheScope: 'private',
      supportedVersions: [MODERN_VERSION],
      capabilities: mergeCapabilities(
        results.map(([server, result]) => ({
          capabilities: result.capabilities,
          notifies: !listens.has(server),
        })),
      ),
      _meta: { 'io.modelcontextprotocol/serverInfo': serverInfo },
      ...(instructions === '' ? {} : { instructions }),
    });
  }

  /**
   * A list fanned out to every server at once — the first page, or the pages a composite cursor
   * names — and merged. A server that fails or is slower than its `headersMs` is left out of
   * this answer (logged, counted) and out of its cursor, unless it is `required`.
   */
  async function list(ctx: Context, message: Message): Promise<UpstreamAnswer | Refusal> {
    const started = performance.now();
    const method = message.method as string;
    const id = message.id as RpcId;
    const listAnswer = listAnswerOf(method);
    if (listAnswer === undefined) return refuse('method_not_found', { ids: [id] });
    const params = (message.params ?? {}) as Record<string, unknown>;
    const scope = { route: route.route, method, identity: ctx.request.identity.key };
    let cursors: ServerCursors | undefined;
    if (params.cursor !== undefined) {
      cursors = typeof params.cursor === 'string' ? openCursor(deps.sealer, scope, params.cursor) : undefined;
      if (cursors === undefined)
        return refuse('invalid_params', { ids: [id], data: { detail: 'invalid or expired cursor' } });
    }
    const asked = members.filter((member) =>
      cursors === undefined ? true : typeof cursors[member.name] === 'string',
    );
    const replies = await Promise.all(
      asked.map(async (member) => {
        const link = await linkOf(ctx, member);
        if (link === undefined) return { failure: 'absent' as const };
        if (isRefusal(link)) return { failure: 'unreachable' as const, refusal: link };
        const own = cursors?.[member.name];
        const { cursor: _theirs, ...rest } = params;
        const forwarded = {
          ...message,
          params: own === undefined || own === null ? rest : { ...rest, cursor: own },
        };
        return member.ask(ctx.request, forwarded, link);
      }),
    );
    const pages: MemberPage[] = [];
    for (const [i, member] of asked.entries()) {
      const reply = replies[i];
      const result = reply !== undefined && 'message' in reply ? reply.message.result : undefined;
      if (typeof result === 'object' && result !== null && !Array.isArray(result)) {
        pages.push({ server: member.name, result: result as Record<string, unknown> });
        learn(member.name, listAnswer.field, result as Record<string, unknown>, cursors === undefined);
        continue;
      }
      const failure = reply !== undefined && 'failure' in reply ? reply.failure : 'error';
      if (failure === 'absent') continue;
      logger.warn({ server: member.name, method, failure }, 'server left out of a merged list');
      if (member.required)
        return reply !== undefined && 'refusal' in reply && reply.refusal !== undefined
          ? { ...reply.refusal, ids: [id] }
          : refuse(failure === 'timeout' ? 'upstream_timeout' : 'upstream_rejected', {
              ids: [id],
              data: { detail: `required server ${member.name} failed` },
            });
    }
    const merged = mergePages(listAnswer, pages, names);
    const { cursor: next, dropped } = sealFittingCursor(deps.sealer, scope, merged.next);
    for (const server of dropped)
      logger.warn({ server, method }, 'server cursor too long to carry: its later pages left out');
    if (next !== undefined) merged.result.nextCursor = next;
    // A 2025-era client reads a 2025-era result: the 2026-07-28 fields are left out.
    if (!isModern(ctx.request.version)) {
      delete merged.result.resultType;
      delete merged.result.ttlMs;
      delete merged.result.cacheScope;
    }
    deps.metrics?.federationFanOutDuration.observe(
      { route: route.route, method },
      (performance.now() - started) / 1000,
    );
    return { ...answer(id, merged.result), servers: pages.map((page) => page.server) };
  }

  /** What a merged list teaches about resource ownership. */
  function learn(server: string, field: string, result: Record<string, unknown>, firstPage: boolean): void {
    const items = result[field];
    if (!Array.isArray(items)) return;
    if (field === 'resources') owners.learnResources(server, items);
    else if (field === 'resourceTemplates') owners.learnTemplates(server, items, firstPage);
  }

  /** `logging/setLevel` and the like: to every server of the session; answered `{}` when any took it. */
  async function everyServer(ctx: Context, message: Message): Promise<UpstreamAnswer | Refusal> {
    const id = message.id as RpcId;
    const replies = await Promise.all(
      members.map(async (member) => {
        const link = await linkOf(ctx, member);
        if (link === undefined || isRefusal(link)) return false;
        const reply = await member.ask(ctx.request, message, link);
        return 'message' in reply && reply.message.result !== undefined;
      }),
    );
    return replies.some(Boolean) ? answer(id, {}) : refuse('upstream_unreachable', { ids: [id] });
  }

  /**
   * The owner of a resource URI. A URI nothing taught yet (a client reading a URI a tool result
   * named, before any list) makes the gateway ask every server's resource lists once — the first
   * page of each, at most once every few seconds per route — before it is called not found.
   */
  async function ownerOf(ctx: Context, uri: string): Promise<string | undefined> {
    let owner = owners.ownerOf(uri);
    if (owner === undefined && Date.now() - lastDiscovery > DISCOVERY_INTERVAL_MS) {
      lastDiscovery = Date.now();
      for (const method of RESOURCE_LIST_METHODS)
        await list(ctx, { jsonrpc: '2.0', id: 0, method, params: {} }).then((answered) => {
          if (!isRefusal(answered)) answered.body.resume();
        });
      owner = owners.ownerOf(uri);
    }
    if (owner !== undefined && 'conflict' in owner) {
      logger.warn({ uri, servers: owner.conflict }, 'resource URI claimed by two servers: refused');
      return undefined;
    }
    return owner?.server;
  }

  /**
   * `subscriptions/listen` (2026-07-28): to every server that can take it (stdio servers, and HTTP
   * servers that speak 2026-07-28), each asked for the list_changed notifications the client asked
   * for and for the subscribed URIs it owns (a URI no server owns is not honored).
   */
  async function listen(
    ctx: Context,
    message: Message,
    params: Record<string, unknown>,
  ): Promise<UpstreamAnswer | Refusal> {
    const asked = (params.notifications ?? {}) as Record<string, unknown>;
    const flags: Record<string, unknown> = {};
    for (const row of LIST_CHANGED_FILTERS) if (asked[row.filter] === true) flags[row.filter] = true;
    const owned = new Map<string, string[]>();
    for (const uri of Array.isArray(asked.resourceSubscriptions) ? asked.resourceSubscriptions : []) {
      if (typeof uri !== 'string') continue;
      const owner = await ownerOf(ctx, uri);
      if (owner !== undefined) owned.set(owner, [...(owned.get(owner) ?? []), uri]);
    }
    const targets: ListenTarget[] = [];
    for (const member of members) {
      const found = linkOf(ctx, member);
      const link = found instanceof Promise ? await found : found;
      // A 2025-era HTTP server has no listen: its notifications would need a GET stream of the
      // caller's session, which a 2026-07-28 caller does not hold.
      if (link === undefined || isRefusal(link) || link.translate !== 'none') continue;
      const uris = owned.get(member.name) ?? [];
      if (Object.keys(flags).length === 0 && uris.length === 0) continue;
      targets.push({
        member,
        link,
        notifications: { ...flags, ...(uris.length > 0 ? { resourceSubscriptions: uris } : {}) },
      });
    }
    // Nothing any server could honor: the acknowledgment says so, and the stream stays open.
    const deadline = Math.max(0, ...targets.map((target) => target.member.deadline));
    const answer = await mergedListen(ctx.request, message, targets, deadline);
    return isRefusal(answer) ? answer : { ...answer, servers: targets.map((target) => target.member.name) };
  }

  /**
   * `completion/complete`: a prompt's routes by its exposed name, a resource template's by its
   * owner — chosen by `ref.type`, as the policy decided it (`byReference`): a resource reference
   * that also carries a `name` was allowed on its URI and must not go to the server that name's
   * prefix picks.
   */
  async function completion(
    ctx: Context,
    message: Message,
    params: Record<string, unknown>,
  ): Promise<UpstreamAnswer | Refusal> {
    const id = message.id as RpcId;
    const ref = params.ref as Record<string, unknown> | undefined;
    if (ref?.type === 'ref/prompt' && typeof ref.name === 'string') {
      const exposed = names.resolve(ref.name);
      const member = exposed === undefined ? undefined : byName.get(exposed.server);
      if (exposed === undefined || member === undefined) return refuse('method_denied', { ids: [id] });
      return routed(ctx, member, { ...message, params: { ...params, ref: { ...ref, name: exposed.name } } });
    }
    if (ref?.type === 'ref/resource' && typeof ref.uri === 'string') {
      let owner = owners.ownerOfTemplate(ref.uri);
      if (owner === undefined) {
        await ownerOf(ctx, ref.uri);
        owner = owners.ownerOfTemplate(ref.uri);
      }
      if (owner !== undefined && 'server' in owner)
        return routed(ctx, byName.get(owner.server) as Member, message);
      return notFound(ctx, id, ref.uri);
    }
    return refuse('invalid_params', { ids: [id] });
  }

  /** Resource not found, as each generation says it (-32002 on 2025-11-25, -32602 on 2026-07-28). */
  function notFound(ctx: Context, id: RpcId, uri: string): UpstreamAnswer {
    const code = isModern(ctx.request.version) ? -32602 : -32002;
    return jsonAnswer(
      200,
      { jsonrpc: '2.0', id, error: { code, message: 'Resource not found', data: { uri } } },
      {},
    );
  }

  /** DELETE: every server's session ends. */
  async function endSession(ctx: Context): Promise<UpstreamAnswer> {
    if (ctx.sessions === undefined) return jsonAnswer(405, undefined, { allow: 'POST' });
    await endAll(ctx.request, ctx.sessions);
    return jsonAnswer(200, undefined, {});
  }

  async function endAll(request: UpstreamRequest, sessions: MemberSessions): Promise<void> {
    await Promise.all(
      [...sessions].map(([server, link]) =>
        link.id === undefined ? undefined : byName.get(server)?.end(link.id, link.version, request.identity),
      ),
    );
  }

  /** One server ended its session: the others' end too (the client initializes again). */
  async function endOthers(ctx: Context, ended: Member): Promise<void> {
    const sessions = new Map(ctx.sessions ?? []);
    sessions.delete(ended.name);
    await endAll(ctx.request, sessions);
  }
}

/**
 * The longest text a federated session carries for its servers (ids and versions): sealed with the
 * route, identity and version it stays under the sealed ids the gateway opens (`proxy/sessions.ts`).
 */
const MAX_SESSIONS_TEXT = 4096;

/** A 2026-07-28 request that declared no client capabilities: nothing can be asked of its client. */
const NONE_DECLARED: ReadonlySet<string> = new Set();

/** How often an unknown URI may make a route ask its servers for their resource lists. */
const DISCOVERY_INTERVAL_MS = 5_000;
/** The lists that teach who owns a resource URI: resources and resource templates. */
const RESOURCE_LIST_METHODS = [...LIST_METHODS]
  .filter(([, list]) => list.table === 'resources')
  .map(([method]) => method);

function answer(id: RpcId, result: Readonly<Record<string, unknown>>): UpstreamAnswer {
  return jsonAnswer(200, { jsonrpc: '2.0', id, result }, {});
}

/**
 * The capabilities of the route as one server: each kind any server offers, with what is true of
 * the merge. `listChanged` and `subscribe` only from servers whose notifications reach the client
 * (`notifies`): in a legacy session every server's, through the merged GET stream; for a
 * 2026-07-28 client those that take part in `subscriptions/listen` (not a 2025-era HTTP server,
 * reached through a session of the gateway's). `completions` and `logging` pass when any server
 * has them.
 */
function mergeCapabilities(
  all: readonly { readonly capabilities: unknown; readonly notifies: boolean }[],
): Record<string, unknown> {
  const merged: Record<string, unknown> = {};
  for (const { capabilities, notifies } of all) {
    if (typeof capabilities !== 'object' || capabilities === null) continue;
    for (const [kind, value] of Object.entries(capabilities)) {
      if (kind === 'experimental' || typeof value !== 'object' || value === null) continue;
      const { listChanged, subscribe, ...rest } = value as Record<string, unknown>;
      const before = (merged[kind] ?? {}) as Record<string, unknown>;
      merged[kind] = {
        ...before,
        ...rest,
        ...((notifies && listChanged === true) || before.listChanged === true ? { listChanged: true } : {}),
        ...((notifies && subscribe === true) || before.subscribe === true ? { subscribe: true } : {}),
      };
    }
  }
  return merged;
}

/** The messages of a POST as the gateway forwards them: the authorized text, parsed again. */
function parsedMessages(text: string | undefined): readonly Message[] {
  if (text === undefined) return [];
  const value: unknown = JSON.parse(text);
  return (Array.isArray(value) ? value : [value]) as Message[];
}
