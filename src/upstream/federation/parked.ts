import { randomBytes } from 'node:crypto';
import type { Cancellation } from '../../cancellation.js';
import type { RpcId } from '../../errors.js';
import { capabilityOf } from '../../jsonrpc/methods.js';
import { INPUT_WAIT_MS, NO_CLIENT } from '../input-required.js';
import type { UpstreamRequest } from '../upstream.js';
import type { MemberMessage, Unreadable } from './answers.js';
import type { Link } from './member.js';

/** A 2025-era server's call stream, read message by message. */
export type CallStream = AsyncGenerator<MemberMessage, Unreadable | undefined, undefined>;

/**
 * A call of a 2026-07-28 client that a 2025-era HTTP server asked something of (DESIGN.md era
 * table, modern ↔ legacy): the server's request went to the client inside an `input_required`
 * result, and the call — still running on the server, its stream held open — waits here for the
 * client's retry, which carries the answer.
 */
export interface Running {
  /** The request that made (or last resumed) the call: whom the server's messages are sent as. */
  readonly request: UpstreamRequest;
  /** The caller's session on the server. */
  readonly link: Link;
  /** The id the server knows the call by (the client's first request's). */
  readonly callId: RpcId;
  /** The rest of the call's stream, and what ends it (the server's request is aborted). */
  readonly stream: CallStream;
  readonly cancellation: Cancellation;
  /** What the client declared it can answer (its first request's). */
  readonly capabilities: ReadonlySet<string>;
}

/**
 * A call of a 2026-07-28 client that a 2025-era HTTP server asked something of (DESIGN.md era
 * table, modern ↔ legacy): the server's request went to the client inside an `input_required`
 * result, and the call — still running on the server, its stream held open — waits here for the
 * client's retry, which carries the answer.
 */
export interface Parked extends Running {
  /** Who may resume it: the identity the call was made by, on this server. */
  readonly identity: string;
  readonly server: string;
  /** The server's request, and the key the client knows it by. */
  readonly asked: string | number;
  readonly key: string;
}

/**
 * Calls waiting for a client's retry, in this replica (the session the gateway keeps on a 2025-era
 * server for a caller lives here too). `requestState` is a random handle to one, never the state
 * itself, opened only by the identity it was given to and only once; one not retried within
 * {@link INPUT_WAIT_MS} is handed to `expired` (its server request answered with an error, its
 * call cancelled).
 */
export class ParkedCalls {
  private readonly parked = new Map<string, { readonly call: Parked; readonly timer: NodeJS.Timeout }>();

  constructor(private readonly expired: (call: Parked) => void) {}

  park(call: Parked): string {
    const state = randomBytes(32).toString('base64url');
    const timer = setTimeout(() => {
      if (this.parked.delete(state)) this.expired(call);
    }, INPUT_WAIT_MS);
    timer.unref();
    this.parked.set(state, { call, timer });
    return state;
  }

  /**
   * The call `state` names and the client's answer to its question, taken (a second retry finds
   * nothing) — only by its identity, on its server, and only with the answer (without it the call
   * keeps waiting).
   */
  take(
    state: unknown,
    identity: string,
    server: string,
    inputResponses: unknown,
  ): { readonly call: Parked; readonly input: Readonly<Record<string, unknown>> } | undefined {
    if (typeof state !== 'string') return undefined;
    const entry = this.parked.get(state);
    if (entry === undefined || entry.call.identity !== identity || entry.call.server !== server)
      return undefined;
    const input =
      typeof inputResponses === 'object' && inputResponses !== null
        ? (inputResponses as Record<string, unknown>)[entry.call.key]
        : undefined;
    if (typeof input !== 'object' || input === null || Array.isArray(input)) return undefined;
    this.parked.delete(state);
    clearTimeout(entry.timer);
    return { call: entry.call, input: input as Record<string, unknown> };
  }

  /** Every parked call ends (shutdown). */
  close(): void {
    for (const [state, entry] of this.parked) {
      this.parked.delete(state);
      clearTimeout(entry.timer);
      this.expired(entry.call);
    }
  }
}

/** What a 2025-era server's call stream says next to a 2026-07-28 client. */
export type CallOutcome =
  /** The call's response. */
  | { readonly response: MemberMessage }
  /** A request of the server's that the client can answer: it goes to the client as `input_required`. */
  | { readonly asks: MemberMessage & { readonly id: string | number } }
  | { readonly unreadable: Unreadable | 'no_answer' };

/**
 * Reads a 2025-era server's call stream to what the client must hear next. A request the client
 * did not declare it can answer is answered for it with an error (`reply`) and the call goes on;
 * notifications have nowhere to go in the JSON answer a 2026-07-28 client reads and are dropped.
 */
export async function nextOutcome(
  stream: CallStream,
  callId: RpcId,
  capabilities: ReadonlySet<string>,
  reply: (message: MemberMessage) => void,
): Promise<CallOutcome> {
  for (;;) {
    const step = await stream.next();
    if (step.done === true) return { unreadable: step.value ?? 'no_answer' };
    const message = step.value;
    const { method, id } = message;
    if (method === undefined) {
      // Its answer; another request's (this session is the caller's alone) is not this call's.
      if (id === callId) return { response: message };
      continue;
    }
    if (typeof method !== 'string' || (typeof id !== 'string' && typeof id !== 'number')) continue;
    const capability = capabilityOf(method);
    if (capability !== undefined && capabilities.has(capability))
      return { asks: message as MemberMessage & { readonly id: string | number } };
    reply({ jsonrpc: '2.0', id, error: NO_CLIENT });
  }
}
