import { Readable } from 'node:stream';
import { REFUSALS, type Refusal, refuse } from '../../errors.js';
import { bufferBody } from '../local-answer.js';
import type { UpstreamAnswer } from '../upstream.js';

/** Who a call belongs to: what a server request's answer and a cancellation are checked against. */
export interface CallOwner {
  readonly identity: string;
  /** The gateway's legacy session id (local, before sealing), when the client has one. */
  readonly session: string | undefined;
}

/** A JSON-RPC id as the client chose it. */
export type ClientId = string | number;

/** The JSON-RPC error of a refusal for one id of a call already answering (-31095 when the server died). */
function refusalError(refusal: Refusal): Record<string, unknown> {
  const spec = REFUSALS[refusal.reason];
  return { code: spec.rpc, message: spec.message, data: { ...refusal.data, reason: refusal.reason } };
}

export interface CallOptions {
  readonly owner: CallOwner;
  /** The client accepts `text/event-stream`: notifications and server requests can reach it. */
  readonly acceptsStream: boolean;
  /** Server requests (sampling, elicitation) can be handed to it: a legacy client on SSE. */
  readonly takesServerRequests: boolean;
  /** Rewrites an answer before it goes to the client (a modern client of a legacy process). */
  readonly adapt?:
    | ((id: ClientId, message: Readonly<Record<string, unknown>>) => Readonly<Record<string, unknown>>)
    | undefined;
  /**
   * The client capabilities a server request may be carried to it by as an `input_required`
   * result (a 2026-07-28 client, one request of a method that allows it); undefined: never.
   */
  readonly inputCapabilities?: ReadonlySet<string> | undefined;
  /** The client sent a JSON array (2025-03-26): its answer is one too. */
  readonly batch: boolean;
  /** The client ids of its requests, each answered exactly once. */
  readonly ids: readonly ClientId[];
  /** Headers the answer carries (a new session's id). */
  readonly headers: Readonly<Record<string, string>>;
  /** Until the first message for the call (`upstreamTimeouts.headersMs`): then 504. */
  readonly firstMessageMs: number;
  /** Settles the `send` promise: an answer once its form is known, or a refusal. */
  readonly settle: (answer: UpstreamAnswer | Refusal) => void;
  /** The call is over (answered, refused, cut): its pending child requests are let go. */
  readonly onDone: (call: Call) => void;
  /** The first message took too long: the child is told to stop (`notifications/cancelled`). */
  readonly onTimeout: (call: Call) => void;
  /** The client stopped taking the stream (`true`) or took it again (`false`): back-pressure. */
  readonly onPressure?: ((call: Call, blocked: boolean) => void) | undefined;
}

/**
 * The most a stream may hold for a client that does not read it: beyond it the client is cut off
 * and its request cancelled on the child, so no client can make the gateway hold a flood.
 */
export const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

/** Above this the client is slow: the child's output is held back (where the process is its own). */
const STREAM_HIGH_WATER = 1024 * 1024;

/**
 * One client exchange's view of a shared stdio server (DESIGN.md "Upstreams" → stdio): the
 * answers to its requests, and whatever the server says about them meanwhile, turned into one
 * Streamable HTTP answer the relay handles like any other.
 * - Answers alone, when the last one arrives: a JSON body (an array for a batch).
 * - A notification or a server request first, and a client that accepts SSE: an SSE answer
 *   started at once, each message one event, ending after the last answer.
 * - The same for a client that takes only JSON: notifications are dropped (the caller counts
 *   them), server requests answered with an error on its behalf.
 * - The server exits: before the answer began a 502 refusal; after, an error event per open id.
 */
