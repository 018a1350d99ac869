import { randomBytes } from 'node:crypto';
import { refuse } from '../../errors.js';
import {
  CANCELLED_NOTIFICATION,
  capabilityOf,
  isBroadcast,
  LISTEN,
  LISTEN_ACKNOWLEDGED,
  PING,
  PROGRESS_NOTIFICATION,
  SUBSCRIPTION_ID_META,
} from '../../jsonrpc/methods.js';
import { INPUT_WAIT_MS, inputRequired, NO_CLIENT } from '../input-required.js';
import type { Call, CallOwner, ClientId } from './call.js';
import type { ChildMessage, LineEdges } from './child.js';

/** The generation a process speaks, learned at its start (DESIGN.md era table). */
export type Era = 'legacy' | 'modern';

/** What the handshake learned: answered to clients from here (`initialize`, `server/discover`). */
export interface ServerFacts {
  readonly era: Era;
  /** The version the gateway and the process agreed on. */
  readonly version: string;
  readonly capabilities: Readonly<Record<string, unknown>>;
  readonly serverInfo: Readonly<Record<string, unknown>>;
  readonly instructions: string | undefined;
}

/** How the process's messages are told apart from each other, for counting what was dropped. */
export type Dropped =
  | 'unknown_response'
  | 'unattributed_notification'
  | 'unattributed_request'
  | 'undeliverable_notification'
  | 'broadcast';

export interface ConnectionEvents {
  /** Writes one message to the child's stdin. */
  write(message: unknown): void;
  /** A process-wide notification (the `list_changed` notifications, `resources/updated`): for open GET streams. */
  broadcast(message: ChildMessage): void;
  /** Something the child said that no client may receive: counted and logged, never relayed. */
  dropped(why: Dropped, method: string | undefined): void;
  /** Hold back (`true`) or go on reading (`false`) the child's output: a client is not reading. */
  pressure(blocked: boolean): void;
}

/** A request the gateway sent the child, waiting for its answer. */
type Pending =
  | { readonly kind: 'call'; readonly call: Call; readonly clientId: ClientId; readonly token: unknown }
  /** Its call was answered `input_required`: it waits for the client's retry. */
  | { readonly kind: 'parked'; readonly token: unknown; answer?: ChildMessage }
  | { readonly kind: 'own'; readonly settle: (message: ChildMessage) => void };

/** A request the child sent, handed to a client under a gateway id, waiting for its answer. */
interface Held {
  readonly childId: string | number;
  readonly owner: CallOwner;
  readonly call: Call;
}

/**
 * A legacy server request turned into a 2026-07-28 `input_required` result: the request of the
 * call that caused it waits here for the client's retry, which carries the answer.
 */
interface Parked {
  /** The gateway id of the client request still running on the process. */
  readonly pendingId: number;
  /** The server request the retry answers, and the key the client knows it by. */
  readonly childId: string | number;
  readonly key: string;
  readonly owner: CallOwner;
  readonly timer: NodeJS.Timeout;
}

/**
 * Where a server message with neither a progress token nor a subscription id goes (DESIGN.md
 * "Attribution"): `latest` — the one identity's (or session's) latest call; `only` (a shared
 * process) — nowhere: such messages are dropped, such requests answered with an error.
 */
export type Attribution = 'latest' | 'only';

/** A parked request's answer that was too long to read. */
const TOO_LARGE = {
  code: -31097,
  message: 'Upstream response too large',
  data: { reason: 'response_too_large' },
};

/** What the gateway's own requests get when the process is gone. */
const PROCESS_EXITED = { code: -32000, message: 'process exited' };

/**
 * The gateway as the one MCP client of one stdio process (DESIGN.md "Upstreams" → stdio): many
 * clients' requests share it. Every request gets an id of the gateway's (a number it counts), and
 * its progress token the same number, so no client can answer, cancel or observe another's; the
 * child's answers and notifications are matched back by them and restored to what the client sent.
 * A message the gateway cannot attribute to exactly one client is dropped and counted — never
 * guessed onto another identity.
 */
