import type { Readable } from 'node:stream';
import type { Identity } from '../auth/identity.js';
import type { Cancellation } from '../cancellation.js';
import type { Refusal } from '../errors.js';
import type { ParsedBody } from '../jsonrpc/parse.js';
import type { Decision } from '../policy/decide.js';
import type { SessionClaims } from '../proxy/sessions.js';

/** What the pipeline hands a route's upstream once an exchange is authorized and admitted. */
export interface UpstreamRequest {
  readonly method: 'POST' | 'GET' | 'DELETE';
  /**
   * Headers for an HTTP upstream: the client's allow-listed headers, the forwarding headers, the
   * route's `upstreamHeaders`, the trace context — never the client's credential.
   */
  readonly headers: Record<string, string>;
  /** The authorized messages, parsed (POST only): what an upstream that routes by name reads. */
  readonly body: ParsedBody | undefined;
  /** The same messages re-serialized: the bytes sent, never the client's (POST only). */
  readonly text: string | undefined;
  /** Cancelled when the client goes away: the upstream work stops, its socket or process freed. */
  readonly cancellation: Cancellation;
  /** The protocol version the request speaks (its header, else its session's, else the default). */
  readonly version: string;
  /** Who asks: an upstream that keeps state per identity (stdio processes) reads it; HTTP does not. */
  readonly identity: Identity;
  /** The legacy session the request belongs to, opened and checked by the gateway. */
  readonly session: SessionClaims | undefined;
  /** The policy's decisions for `body`'s messages (POST): what an assertion naming the scopes a call needed reads. */
  readonly decisions?: readonly Decision[] | undefined;
}

/**
 * What an upstream answered, as a stream the pipeline relays or reads (`proxy/answer.ts`):
 * Streamable HTTP's status, headers and body, whatever the upstream really is.
 */
export interface UpstreamAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Readable;
  /** The servers of a federated route that served it (audit, traces); absent for a single-server route. */
  readonly servers?: readonly string[];
  /**
   * A JSON answer is relayed only when no response in it answers another id than this one
   * (federation: every server answers the same client, and another id could answer a request the
   * client sent another server); refused (502 `upstream_rejected`) otherwise. The relay reads such
   * an answer whole — of no use to the client before it is whole anyway — and checks it there.
   */
  readonly answers?: string | number;
  /**
   * What the `answers` check guards against when it is not the federation's: on a pinned route,
   * only a list-shaped result smuggled under another id (`lists`) — so an answer whose text names
   * no `tools` or `prompts` field (and spells nothing with `\u` escapes) needs no parsing.
   */
  readonly answersGuard?: 'lists';
  /** A pinned route's calls (by request id): the hash of the pinned definition they were checked against. */
  readonly pinned?: ReadonlyMap<string | number, string>;
  /** A tool call answered by the gateway itself: its arguments broke the pinned schema (audited as a denial). */
  readonly invalidArguments?: true;
  /**
   * Tool calls whose result broke the pinned output schema and was replaced (`validateResults`):
   * filled while the answer is read, so the audit, written when it ends, can say so.
   */
  readonly invalidResults?: ReadonlySet<string | number>;
}

/**
 * A route's upstream (DESIGN.md "Upstreams"): what the pipeline calls after admission to send the
 * authorized messages, and what gives back the answer. Failures are refusals from the catalogue
 * (unreachable 502, slow 504, an answer never relayed 502), never thrown; what is thrown is a bug.
 *
 * Nothing above this interface asks which kind it has: authentication, policy, limits, sessions,
 * audit, metrics and the answer relay see only `send` and its answer. The HTTP pass-through
 * (`upstream/http.ts`) is one implementation. The next two are meant to be added without touching
 * any of those modules:
 * - **stdio**: a spawned process speaking one JSON-RPC message per line. It reads `body` (the
 *   parsed messages) rather than `text` or `headers`, keys its processes by `identity` and
 *   `session`, and answers with a JSON body or an SSE stream it synthesizes (a `Readable`), so the
 *   relay, list filtering and outcome scan work on it unchanged. `cancellation`
 *   becomes `notifications/cancelled` to the child.
 * - **federation**: several upstreams behind one route, itself an `Upstream` that fans a request
 *   out to its members' `send` and merges what they answer into one `UpstreamAnswer`.
 */
export interface Upstream {
  send(request: UpstreamRequest): Promise<UpstreamAnswer | Refusal>;
  /** Releases what it holds (sockets, processes); called when a reload retires its route. */
  close(): Promise<void>;
}
