import { DISCOVER, INITIALIZE, INITIALIZED_NOTIFICATION } from '../../jsonrpc/methods.js';
import { LEGACY_VERSION, LEGACY_VERSIONS, MODERN_VERSION } from '../../jsonrpc/protocol-version.js';
import { GATEWAY_CAPABILITIES, GATEWAY_CLIENT_INFO, modernMeta } from '../gateway-client.js';
import type { ChildMessage } from './child.js';
import type { Connection, ServerFacts } from './connection.js';

/** Why a process could not be started, for the log (never shown to clients). */
export class HandshakeError extends Error {
  constructor(
    message: string,
    readonly timedOut = false,
  ) {
    super(message);
    this.name = 'HandshakeError';
  }
}

/**
 * The stdio transport's start-up (2026-07-28, "Backward Compatibility"): probe with
 * `server/discover`; a `DiscoverResult` means a modern process; any error, or silence for half the
 * start budget, means a legacy one, which gets the `initialize` handshake. A modern process that
 * supports no version the gateway speaks is not used (the spec: do not fall back to `initialize`).
 * Rejects with a {@link HandshakeError} when the process cannot be used, `timedOut` when it was
 * silent for `startTimeoutMs`.
 */
export async function handshake(
  connection: Connection,
  startTimeoutMs: number,
  capabilities: Readonly<Record<string, unknown>> = GATEWAY_CAPABILITIES,
): Promise<ServerFacts> {
  const deadline = Date.now() + startTimeoutMs;
  const probe = await within(
    connection.ask(DISCOVER, { _meta: modernMeta(capabilities) }),
    Math.floor(startTimeoutMs / 2),
  );
  const discovered = probe === undefined ? undefined : resultOf(probe);
  if (discovered !== undefined && Array.isArray(discovered.supportedVersions)) {
    if (!discovered.supportedVersions.includes(MODERN_VERSION))
      throw new HandshakeError(
        `modern server supports none of the gateway's versions (${String(discovered.supportedVersions)})`,
      );
    const meta = (discovered._meta ?? {}) as Record<string, unknown>;
    return {
      era: 'modern',
      version: MODERN_VERSION,
      capabilities: objectOr(discovered.capabilities),
      serverInfo: objectOr(meta['io.modelcontextprotocol/serverInfo']),
      instructions: typeof discovered.instructions === 'string' ? discovered.instructions : undefined,
    };
  }
  if (probe !== undefined && isUnsupportedVersion(probe))
    throw new HandshakeError('modern server refused the gateway protocol version');

  const answer = await within(
    connection.ask(INITIALIZE, {
      protocolVersion: LEGACY_VERSION,
      capabilities,
      clientInfo: GATEWAY_CLIENT_INFO,
    }),
    Math.max(0, deadline - Date.now()),
  );
  if (answer === undefined) throw new HandshakeError('no answer to the legacy handshake', true);
  const result = resultOf(answer);
  if (result === undefined) throw new HandshakeError('the legacy handshake failed');
  const version = result.protocolVersion;
  if (typeof version !== 'string' || !LEGACY_VERSIONS.has(version))
    throw new HandshakeError('the legacy handshake agreed on an unknown protocol version');
  connection.notify(INITIALIZED_NOTIFICATION);
  return {
    era: 'legacy',
    version,
    capabilities: objectOr(result.capabilities),
    serverInfo: objectOr(result.serverInfo),
    instructions: typeof result.instructions === 'string' ? result.instructions : undefined,
  };
}

/** A modern server's "unsupported protocol version" error: it lists the versions it supports. */
function isUnsupportedVersion(message: ChildMessage): boolean {
  const error = message.error as { data?: { supported?: unknown } } | undefined;
  return Array.isArray(error?.data?.supported);
}

function resultOf(message: ChildMessage): Record<string, unknown> | undefined {
  const result = message.result;
  return typeof result === 'object' && result !== null && !Array.isArray(result)
    ? (result as Record<string, unknown>)
    : undefined;
}

function objectOr(value: unknown): Readonly<Record<string, unknown>> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

/** `promise`, or `undefined` after `ms`. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    timer.unref();
    promise.then((value) => {
      clearTimeout(timer);
      resolve(value);
    });
  });
}