export class Connection {
  facts: ServerFacts | undefined = undefined;
  private closed = false;
  private nextId = 1;
  private nextHeld = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly held = new Map<string, Held>();
  /** Parked requests by the `requestState` handed to their client. */
  private readonly parked = new Map<string, Parked>();
  /** Calls in flight, oldest first (a Set keeps insertion order). */
  private readonly calls = new Set<Call>();
  /** Calls whose client is not reading its stream now. */
  private readonly blocked = new Set<Call>();

  constructor(
    private readonly events: ConnectionEvents,
    /** `latest` (one identity per process): its most recent call; `only` (shared): the one call in flight. */
    private readonly attribution: Attribution,
    /** The roots the gateway answers `roots/list` with (`clientCapabilities.roots`); none: refused. */
    private readonly roots?: readonly Readonly<Record<string, unknown>>[] | undefined,
  ) {}

  /** Requests in flight: the process is idle at zero. */
  get inFlight(): number {
    return this.calls.size;
  }

  /** Sends a request of the gateway's own (the handshake); resolves with the child's answer. */
  ask(method: string, params: Readonly<Record<string, unknown>>): Promise<ChildMessage> {
    const id = this.nextId++;
    if (this.closed) return Promise.resolve({ jsonrpc: '2.0', id, error: PROCESS_EXITED });
    return new Promise((settle) => {
      this.pending.set(id, { kind: 'own', settle });
      this.events.write({ jsonrpc: '2.0', id, method, params });
    });
  }

  /**
   * Opens a 2026-07-28 subscription of the gateway's own (for its legacy sessions' GET streams):
   * what the process sends on it is broadcast. Returns its id, to cancel it by.
   */
  listenOwn(params: Readonly<Record<string, unknown>>): number {
    const id = this.nextId++;
    this.pending.set(id, { kind: 'own', settle: () => undefined });
    this.events.write({ jsonrpc: '2.0', id, method: LISTEN, params });
    return id;
  }

  /** Ends a request of the gateway's own that is still running (a replaced subscription). */
  cancelOwn(id: number): void {
    if (this.pending.get(id)?.kind !== 'own') return;
    this.pending.delete(id);
    this.events.write({ jsonrpc: '2.0', method: CANCELLED_NOTIFICATION, params: { requestId: id } });
  }

  /** Sends a notification of the gateway's own (`notifications/initialized`). */
  notify(method: string, params?: Readonly<Record<string, unknown>>): void {
    this.events.write({ jsonrpc: '2.0', method, ...(params === undefined ? {} : { params }) });
  }

  /** Starts tracking a call: server messages may be attributed to it from now on. */
  begin(call: Call): void {
    if (this.closed) {
      call.fail();
      return;
    }
    this.calls.add(call);
  }

  /**
   * Forwards one client request of `call` under a gateway id; a progress token the client asked
   * for is replaced by the same id (restored on each `notifications/progress`).
   */
  forward(call: Call, message: Readonly<Record<string, unknown>>): void {
    const clientId = message.id as ClientId;
    const id = this.nextId++;
    const params = message.params as Record<string, unknown> | undefined;
    const meta = params?._meta as Record<string, unknown> | undefined;
    const token = meta?.progressToken;
    this.pending.set(id, { kind: 'call', call, clientId, token });
    const rewritten =
      token === undefined
        ? { ...message, id }
        : { ...message, id, params: { ...params, _meta: { ...meta, progressToken: id } } };
    this.events.write(rewritten);
  }

  /**
   * A client's `notifications/cancelled`: only for a request of the same owner still in flight
   * (anything else is dropped: a client cannot cancel what is not its own).
   */
  cancelFor(owner: CallOwner, message: Readonly<Record<string, unknown>>): void {
    const params = message.params as Record<string, unknown> | undefined;
    const requestId = params?.requestId;
    for (const [id, entry] of this.pending) {
      if (entry.kind !== 'call' || entry.clientId !== requestId) continue;
      if (!sameOwner(entry.call.owner, owner)) continue;
      this.pending.delete(id);
      this.events.write({ ...message, params: { ...params, requestId: id } });
      return;
    }
  }

  /**
   * A client's answer to a server request it was sent: delivered to the child under the child's
   * id only from the owner it was sent to. False when none matches (the caller answers 202 and
   * counts it).
   */
  answerHeld(owner: CallOwner, message: Readonly<Record<string, unknown>>): boolean {
    const key = String(message.id);
    const entry = this.held.get(key);
    if (entry === undefined || !sameOwner(entry.owner, owner)) return false;
    this.held.delete(key);
    this.events.write({ ...message, id: entry.childId });
    return true;
  }

