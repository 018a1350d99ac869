import { MODERN_VERSION } from '../jsonrpc/protocol-version.js';

/**
 * The gateway as a client of the servers behind it (a stdio process it started, a federated
 * server it opens a session on or asks `server/discover`): who it says it is, and what it can do.
 */

/** The client the gateway is to every server it speaks to itself. */
export const GATEWAY_CLIENT_INFO = { name: 'portcullis', version: '0.1.0' } as const;

/**
 * What the gateway declares it can do for a stdio process: a server request for sampling or
 * elicitation is handed to the client its call came from (answered with an error for one that
 * cannot take it).
 */
export const GATEWAY_CAPABILITIES = { sampling: {}, elicitation: {} } as const;

/** The `_meta` a modern request of the gateway's own carries (the protocol fields of 2026-07-28). */
export function modernMeta(capabilities: Readonly<Record<string, unknown>> = GATEWAY_CAPABILITIES) {
  return {
    'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
    'io.modelcontextprotocol/clientInfo': GATEWAY_CLIENT_INFO,
    'io.modelcontextprotocol/clientCapabilities': capabilities,
  };
}
