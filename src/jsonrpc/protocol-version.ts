/**
 * MCP protocol generations. Legacy versions use `initialize` and sessions; any version not
 * listed here is treated as modern (stateless, mirrored headers) and left for the upstream to
 * accept or refuse.
 */
export const LEGACY_VERSIONS: ReadonlySet<string> = new Set([
  '2024-11-05',
  '2025-03-26',
  '2025-06-18',
  '2025-11-25',
]);

/** The version a request without `MCP-Protocol-Version` (and no session) is taken to speak. */
export const DEFAULT_VERSION = '2025-03-26';

/** Batches (JSON arrays) exist only in this version. */
export const BATCH_VERSION = '2025-03-26';

export const PROTOCOL_VERSION_META = 'io.modelcontextprotocol/protocolVersion';

export function isModern(version: string): boolean {
  return !LEGACY_VERSIONS.has(version);
}

/** Whether `value` is shaped like a protocol version: `YYYY-MM-DD`, ASCII digits. */
export function isVersionToken(value: string): boolean {
  if (value.length !== 10 || value.charCodeAt(4) !== 0x2d || value.charCodeAt(7) !== 0x2d) return false;
  for (let i = 0; i < 10; i++) {
    if (i === 4 || i === 7) continue;
    const c = value.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}