  /**
   * A call's client stopped or resumed reading. Where the process serves one owner its output is
   * held back while any of that owner's streams is full (the owner slows its own server); a shared
   * process is never held back for one client — a client that does not read is cut off at
   * {@link MAX_BUFFERED_BYTES} instead.
   */
  setBlocked(call: Call, blocked: boolean): void {
    if (this.attribution !== 'latest') return;
    const before = this.blocked.size;
    if (blocked) this.blocked.add(call);
    else this.blocked.delete(call);
    if (before === 0 && this.blocked.size > 0) this.events.pressure(true);
    else if (before > 0 && this.blocked.size === 0) this.events.pressure(false);
  }

  /**
   * A line too long to read (over `limits.maxResponseBytes`): the call it answered fails at once
   * with `response_too_large`, when its top-level id (first or last member) names a request in
   * flight. Any other such line is only counted: a call it may have answered times out.
   */
  tooLarge(edges: LineEdges | undefined): void {
    if (edges === undefined) return;
    // Only a response names a call of the gateway's: its id first and a result or error right
    // after, or a result or error first and its id last. A request of the child's own carries
    // numbers of its own id space, which may equal a gateway id.
    const named =
      /^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(\d+)\s*,\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"(?:result|error)"/.exec(
        edges.head,
      )?.[1] ??
      (/^\s*\{\s*"(?:result|error)"/.test(edges.head)
        ? /,\s*"id"\s*:\s*(\d+)\s*\}\s*$/.exec(edges.tail)?.[1]
        : undefined);
    if (named === undefined) return;
    const id = Number(named);
    const entry = this.pending.get(id);
    if (entry?.kind === 'parked') {
      // Its retry gets the refusal as its answer.
      entry.answer = { jsonrpc: '2.0', id, error: TOO_LARGE };
      return;
    }
    if (entry?.kind !== 'call') return;
    this.pending.delete(id);
    entry.call.fail(refuse('response_too_large'));
  }

  /** The call is over (answered, refused, its client gone): its requests still open are cancelled. */
  end(call: Call, reason: string | undefined): void {
    this.setBlocked(call, false);
    if (!this.calls.delete(call)) return;
    for (const [id, entry] of this.pending) {
      if (entry.kind !== 'call' || entry.call !== call) continue;
      this.pending.delete(id);
      if (reason !== undefined)
        this.events.write({
          jsonrpc: '2.0',
          method: CANCELLED_NOTIFICATION,
          params: { requestId: id, reason },
        });
    }
    for (const [key, entry] of this.held) if (entry.call === call) this.held.delete(key);
  }

  /** The process is gone: every call fails, every own request is answered with an error. */
  close(): void {
    this.closed = true;
    for (const call of [...this.calls]) call.fail();
    this.calls.clear();
    for (const entry of this.pending.values())
      if (entry.kind === 'own') entry.settle({ jsonrpc: '2.0', error: PROCESS_EXITED });
    this.pending.clear();
    this.held.clear();
    for (const parked of this.parked.values()) clearTimeout(parked.timer);
    this.parked.clear();
  }

  /** One message from the child's stdout. */
  receive(message: ChildMessage): void {
    const method = message.method;
    if (typeof method !== 'string') {
      this.response(message);
      return;
    }
    if (message.id === undefined) {
      this.notification(method, message);
      return;
    }
    this.request(method, message);
    return;
  }

  private response(message: ChildMessage): void {
    const id = message.id;
    const entry = typeof id === 'number' ? this.pending.get(id) : undefined;
    if (entry === undefined || !('result' in message || 'error' in message)) {
      this.events.dropped('unknown_response', undefined);
      return;
    }
    if (entry.kind === 'parked') {
      // Finished without the input it asked for: kept for the retry.
      entry.answer = message;
      return;
    }
    this.pending.delete(id as number);
    if (entry.kind === 'own') entry.settle(message);
    else entry.call.answer(entry.clientId, restoreSubscriptionId(message, id as number, entry.clientId));
  }

