import { createHash } from 'node:crypto';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { Config } from '../config/schema.js';
import type { Failed, MtlsFailure } from './failures.js';
import type { Identity } from './identity.js';

type MtlsEntry = Config['identities']['mtls'][number];

/** What a connection's client certificate says, computed once per connection. */
export interface ClientCertificate {
  /** The certificate chained to `tls.clientCA`. */
  readonly verified: boolean;
  readonly subject: string;
  /**
   * Every common name of the subject. Node gives a repeated attribute (`CN=a, CN=b` or
   * `CN=a+CN=b`) as an array; a subject with more than one is ambiguous and never matches `cn`.
   */
  readonly cn: readonly string[];
  readonly dns: readonly string[];
  readonly uris: readonly string[];
  /** Colon-separated hex SHA-256 of the DER, as audit records show it. */
  readonly fingerprint256: string;
  /** base64url SHA-256 of the DER: RFC 8705 `x5t#S256`. */
  readonly thumbprint: string;
}

const perSocket = new WeakMap<TLSSocket, ClientCertificate | null>();

/** The client certificate presented on this connection, or `null`; cached per TLS socket. */
export function clientCertificateOf(socket: unknown): ClientCertificate | null {
  if (!isTlsSocket(socket)) return null;
  const known = perSocket.get(socket);
  if (known !== undefined) return known;
  const peer = socket.getPeerCertificate();
  const described = peer?.raw ? describe(peer, socket.authorized) : null;
  perSocket.set(socket, described);
  return described;
}

function isTlsSocket(socket: unknown): socket is TLSSocket {
  return (
    typeof socket === 'object' && socket !== null && (socket as { encrypted?: unknown }).encrypted === true
  );
}

function describe(peer: PeerCertificate, verified: boolean): ClientCertificate {
  const san = parseSubjectAltName(peer.subjectaltname ?? '');
  const cn = peer.subject?.CN;
  return {
    verified,
    subject: Object.entries(peer.subject ?? {})
      .map(([k, v]) => `${k}=${Array.isArray(v) ? v.join('+') : v}`)
      .join(', '),
    cn: cn === undefined ? [] : Array.isArray(cn) ? cn : [cn],
    dns: san.filter(([type]) => type === 'DNS').map(([, value]) => value),
    uris: san.filter(([type]) => type === 'URI').map(([, value]) => value),
    fingerprint256: peer.fingerprint256,
    thumbprint: createHash('sha256').update(peer.raw).digest('base64url'),
  };
}

/**
 * Node writes SAN entries as `DNS:a, URI:spiffe://x`, quoting a value that contains a comma or a
 * quote as a JSON string; parse both forms rather than split on commas.
 *
 * A hand-written scanner, one pass left to right: the certificate is the peer's, and an
 * unanchored global regular expression rescanned the text from every position (20 KB of
 * malformed text took over a second). Reading stops at the first text that is not an entry —
 * it never resynchronizes inside a malformed value, where it could read a forged `URI:` that
 * Node did not write as an entry — and a quoted value that is not a JSON string ends it too.
 */
export function parseSubjectAltName(text: string): [string, string][] {
  const out: [string, string][] = [];
  let at = 0;
  while (at < text.length) {
    // The type: letters and spaces (`DNS`, `URI`, `IP Address`), then a colon.
    const typeStart = at;
    while (at < text.length && isTypeChar(text.charCodeAt(at))) at++;
    if (at === typeStart || text.charCodeAt(at) !== COLON) break;
    const type = text.slice(typeStart, at++);
    let value: string;
    if (text.charCodeAt(at) === QUOTE) {
      // A JSON string: up to the first quote that no backslash escapes.
      const start = at++;
      while (at < text.length && text.charCodeAt(at) !== QUOTE)
        at += text.charCodeAt(at) === BACKSLASH ? 2 : 1;
      if (at >= text.length) break;
      at++;
      const parsed = parseJsonString(text.slice(start, at));
      if (parsed === undefined) break;
      value = parsed;
    } else {
      const comma = text.indexOf(',', at);
      const end = comma === -1 ? text.length : comma;
      value = text.slice(at, end);
      at = end;
    }
    // An entry ends the text or is followed by exactly ", ".
    if (at < text.length && (text.charCodeAt(at) !== COMMA || text.charCodeAt(at + 1) !== SPACE)) break;
    out.push([type, value]);
    at += 2;
  }
  return out;
}

const COLON = 0x3a;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const SPACE = 0x20;

function isTypeChar(code: number): boolean {
  return code === SPACE || (code >= 0x41 && code <= 0x5a) || (code >= 0x61 && code <= 0x7a);
}

function parseJsonString(quoted: string): string | undefined {
  try {
    return JSON.parse(quoted) as string;
  } catch (err) {
    if (err instanceof SyntaxError) return undefined; // not Node's quoting: not an entry
    throw err;
  }
}

export type MtlsResult = Identity | Failed<Extract<MtlsFailure, 'no_identity'>>;

const NO_IDENTITY: Failed<'no_identity'> = Object.freeze({ failure: 'no_identity' });

/**
 * The subject's common name when it has exactly one. With two (`CN=agent-ops, CN=intern`) which
 * one the CA meant to vouch for is unknowable — a CA that copies a requested CN next to its own
 * would otherwise hand out `agent-ops` — so an ambiguous subject matches no `cn` entry at all.
 * SAN DNS and URI entries are lists by design and are unaffected.
 */
function onlyCommonName(cert: ClientCertificate): string | undefined {
  return cert.cn.length === 1 ? cert.cn[0] : undefined;
}

/** Maps a verified client certificate to the first `identities.mtls` entry it matches. */
export function createMtlsMatcher(entries: readonly MtlsEntry[]): (cert: ClientCertificate) => MtlsResult {
  const compiled = entries.map((entry) => ({
    entry,
    // DNS names compare case-insensitively (RFC 5280 §7.2); CN and URI exactly.
    dns: entry.match.dns?.toLowerCase(),
    identity: (cert: ClientCertificate): Identity =>
      Object.freeze({
        key: `mtls:${entry.name}`,
        subject: entry.name,
        methods: Object.freeze(['mtls'] as const),
        scopes: new Set(entry.scopes),
        certificate: {
          subject: cert.subject,
          san: [...cert.dns, ...cert.uris],
          fingerprint256: cert.fingerprint256,
        },
      }),
  }));
  return (cert) => {
    for (const { entry, dns, identity } of compiled) {
      const { cn, uri } = entry.match;
      if (
        (cn !== undefined && onlyCommonName(cert) === cn) ||
        (dns !== undefined && cert.dns.some((name) => name.toLowerCase() === dns)) ||
        (uri !== undefined && cert.uris.includes(uri))
      ) {
        return identity(cert);
      }
    }
    return NO_IDENTITY;
  };
}
