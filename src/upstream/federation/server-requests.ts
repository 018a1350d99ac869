import { PROGRESS_NOTIFICATION } from '../../jsonrpc/methods.js';
import type { Sealer } from '../../proxy/seal.js';

/** Seals a server request's id for the client: it opens as nothing else. */
const PURPOSE = 'federation-server-request';
/** How long a client has to answer a server's request. */
export const ANSWER_TTL_MS = 10 * 60_000;

/** Whom a server request was sent to: its answer is accepted only from them. */
export interface RequestScope {
  readonly route: string;
  readonly identity: string;
  /** The asking server's own session id in the client's session (undefined: it has none). */
  readonly session: string | undefined;
}

/** Where a client's answer goes: the server that asked, under the id it used. */
export interface AskedBy {
  readonly server: string;
  readonly id: string | number;
}

/** A server request a client's answer opened: whom it goes to, and until when it could be answered. */
export interface Opened extends AskedBy {
  readonly expires: number;
}

/**
 * Server-to-client requests on a federated route (DESIGN.md "Upstreams" → Federation): every
 * server numbers its own requests, so two could send the client the same id and a client's answer
 * could reach the wrong one. The client instead sees a gateway id that seals the asking server,
 * the id it used, the route, the identity and the server's session the request was sent in, and
 * an expiry — an answer is delivered only to that server, only from that identity and session,
 * and any replica with the keys can deliver it.
 */
export function sealRequestId(sealer: Sealer, scope: RequestScope, asked: AskedBy, now = Date.now()): string {
  return sealer.seal(PURPOSE, [
    scope.route,
    scope.identity,
    scope.session ?? null,
    asked.server,
    asked.id,
    now + ANSWER_TTL_MS,
  ]);
}

/** The server and id a client's answer is for, when its id opens for this scope in time. */
export function openRequestId(
  sealer: Sealer,
  scope: Pick<RequestScope, 'route' | 'identity'>,
  id: unknown,
  sessionOf: (server: string) => string | undefined,
  now = Date.now(),
): Opened | undefined {
  if (typeof id !== 'string' || id.length > 4096) return undefined;
  const fields = sealer.open(PURPOSE, id);
  if (fields === undefined) return undefined;
  const [route, identity, session, server, original, expires] = fields;
  if (route !== scope.route || identity !== scope.identity) return undefined;
  if (typeof server !== 'string' || typeof expires !== 'number' || expires < now) return undefined;
  if (typeof original !== 'string' && typeof original !== 'number') return undefined;
  // The session the request was sent in: that server's session in the client's, still.
  if ((session ?? undefined) !== sessionOf(server)) return undefined;
  return { server, id: original, expires };
}

/**
 * The gateway ids of server requests already answered in this replica, until they expire: a
 * server request is answered once, and a client (or whoever holds its session) replaying an
 * answer — to make a server act on it twice — reaches no server. A replica does not know what
 * another accepted; a replay there still needs the same identity and session.
 */
export class AnsweredRequests {
  private readonly answered = new Map<string, number>();
  private nextSweep = 0;

  /** Whether `id` (open, expiring at `expires`) is answered for the first time; it is from now on. */
  first(id: string, expires: number, now = Date.now()): boolean {
    if (now >= this.nextSweep) {
      for (const [known, until] of this.answered) if (until < now) this.answered.delete(known);
      this.nextSweep = now + SWEEP_MS;
    }
    if (this.answered.has(id)) return false;
    this.answered.set(id, expires);
    return true;
  }
}

/** How often answered ids past their expiry are forgotten. */
const SWEEP_MS = 30_000;

/** The client's request a server's call stream answers: its id and its progress token, if any. */
export interface Answering {
  readonly id: string | number | null;
  readonly progressToken: unknown;
}

/**
 * What a server's SSE event becomes for the client: its data with the ids of the server requests
 * in it sealed (`seal`); undefined when it holds none (the event goes as it came); `'foreign'`
 * when it holds a response to anything but the request it `answer`s, or progress of another —
 * on a GET stream (null) any response — which another server may be running: relayed, it would
 * answer (or report progress of, keeping alive) the client's request to that server. A message
 * that is not JSON is left for the relay (which refuses what it must read and cannot).
 */
export function sealServerRequests(
  data: string,
  seal: (id: string | number) => string,
  answering: Answering | null,
): string | undefined | 'foreign' {
  let value: unknown;
  try {
    value = JSON.parse(data);
  } catch {
    return undefined;
  }
  let changed = false;
  let foreign = false;
  const rewrite = (message: unknown): unknown => {
    if (typeof message !== 'object' || message === null || Array.isArray(message)) return message;
    const { method, id, params } = message as { method?: unknown; id?: unknown; params?: unknown };
    if (
      method === undefined &&
      (answering === null || ((typeof id === 'string' || typeof id === 'number') && id !== answering.id))
    )
      foreign = true;
    if (
      method === PROGRESS_NOTIFICATION &&
      answering !== null &&
      (params as { progressToken?: unknown } | undefined)?.progressToken !== answering.progressToken
    )
      foreign = true;
    if (typeof method !== 'string') return message;
    // A request whose id is neither a string nor a number (null, an object) is no request a client
    // could answer for this server; relayed, its answer could not be sealed back to it.
    if (typeof id !== 'string' && typeof id !== 'number') {
      if ('id' in message) foreign = true;
      return message;
    }
    changed = true;
    return { ...message, id: seal(id) };
  };
  const rewritten = Array.isArray(value) ? value.map(rewrite) : rewrite(value);
  if (foreign) return 'foreign';
  return changed ? JSON.stringify(rewritten) : undefined;
}