  private notification(method: string, message: ChildMessage): void {
    const params = message.params as Record<string, unknown> | undefined;
    const meta = params?._meta as Record<string, unknown> | undefined;
    const subscription = meta?.[SUBSCRIPTION_ID_META];
    if (subscription !== undefined) {
      // A 2026-07-28 subscription's message: it belongs to the listen request whose id it names.
      const entry = typeof subscription === 'number' ? this.pending.get(subscription) : undefined;
      if (entry?.kind === 'call') {
        const restored = {
          ...message,
          params: { ...params, _meta: { ...meta, [SUBSCRIPTION_ID_META]: entry.clientId } },
        };
        this.toClient(entry.call, restored, method);
      } else if (entry?.kind === 'own') {
        // The gateway's own subscription: its acknowledgment is for the gateway; the rest goes
        // to the legacy sessions, which know nothing of subscription ids.
        if (method === LISTEN_ACKNOWLEDGED) return;
        const { [SUBSCRIPTION_ID_META]: _, ...rest } = meta as Record<string, unknown>;
        const plain = Object.keys(rest).length === 0 ? withoutMeta(params) : { ...params, _meta: rest };
        this.events.broadcast({ ...message, params: plain });
      } else this.events.dropped('unattributed_notification', method);
      return;
    }
    if (method === PROGRESS_NOTIFICATION) {
      const entry = this.pending.get(params?.progressToken as number);
      if (entry?.kind !== 'call') {
        this.events.dropped('unattributed_notification', method);
        return;
      }
      this.toClient(entry.call, { ...message, params: { ...params, progressToken: entry.token } }, method);
      return;
    }
    if (method === CANCELLED_NOTIFICATION) {
      // The child gave up one of its own requests to a client: that client is told, in its ids.
      for (const [key, entry] of this.held) {
        if (entry.childId !== params?.requestId) continue;
        this.held.delete(key);
        this.toClient(entry.call, { ...message, params: { ...params, requestId: key } }, method);
        return;
      }
      this.events.dropped('unattributed_notification', method);
      return;
    }
    if (isBroadcast(method)) {
      this.events.broadcast(message);
      return;
    }
    const call = this.attributed();
    if (call === undefined) {
      this.events.dropped('unattributed_notification', method);
      return;
    }
    this.toClient(call, message, method);
  }

  private request(method: string, message: ChildMessage): void {
    const childId = message.id as string | number;
    if (method === PING) {
      this.events.write({ jsonrpc: '2.0', id: childId, result: {} });
      return;
    }
    if (capabilityOf(method) === 'roots') {
      // Roots are the route's, answered here; never a client's (DESIGN.md, stdio "Details").
      if (this.roots === undefined) {
        this.events.dropped('unattributed_request', method);
        this.events.write({ jsonrpc: '2.0', id: childId, error: NO_CLIENT });
      } else this.events.write({ jsonrpc: '2.0', id: childId, result: { roots: this.roots } });
      return;
    }
    const call = this.attributed();
    if (call !== undefined && !call.finished && !call.takesServerRequests) {
      const capability = capabilityOf(method);
      if (capability !== undefined && call.inputCapabilities?.has(capability) === true)
        if (this.park(call, childId, message)) return;
    }
    if (call === undefined || !call.takesServerRequests || call.finished) {
      this.events.dropped('unattributed_request', method);
      this.events.write({ jsonrpc: '2.0', id: childId, error: NO_CLIENT });
      return;
    }
    // The client sees an id of the gateway's, so its answer can only come back to this request.
    const key = `portcullis-${this.nextHeld++}`;
    this.held.set(key, { childId, owner: call.owner, call });
    call.deliver({ ...message, id: key });
  }

