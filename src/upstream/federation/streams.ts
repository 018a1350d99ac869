import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { Cancellation } from '../../cancellation.js';
import { isRefusal, type Refusal, refuse } from '../../errors.js';
import { isEventStream } from '../../proxy/media-type.js';
import type { Sealer } from '../../proxy/seal.js';
import { jsonAnswer } from '../local-answer.js';
import type { UpstreamAnswer, UpstreamRequest } from '../upstream.js';
import { readServerEvents } from './events.js';
import type { Link, Member } from './member.js';

/** Seals a merged stream's event ids: they open as nothing else. */
const PURPOSE = 'federation-event-id';
/** The longest composite event id given; beyond it the longest server ids are left out. */
const MAX_EVENT_ID_TEXT = 4096;
/** What a client that stopped reading may leave buffered before its stream is cut. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/** A server whose stream dropped is asked again after this, doubling up to the maximum. */
const RECONNECT_MS = 500;
const MAX_RECONNECT_MS = 30_000;
/** A stream open this long was steady: when it drops, the server is asked again at once (RECONNECT_MS). */
const STEADY_MS = 5_000;

export interface StreamMergeDeps {
  readonly route: string;
  readonly sealer: Sealer;
  readonly logger: Logger;
  readonly maxEventLength: number;
  /**
   * A server's event data with its server requests under sealed gateway ids; undefined: the event
   * is dropped (a response, which on a GET stream would answer a request the client sent elsewhere).
   */
  readonly sealRequests: (member: Member, link: Link, data: string) => string | undefined;
}

/** What a composite event id is bound to: the route, the caller and the session. */
interface EventScope {
  readonly route: string;
  readonly identity: string;
  /** A digest of the client's session (its servers' session ids). */
  readonly session: string;
}

/**
 * A legacy session's GET stream on a federated route (DESIGN.md "Upstreams" → Federation): every
 * server's stream, merged. Each event the client gets carries a composite id — every server's
 * last event id, sealed with the route, the caller and the session — so `Last-Event-ID` resumes
 * each server where it left off. A server whose stream drops is asked again (with its last id)
 * without disturbing the others; one that ends the session (404) ends the stream; one with no
 * stream (405) is left out. The answer is 405 when no server has a stream.
 */