export class Call {
  readonly owner: CallOwner;
  readonly startedAt = performance.now();
  private readonly answers = new Map<ClientId, string>();
  private readonly open: Set<ClientId>;
  private stream: Readable | undefined;
  private done = false;
  private blocked = false;
  private readonly watchers = new Map<ClientId, (message: Readonly<Record<string, unknown>>) => void>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly options: CallOptions) {
    this.owner = options.owner;
    this.open = new Set(options.ids);
    this.timer = setTimeout(() => this.timeout(), options.firstMessageMs);
    this.timer.unref();
  }

  get finished(): boolean {
    return this.done;
  }

  /** Whether server-to-client messages can reach this client (it accepts SSE). */
  get acceptsStream(): boolean {
    return this.options.acceptsStream;
  }

  /** Whether a server request (sampling, elicitation, roots) may be handed to this client. */
  get takesServerRequests(): boolean {
    return this.options.takesServerRequests;
  }

  /** See {@link CallOptions.inputCapabilities}. */
  get inputCapabilities(): ReadonlySet<string> | undefined {
    return this.options.inputCapabilities;
  }

  /** Hears the answer to request `id` as the process gave it (whether a subscribe succeeded). */
  watch(id: ClientId, watcher: (message: Readonly<Record<string, unknown>>) => void): void {
    this.watchers.set(id, watcher);
  }

  /** The answer to one of its requests, its id restored to the client's. */
  answer(id: ClientId, message: Readonly<Record<string, unknown>>): void {
    if (this.done || !this.open.delete(id)) return;
    clearTimeout(this.timer);
    this.watchers.get(id)?.(message);
    const adapt = this.options.adapt;
    const text = JSON.stringify({ ...(adapt === undefined ? message : adapt(id, message)), id });
    if (this.stream !== undefined) this.event(text);
    else this.answers.set(id, text);
    if (this.open.size === 0) this.complete();
  }

  /**
   * A notification or server request for this client, already rewritten. False when it cannot be
   * delivered (the client takes no stream, or the call is over): the caller decides what then.
   */
  deliver(message: Readonly<Record<string, unknown>>): boolean {
    if (this.done || !this.options.acceptsStream) return false;
    clearTimeout(this.timer);
    if (this.stream === undefined) this.startStream();
    return this.event(JSON.stringify(message));
  }

  /** The server exited or failed: every open request fails, nothing more arrives. */
  fail(refusal: Refusal = refuse('upstream_unreachable')): void {
    if (this.done) return;
    if (this.stream === undefined && this.answers.size > 0) {
      // A batch partly answered: the answers stand, only the open requests fail.
      const error = refusalError(refusal);
      for (const id of this.open) this.answers.set(id, JSON.stringify({ jsonrpc: '2.0', id, error }));
      this.open.clear();
      this.complete();
      return;
    }
    if (this.stream === undefined) {
      this.finish();
      this.options.settle({
        ...refusal,
        ids: [...this.open, ...this.answers.keys()],
        batch: this.options.batch,
      });
      return;
    }
    const error = refusalError(refusal);
    for (const id of this.open) this.event(JSON.stringify({ jsonrpc: '2.0', id, error }));
    this.open.clear();
    this.complete();
  }

  /** The client went away: nothing is sent any more. */
  abandon(): void {
    if (this.done) return;
    this.finish();
    this.stream?.destroy();
  }

  /** Ids still waiting for their answer. */
  openIds(): IterableIterator<ClientId> {
    return this.open.values();
  }

  private timeout(): void {
    if (this.done) return;
    this.options.onTimeout(this);
    this.finish();
    this.options.settle(refuse('upstream_timeout', { ids: [...this.open], batch: this.options.batch }));
  }

  private startStream(): void {
    this.stream = new Readable({ highWaterMark: STREAM_HIGH_WATER, read: () => this.unblock() });
    this.options.settle({
      status: 200,
      headers: { ...this.options.headers, 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
      body: this.stream,
    });
    // Answers that arrived before the stream began (a batch's first ones) go first.
    for (const text of this.answers.values()) this.event(text);
    this.answers.clear();
  }

  /** Writes one event; false when it could not be (the stream is gone, or the client was cut off). */
  private event(text: string): boolean {
    const stream = this.stream;
    if (stream === undefined || stream.destroyed) return false;
    if (stream.readableLength > MAX_BUFFERED_BYTES) {
      // A client that has not read 8 MiB is not coming back for more: cut it off.
      this.finish();
      stream.destroy(new Error('the client does not read its stream'));
      return false;
    }
    if (!stream.push(`event: message\ndata: ${text}\n\n`) && !this.blocked) {
      this.blocked = true;
      this.options.onPressure?.(this, true);
    }
    return true;
  }

  private unblock(): void {
    if (!this.blocked) return;
    this.blocked = false;
    this.options.onPressure?.(this, false);
  }

  private complete(): void {
    this.finish();
    if (this.stream !== undefined) {
      this.stream.push(null);
      return;
    }
    const texts = [...this.answers.values()];
    const body = this.options.batch ? `[${texts.join(',')}]` : (texts[0] ?? '');
    this.options.settle({
      status: 200,
      headers: {
        ...this.options.headers,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(body)),
      },
      body: bufferBody(body),
    });
  }

  private finish(): void {
    this.done = true;
    clearTimeout(this.timer);
    this.unblock();
    this.options.onDone(this);
  }
}
