import { DISCOVER, isCacheable, PING } from '../../jsonrpc/methods.js';
import {
  LEGACY_VERSION,
  LEGACY_VERSIONS,
  MODERN_VERSION,
  UNSUPPORTED_PROTOCOL_VERSION,
} from '../../jsonrpc/protocol-version.js';
import { GATEWAY_CAPABILITIES, GATEWAY_CLIENT_INFO } from '../gateway-client.js';
import { jsonAnswer } from '../local-answer.js';
import type { UpstreamAnswer } from '../upstream.js';
import type { ClientId } from './call.js';
import type { ServerFacts } from './connection.js';

/**
 * The era table in code (DESIGN.md "Upstreams" → stdio, "Eras"): what the gateway answers itself
 * from what a process said at start, and how messages are translated between a client of one
 * generation and a process of the other. The upstream decides when each applies.
 */

type Message = Readonly<Record<string, unknown>>;

/** Whether the process said it offers `capabilities[kind][flag]` (e.g. tools.listChanged). */
export function offers(facts: ServerFacts, kind: string, flag: string): boolean {
  const capability = facts.capabilities[kind] as Record<string, unknown> | undefined;
  return capability?.[flag] === true;
}

/** Requests the gateway answers itself, from the process's facts. */
export function localAnswer(
  message: Message,
  facts: ServerFacts,
  legacyClient: boolean,
): Message | undefined {
  const method = message.method;
  // Liveness of the gateway's connection to the process, which the gateway knows.
  if (method === PING) return { jsonrpc: '2.0', result: {} };
  if (method === DISCOVER && !legacyClient)
    return {
      jsonrpc: '2.0',
      result: {
        resultType: 'complete',
        ttlMs: 0,
        cacheScope: 'private',
        supportedVersions: [MODERN_VERSION],
        capabilities: facts.capabilities,
        _meta: { 'io.modelcontextprotocol/serverInfo': facts.serverInfo },
        ...(facts.instructions === undefined ? {} : { instructions: facts.instructions }),
      },
    };
  return undefined;
}

/**
 * Results of a legacy process as a 2026-07-28 client must read them: `resultType` (absent means
 * complete), and for cacheable results `ttlMs: 0` and `cacheScope: "private"` — the gateway knows
 * nothing of the server's caching, and a list it filtered is the caller's alone.
 */
export function modernResults(requests: readonly Message[]): (id: ClientId, message: Message) => Message {
  const cacheable = new Set(
    requests.filter((m) => typeof m.method === 'string' && isCacheable(m.method)).map((m) => m.id),
  );
  return (id, message) => {
    const result = message.result;
    if (typeof result !== 'object' || result === null || Array.isArray(result)) return message;
    const modern: Record<string, unknown> = { resultType: 'complete', ...result };
    if (cacheable.has(id)) {
      modern.ttlMs ??= 0;
      modern.cacheScope ??= 'private';
    }
    return { ...message, result: modern };
  };
}

/**
 * A request as the process must read it: a legacy client's request to a modern process carries
 * the protocol fields in `_meta` (stdio has no header layer); anything else goes as authorized.
 */
export function toProcess(message: Message, facts: ServerFacts, legacyClient: boolean): Message {
  if (!(legacyClient && facts.era === 'modern')) return message;
  const params = (message.params ?? {}) as Record<string, unknown>;
  const meta = (params._meta ?? {}) as Record<string, unknown>;
  return {
    ...message,
    params: {
      ...params,
      _meta: {
        ...meta,
        'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
        'io.modelcontextprotocol/clientInfo': GATEWAY_CLIENT_INFO,
        'io.modelcontextprotocol/clientCapabilities': GATEWAY_CAPABILITIES,
      },
    },
  };
}

/**
 * The version answered to a legacy client's `initialize`: the one it asked for when the gateway
 * knows it and the process speaks it or a later one; else the process's (or, for a modern
 * process, the gateway's legacy version).
 */
export function agreedVersion(asked: unknown, facts: ServerFacts): string {
  const ceiling = facts.era === 'legacy' ? facts.version : LEGACY_VERSION;
  if (typeof asked === 'string' && LEGACY_VERSIONS.has(asked) && asked <= ceiling) return asked;
  return ceiling;
}

/** An UnsupportedProtocolVersionError for each request (2026-07-28: HTTP 400). */
export function unsupportedVersion(messages: readonly Message[], requested: string): UpstreamAnswer {
  const [first] = messages;
  const error = {
    code: UNSUPPORTED_PROTOCOL_VERSION,
    message: 'Unsupported protocol version',
    data: { supported: [MODERN_VERSION], requested },
  };
  return jsonAnswer(400, { jsonrpc: '2.0', id: first?.id ?? null, error }, {});
}
