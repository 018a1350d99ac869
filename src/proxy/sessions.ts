import { openText, sealingKeys, sealText } from './seal.js';

/** What a sealed session id carries (DESIGN.md step 8). */
export interface SessionClaims {
  /** The upstream's own `Mcp-Session-Id`, never shown to the client. */
  readonly upstreamId: string;
  readonly route: string;
  /** The identity key that opened the session. */
  readonly identity: string;
  /** The protocol version negotiated when it opened. */
  readonly version: string;
  /** When it was sealed, epoch seconds. */
  readonly issuedAt: number;
  /**
   * The client declared form-mode `elicitation` at `initialize`: the gateway may ask it to confirm
   * a call (DESIGN.md "human confirmation"). Capabilities are declared once, so they are sealed.
   */
  readonly elicitation?: boolean;
  /** The client declared URL-mode elicitation (2025-11-25): an approver's link can be sent to it. */
  readonly urlElicitation?: boolean;
}

export interface SessionSealer {
  seal(claims: SessionClaims): string;
  /** The claims of a sealed id, or undefined when it does not open under any key (forged, truncated). */
  open(sealed: string): SessionClaims | undefined;
}

const FORMAT = 1;

/**
 * Session ids sealed with AES-256-GCM: the client holds an opaque id that names the upstream
 * session, the route, the identity, the protocol version and the time, and cannot alter any of
 * it. The first key seals, every key opens (rotation). Without configured keys a random key per
 * process is used, so sessions then live and die with the process. Any replica with the same
 * keys serves any session: no Redis, no sticky routing.
 */
export function createSessionSealer(base64Keys: readonly string[] | undefined): SessionSealer {
  const keys = sealingKeys(base64Keys);
  return {
    seal: (claims) =>
      sealText(
        keys,
        FORMAT,
        JSON.stringify([
          claims.upstreamId,
          claims.route,
          claims.identity,
          claims.version,
          claims.issuedAt,
          ...(claims.elicitation === true || claims.urlElicitation === true
            ? [(claims.elicitation === true ? 1 : 0) | (claims.urlElicitation === true ? 2 : 0)]
            : []),
        ]),
      ),
    open(sealed) {
      if (!/^[A-Za-z0-9_-]{40,8192}$/.test(sealed)) return undefined;
      const text = openText(keys, FORMAT, sealed);
      return text === undefined ? undefined : claimsOf(text);
    },
  };
}

function claimsOf(plaintext: string): SessionClaims | undefined {
  const value: unknown = JSON.parse(plaintext);
  // Five fields, or six with the elicitation modes (1 form, 2 URL; a session without seals as before).
  if (!Array.isArray(value) || value.length < 5 || value.length > 6) return undefined;
  const [upstreamId, route, identity, version, issuedAt, elicitation] = value as unknown[];
  if (typeof upstreamId !== 'string' || typeof route !== 'string' || typeof identity !== 'string')
    return undefined;
  if (typeof version !== 'string' || typeof issuedAt !== 'number') return undefined;
  if (elicitation !== undefined && elicitation !== 1 && elicitation !== 2 && elicitation !== 3)
    return undefined;
  const claims = { upstreamId, route, identity, version, issuedAt };
  const modes = typeof elicitation === 'number' ? elicitation : 0;
  return {
    ...claims,
    ...((modes & 1) === 1 ? { elicitation: true } : {}),
    ...((modes & 2) === 2 ? { urlElicitation: true } : {}),
  };
}
