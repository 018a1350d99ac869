import { isModern } from '../../jsonrpc/protocol-version.js';
import type { Link } from './member.js';

/**
 * A legacy client's session with a federated route (DESIGN.md "Upstreams" → Federation,
 * Sessions): one session per server, opened in parallel at `initialize`. What each server said —
 * its session id (if it has sessions) and the version it agreed — travels inside the one id the
 * client holds, sealed like any upstream session id, so any replica with the same keys serves the
 * session (HTTP servers; a stdio server's session lives in the replica that spawned it). A server
 * missing from the map was absent at `initialize` and stays absent for the session.
 */

const PREFIX = 'federation:1:';

export type MemberSessions = ReadonlyMap<string, Link>;

/** The upstream id a federated session is sealed with. */
export function encodeSessions(sessions: MemberSessions): string {
  return `${PREFIX}${JSON.stringify([...sessions].map(([server, link]) => [server, link.id ?? null, link.version]))}`;
}

/** The servers' sessions inside an upstream id; undefined when it is not one of a federation's. */
export function decodeSessions(upstreamId: string): MemberSessions | undefined {
  if (!upstreamId.startsWith(PREFIX)) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(upstreamId.slice(PREFIX.length));
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  const sessions = new Map<string, Link>();
  for (const entry of value) {
    if (!Array.isArray(entry) || entry.length !== 3) return undefined;
    const [server, id, version] = entry as unknown[];
    if (typeof server !== 'string' || typeof version !== 'string') return undefined;
    if (id !== null && typeof id !== 'string') return undefined;
    // A server of the session that speaks 2026-07-28 alone is reached by translating.
    sessions.set(server, {
      version,
      id: id ?? undefined,
      translate: isModern(version) ? 'toModern' : 'none',
    });
  }
  return sessions;
}