  /**
   * Answers `call` with an `input_required` result carrying the server's request (2026-07-28's
   * multi round-trip pattern replaces server-initiated requests): the call's request keeps
   * running on the process, parked until the client retries with `requestState` — a random
   * handle to this state, never the state itself, bound to the call's owner.
   */
  private park(call: Call, childId: string | number, message: ChildMessage): boolean {
    let pendingId: number | undefined;
    let clientId: ClientId | undefined;
    let token: unknown;
    for (const [id, entry] of this.pending)
      if (entry.kind === 'call' && entry.call === call) {
        if (pendingId !== undefined) return false; // more than one request: no single retry can carry it
        pendingId = id;
        clientId = entry.clientId;
        token = entry.token;
      }
    if (pendingId === undefined || clientId === undefined) return false;
    const key = `portcullis-${this.nextHeld++}`;
    const requestState = randomBytes(32).toString('base64url');
    const timer = setTimeout(() => this.expire(requestState), INPUT_WAIT_MS);
    timer.unref();
    this.pending.set(pendingId, { kind: 'parked', token });
    this.parked.set(requestState, { pendingId, childId, key, owner: call.owner, timer });
    call.answer(clientId, { jsonrpc: '2.0', result: inputRequired(key, message, requestState) });
    return true;
  }

  /**
   * A retry carrying `requestState`: its answer goes to the parked server request, and the parked
   * request's answer (now or later) to this call. False when the state is unknown here, expired,
   * another owner's, or the retry lacks the answer: the caller refuses it.
   */
  resume(
    call: Call,
    clientId: ClientId,
    requestState: unknown,
    inputResponses: unknown,
    /** The retry's own progress token: progress from now on is reported under it. */
    token: unknown,
  ): boolean {
    if (typeof requestState !== 'string') return false;
    const parked = this.parked.get(requestState);
    if (parked === undefined || !sameOwner(parked.owner, call.owner)) return false;
    const responses = inputResponses as Record<string, unknown> | undefined;
    const result = responses?.[parked.key];
    if (typeof result !== 'object' || result === null) return false;
    this.parked.delete(requestState);
    clearTimeout(parked.timer);
    const entry = this.pending.get(parked.pendingId);
    if (entry?.kind !== 'parked') return false;
    this.events.write({ jsonrpc: '2.0', id: parked.childId, result });
    if (entry.answer !== undefined) {
      this.pending.delete(parked.pendingId);
      call.answer(clientId, entry.answer);
      return true;
    }
    this.pending.set(parked.pendingId, { kind: 'call', call, clientId, token });
    return true;
  }

  /** No retry came: the process is told its request is answered with an error and its call cancelled. */
  private expire(requestState: string): void {
    const parked = this.parked.get(requestState);
    if (parked === undefined) return;
    this.parked.delete(requestState);
    this.events.write({ jsonrpc: '2.0', id: parked.childId, error: NO_CLIENT });
    const entry = this.pending.get(parked.pendingId);
    if (entry?.kind === 'parked') {
      this.pending.delete(parked.pendingId);
      // Already answered: nothing runs on the process any more, nothing to cancel.
      if (entry.answer !== undefined) return;
      this.events.write({
        jsonrpc: '2.0',
        method: CANCELLED_NOTIFICATION,
        params: { requestId: parked.pendingId, reason: 'The client did not retry in time' },
      });
    }
  }

  private toClient(call: Call, message: ChildMessage, method: string): void {
    if (!call.deliver(message)) this.events.dropped('undeliverable_notification', method);
  }

  /** The call a server message without a token belongs to, if exactly one can be named. */
  private attributed(): Call | undefined {
    // A shared process serves several identities, and one call in flight is no proof that it
    // caused the message: a server logs or asks about earlier work after that call was answered.
    // Without a progress token or a subscription id there is no telling whose it is: nobody's.
    if (this.attribution === 'only') return undefined;
    let latest: Call | undefined;
    for (const call of this.calls) latest = call;
    return latest;
  }
}

function withoutMeta(params: Record<string, unknown> | undefined): Record<string, unknown> {
  const { _meta: _, ...rest } = params ?? {};
  return rest;
}

/** A listen request's final answer names its subscription by the gateway's id: the client's again. */
function restoreSubscriptionId(message: ChildMessage, id: number, clientId: ClientId): ChildMessage {
  const result = message.result as Record<string, unknown> | undefined;
  const meta = result?._meta as Record<string, unknown> | undefined;
  if (meta?.[SUBSCRIPTION_ID_META] !== id) return message;
  return { ...message, result: { ...result, _meta: { ...meta, [SUBSCRIPTION_ID_META]: clientId } } };
}

function sameOwner(a: CallOwner, b: CallOwner): boolean {
  return a.identity === b.identity && a.session === b.session;
}
