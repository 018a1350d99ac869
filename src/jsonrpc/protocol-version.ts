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

/** The 2026-07-28 revision: the modern version the gateway speaks, as a client and for clients. */
export const MODERN_VERSION = '2026-07-28';
/** The newest 2025-era version: what the gateway asks a legacy server for, and agrees to by default. */
export const LEGACY_VERSION = '2025-11-25';

/** The version a request without `MCP-Protocol-Version` (and no session) is taken to speak. */
export const DEFAULT_VERSION = '2025-03-26';

/** Batches (JSON arrays) exist only in this version. */
export const BATCH_VERSION = '2025-03-26';

export const PROTOCOL_VERSION_META = 'io.modelcontextprotocol/protocolVersion';

/** 2026-07-28's UnsupportedProtocolVersionError: `data.supported` lists what the server speaks. */
export const UNSUPPORTED_PROTOCOL_VERSION = -32022;

export function isModern(version: string): boolean {
  return !LEGACY_VERSIONS.has(version);
}

/** The longest version header read as one version; longer is malformed. */
const MAX_VERSION_LENGTH = 32;

/**
 * Whether `value` can name one protocol version: a non-empty RFC 9110 token (no space, comma,
 * quote or control — so never a list of versions nor two headers joined) of at most 32
 * characters. Versions are dates (`2025-11-25`), but an unknown one (`v999.0.0`, a conformance
 * probe) is a version the gateway does not know — treated as modern and left for the upstream to
 * refuse with its supported versions — not a malformed header.
 */
export function isVersionToken(value: string): boolean {
  if (value.length === 0 || value.length > MAX_VERSION_LENGTH) return false;
  for (let i = 0; i < value.length; i++) if (!isTchar(value.charCodeAt(i))) return false;
  return true;
}

/** RFC 9110 §5.6.2 tchar: ALPHA, DIGIT and ``!#$%&'*+-.^_`|~``. */
function isTchar(c: number): boolean {
  if ((c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a)) return true;
  return TCHAR_SYMBOLS.includes(String.fromCharCode(c));
}
const TCHAR_SYMBOLS = "!#$%&'*+-.^_`|~";
