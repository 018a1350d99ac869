import { takesForm, takesUrl } from '../confirm/confirmation.js';
import { type Refusal, refuse } from '../errors.js';
import type { Authenticated } from '../exchange.js';
import { opensSession } from '../jsonrpc/methods.js';
import { DEFAULT_VERSION, isModern } from '../jsonrpc/protocol-version.js';
import type { SessionSealer } from './sessions.js';

export interface SessionOpeningDeps {
  readonly sessions: SessionSealer;
  /** `sessions.maxAgeSec`: a session older than this is not found. */
  readonly maxAgeSec: number;
}

/**
 * The session stage (DESIGN.md step 9, legacy protocol), run right after authentication because
 * parsing needs the version a session seals: a sealed `Mcp-Session-Id` must open, be this route's
 * and this identity's, and not be older than `sessions.maxAgeSec` — else 404 `session_not_found`
 * and nothing is forwarded. A modern request's session header is ignored (2026-07-28 has no
 * sessions; it is not forwarded either).
 */
export function createSessionOpening({
  sessions,
  maxAgeSec,
}: SessionOpeningDeps): (exchange: Authenticated) => Refusal | undefined {
  return (exchange) => {
    const headers = exchange.req.headers;
    const sealed = headers['mcp-session-id'];
    if (typeof sealed !== 'string') return undefined;
    const version = headers['mcp-protocol-version'];
    if (typeof version === 'string' && isModern(version)) return undefined;
    const claims = sessions.open(sealed);
    const fresh = claims !== undefined && Date.now() / 1000 - claims.issuedAt <= maxAgeSec;
    if (!fresh || claims.route !== exchange.route.path || claims.identity !== exchange.identity.key)
      return refuse('session_not_found');
    exchange.session = claims;
    exchange.sessionId = sealed;
    return undefined;
  };
}

/**
 * The session id the client gets with an answer carrying the upstream's `Mcp-Session-Id`: the id
 * it holds when the answer is for the session it is in (stable for the client and the audit trail;
 * `sessions.maxAgeSec` counts from when it was opened), else a new one sealing the upstream's id
 * with the route, the identity and the negotiated version — the client never sees the raw id.
 */
export function clientSessionId(
  sessions: SessionSealer,
  exchange: Authenticated,
  upstreamId: string,
): string {
  if (exchange.session !== undefined && upstreamId === exchange.session.upstreamId)
    return exchange.sessionId as string;
  return sessions.seal({
    upstreamId,
    route: exchange.route.path,
    identity: exchange.identity.key,
    version: exchange.session?.version ?? negotiatedVersion(exchange),
    issuedAt: Math.floor(Date.now() / 1000),
    elicitation: exchange.session?.elicitation ?? takesForm(declaredElicitation(exchange)),
    urlElicitation: exchange.session?.urlElicitation ?? takesUrl(declaredElicitation(exchange)),
  });
}

/** The `elicitation` capability the `initialize` this answer is for declared (its modes: {@link takesForm}, {@link takesUrl}). */
function declaredElicitation(exchange: Authenticated): unknown {
  const [first] = exchange.body?.messages ?? [];
  if (first?.kind !== 'request' || !opensSession(first.method)) return undefined;
  const capabilities = first.params?.capabilities as Record<string, unknown> | undefined;
  return capabilities?.elicitation;
}

/** The version an `initialize` asked for (the session's version from then on), else the request's. */
function negotiatedVersion(exchange: Authenticated): string {
  const [first] = exchange.body?.messages ?? [];
  const asked =
    first?.kind === 'request' && opensSession(first.method) ? first.params?.protocolVersion : undefined;
  return typeof asked === 'string' ? asked : (exchange.version ?? DEFAULT_VERSION);
}