export async function openMergedStream(
  request: UpstreamRequest,
  sessions: ReadonlyMap<string, Link>,
  members: ReadonlyMap<string, Member>,
  deps: StreamMergeDeps,
): Promise<UpstreamAnswer | Refusal> {
  const scope: EventScope = {
    route: deps.route,
    identity: request.identity.key,
    session: createHash('sha256')
      .update(request.session?.upstreamId ?? '')
      .digest('base64url'),
  };
  const asked = request.headers['last-event-id'];
  const ids: Record<string, string> = {
    ...(asked === undefined ? {} : (openEventId(deps.sealer, scope, asked) ?? {})),
  };
  const out = new Readable({ read: () => undefined });
  let closed = false;
  const cancellations = new Set<Cancellation>();
  const timers = new Set<NodeJS.Timeout>();
  const servers = [...sessions].flatMap(([server, link]) => {
    const member = members.get(server);
    return member === undefined ? [] : [{ member, link }];
  });

  const push = (member: Member, link: Link, data: string): void => {
    if (closed) return;
    if (out.readableLength > MAX_BUFFERED_BYTES) {
      out.destroy();
      return;
    }
    const sealed = deps.sealRequests(member, link, data);
    if (sealed === undefined) return;
    const id = sealEventId(deps.sealer, scope, ids);
    const lines = sealed
      .split('\n')
      .map((line) => `data: ${line}`)
      .join('\n');
    out.push(`id: ${id}\nevent: message\n${lines}\n\n`);
  };

  /** Opens one server's stream; true when it gave one (it is then read until it drops). */
  const open = async (member: Member, link: Link, attempt: number): Promise<boolean | 'ended'> => {
    const cancellation = new Cancellation();
    cancellations.add(cancellation);
    const answer = await member.openStream(request, link, ids[member.name], cancellation);
    if (closed) {
      if (!isRefusal(answer)) answer.body.destroy();
      return false;
    }
    if (isRefusal(answer)) {
      cancellations.delete(cancellation);
      if (answer.reason === 'session_not_found') return 'ended';
      again(member, link, attempt + 1);
      return false;
    }
    if (answer.status !== 200 || !isEventStream(answer.headers['content-type'])) {
      answer.body.destroy();
      cancellations.delete(cancellation);
      // No stream on this server (405): it is left out, not asked again.
      if (answer.status !== 405) again(member, link, attempt + 1);
      return false;
    }
    // A stream that ends before it has stayed open STEADY_MS (closed at once, an event too long,
    // one event and gone) is asked again ever later, not every RECONNECT_MS: a server cannot make
    // the gateway reconnect twice a second for as long as the client listens.
    const opened = Date.now();
    readServerEvents(
      answer.body,
      deps.maxEventLength,
      (event) => {
        if (event.lastId !== undefined) ids[member.name] = event.lastId;
        push(member, link, event.data);
      },
      () => answer.body.destroy(),
    );
    answer.body.once('error', () => undefined);
    answer.body.once('close', () => {
      cancellations.delete(cancellation);
      if (!closed) again(member, link, Date.now() - opened >= STEADY_MS ? 0 : attempt + 1);
    });
    return true;
  };

  const again = (member: Member, link: Link, attempt: number): void => {
    if (closed) return;
    const delay = Math.min(RECONNECT_MS * 2 ** attempt, MAX_RECONNECT_MS);
    const timer = setTimeout(() => {
      timers.delete(timer);
      void open(member, link, attempt).then((opened) => {
        if (opened === 'ended') out.destroy();
      });
    }, delay);
    timers.add(timer);
  };

  out.once('close', () => {
    closed = true;
    for (const timer of timers) clearTimeout(timer);
    for (const cancellation of cancellations) cancellation.cancel();
  });
  request.cancellation.onCancel(() => out.destroy());

  const first = await Promise.all(servers.map(({ member, link }) => open(member, link, 0)));
  if (first.includes('ended')) {
    out.destroy();
    return refuse('session_not_found');
  }
  if (!first.includes(true)) {
    out.destroy();
    return jsonAnswer(405, undefined, { allow: 'POST, DELETE' });
  }
  deps.logger.debug({ servers: servers.length }, 'merged stream opened');
  return {
    status: 200,
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
    body: out,
    servers: servers.map(({ member }) => member.name),
  };
}

/** Every server's last event id, sealed for this scope (the longest left out until it fits). */
function sealEventId(sealer: Sealer, scope: EventScope, ids: Readonly<Record<string, string>>): string {
  const kept = { ...ids };
  for (;;) {
    const sealed = sealer.seal(PURPOSE, [scope.route, scope.identity, scope.session, kept]);
    if (sealed.length <= MAX_EVENT_ID_TEXT || Object.keys(kept).length === 0) return sealed;
    const [longest] = Object.entries(kept).sort(([, a], [, b]) => b.length - a.length)[0] ?? [];
    if (longest !== undefined) delete kept[longest];
  }
}

/** The servers' last event ids inside a composite id, when it opens for this scope. */
function openEventId(sealer: Sealer, scope: EventScope, id: string): Record<string, string> | undefined {
  if (id.length > MAX_EVENT_ID_TEXT * 2) return undefined;
  const fields = sealer.open(PURPOSE, id);
  if (fields === undefined) return undefined;
  const [route, identity, session, ids] = fields;
  if (route !== scope.route || identity !== scope.identity || session !== scope.session) return undefined;
  if (typeof ids !== 'object' || ids === null || Array.isArray(ids)) return undefined;
  const out: Record<string, string> = {};
  for (const [server, value] of Object.entries(ids)) if (typeof value === 'string') out[server] = value;
  return out;
}
