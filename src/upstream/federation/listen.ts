import type { Readable } from 'node:stream';
import { Readable as ReadableStream } from 'node:stream';
import { isRefusal, type Refusal, refuse } from '../../errors.js';
import {
  LIST_CHANGED_FILTERS,
  LISTEN_ACKNOWLEDGED,
  RESOURCES_UPDATED,
  SUBSCRIPTION_ID_META,
} from '../../jsonrpc/methods.js';
import { isEventStream } from '../../proxy/media-type.js';
import type { UpstreamAnswer, UpstreamRequest } from '../upstream.js';
import { readServerEvents } from './events.js';
import type { Link, Member } from './member.js';

type Message = Readonly<Record<string, unknown>>;

/** What a client that stopped reading may leave buffered before its stream is cut. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/**
 * What servers may send before the acknowledgment, held for after it: a server whose notification
 * would go beyond it loses its stream (it would otherwise hold the gateway's memory until the
 * deadline, then cut the client's stream with it).
 */
const MAX_HELD_BYTES = 1024 * 1024;

/** One server a `subscriptions/listen` goes to, with the part of the filter that is its own. */
export interface ListenTarget {
  readonly member: Member;
  readonly link: Link;
  /** The list_changed flags asked for, and the subscribed URIs this server owns. */
  readonly notifications: Readonly<Record<string, unknown>>;
}

/**
 * A 2026-07-28 client's `subscriptions/listen` on a federated route (DESIGN.md "Upstreams" →
 * Federation): the listen goes to every server that can take it, each with its part of the filter
 * (resource subscriptions only to the server that owns the URI), and their streams merge into one.
 * The client gets exactly one acknowledgment first — what any server honored, once every server
 * acknowledged or failed — then every server's notifications, each under the client's own
 * subscription id; what a server sent before that acknowledgment waits for it.
 */
export async function mergedListen(
  request: UpstreamRequest,
  message: Message,
  targets: readonly ListenTarget[],
  deadlineMs: number,
): Promise<UpstreamAnswer | Refusal> {
  const id = message.id as string | number;
  const out = new ReadableStream({ read: () => undefined });
  const bodies: Readable[] = [];
  let acknowledged = false;
  const held: string[] = [];
  let heldBytes = 0;
  const honored: Record<string, unknown> = {};
  const uris = new Set<string>();

  const send = (event: string): void => {
    if (out.destroyed) return;
    if (out.readableLength > MAX_BUFFERED_BYTES) {
      out.destroy();
      return;
    }
    out.push(event);
  };
  /**
   * A server's notification, under the client's subscription id; a resource's update only from the
   * server it was asked of (another server would announce a change of a resource it does not own,
   * or one the client never subscribed to).
   */
  const relay = (notification: Message, target: ListenTarget, body: Readable): void => {
    const params = (notification.params ?? {}) as Record<string, unknown>;
    if (notification.method === RESOURCES_UPDATED) {
      const asked = target.notifications.resourceSubscriptions;
      if (!Array.isArray(asked) || !asked.includes(params.uri)) return;
    }
    const meta = { ...(params._meta as Record<string, unknown> | undefined), [SUBSCRIPTION_ID_META]: id };
    const event = `event: message\ndata: ${JSON.stringify({ ...notification, params: { ...params, _meta: meta } })}\n\n`;
    if (acknowledged) {
      send(event);
      return;
    }
    heldBytes += event.length;
    if (heldBytes > MAX_HELD_BYTES) {
      heldBytes -= event.length;
      body.destroy();
      return;
    }
    held.push(event);
  };

  const listened = await Promise.all(
    // Each server that gave a stream: a promise of its acknowledgment (wrapped: an async function
    // returning a promise would wait for it).
    targets.map(async (target): Promise<{ acked: Promise<void> } | undefined> => {
      const { member, link, notifications } = target;
      const answer = await member.send(
        request,
        {
          ...message,
          params: { ...(message.params as object | undefined), notifications },
        },
        link,
      );
      if (isRefusal(answer)) return undefined;
      if (answer.status !== 200 || !isEventStream(answer.headers['content-type'])) {
        answer.body.destroy();
        return undefined;
      }
      bodies.push(answer.body);
      const acked = new Promise<void>((settle) => {
        const timer = setTimeout(settle, deadlineMs);
        answer.body.once('close', () => {
          clearTimeout(timer);
          settle();
        });
        answer.body.once('error', () => undefined);
        readServerEvents(
          answer.body,
          MAX_BUFFERED_BYTES,
          (event) => {
            let parsed: unknown;
            try {
              parsed = JSON.parse(event.data);
            } catch {
              return;
            }
            if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return;
            const notification = parsed as Message;
            if (typeof notification.method !== 'string' || notification.id !== undefined) return;
            if (notification.method === LISTEN_ACKNOWLEDGED) {
              honor((notification.params as Record<string, unknown> | undefined)?.notifications);
              clearTimeout(timer);
              settle();
            } else relay(notification, target, answer.body);
          },
          () => answer.body.destroy(),
        );
      });
      return { acked };
    }),
  );
  const waiting = listened.flatMap((listening) => (listening === undefined ? [] : [listening.acked]));
  if (waiting.length === 0 && targets.length > 0) {
    // Every server asked failed: nothing merges (no server asked: an empty acknowledgment).
    out.destroy();
    return refuse('upstream_unreachable', { ids: [id] });
  }
  out.once('close', () => {
    for (const body of bodies) if (!body.destroyed) body.destroy();
  });
  request.cancellation.onCancel(() => out.destroy());
  await Promise.all(waiting);
  if (uris.size > 0) honored.resourceSubscriptions = [...uris];
  const acknowledgment = {
    jsonrpc: '2.0',
    method: LISTEN_ACKNOWLEDGED,
    params: { _meta: { [SUBSCRIPTION_ID_META]: id }, notifications: honored },
  };
  send(`event: message\ndata: ${JSON.stringify(acknowledgment)}\n\n`);
  acknowledged = true;
  for (const notification of held.splice(0)) send(notification);
  return {
    status: 200,
    headers: { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' },
    body: out,
  };

  /** What one server honored joins what the client is told. */
  function honor(notifications: unknown): void {
    if (typeof notifications !== 'object' || notifications === null) return;
    const given = notifications as Record<string, unknown>;
    for (const row of LIST_CHANGED_FILTERS) if (given[row.filter] === true) honored[row.filter] = true;
    if (Array.isArray(given.resourceSubscriptions))
      for (const uri of given.resourceSubscriptions) if (typeof uri === 'string') uris.add(uri);
  }
}
