import type { ServerResponse } from 'node:http';

/**
 * The legacy sessions' open GET streams in this process, by route and session: where the gateway
 * tells a client something of its own — `notifications/elicitation/complete` when an approval
 * its call waits for is decided. An event is written between two of the relay's writes, which
 * always end at an event's end (`proxy/sse.ts`), so it never splits one of the upstream's events.
 */
export interface SessionStreams {
  /** Holds a session's GET stream until it closes. */
  hold(route: string, session: string, res: ServerResponse): void;
  /** Writes `message` as an SSE event to each open GET stream of the session here; how many. */
  send(route: string, session: string, message: Readonly<Record<string, unknown>>): number;
}

export function createSessionStreams(): SessionStreams {
  const open = new Map<string, Set<ServerResponse>>();
  const keyOf = (route: string, session: string) => `${route}\n${session}`;
  return {
    hold(route, session, res) {
      const key = keyOf(route, session);
      let streams = open.get(key);
      if (streams === undefined) {
        streams = new Set();
        open.set(key, streams);
      }
      streams.add(res);
      res.once('close', () => {
        streams.delete(res);
        if (streams.size === 0 && open.get(key) === streams) open.delete(key);
      });
    },
    send(route, session, message) {
      const streams = open.get(keyOf(route, session));
      if (streams === undefined) return 0;
      const event = `event: message\ndata: ${JSON.stringify(message)}\n\n`;
      let sent = 0;
      for (const res of streams) {
        if (res.writableEnded || res.destroyed) continue;
        res.write(event);
        sent++;
      }
      return sent;
    },
  };
}
