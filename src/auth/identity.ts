import type { AuthMethod } from '../config/schema.js';

/** Who is calling, as every later stage sees it (DESIGN.md step 4). */
export interface Identity {
  /** Canonical key for sessions and limits: `apiKey:<id>`, `jwt:<issuer>|<sub>`, `mtls:<name>`, `anonymous`. */
  readonly key: string;
  /** Human-readable subject, for audit and traces. */
  readonly subject: string;
  /** The methods that authenticated this caller; none for the gateway's own requests ({@link isGatewaysOwn}). */
  readonly methods: readonly AuthMethod[];
  readonly scopes: ReadonlySet<string>;
  readonly keyId?: string;
  readonly issuer?: string;
  readonly certificate?: {
    readonly subject: string;
    readonly san: readonly string[];
    readonly fingerprint256: string;
  };
  readonly claims?: Readonly<Record<string, unknown>>;
  /**
   * Epoch ms from which the credential no longer authenticates (JWT `exp` plus the issuer's clock
   * tolerance, an API key's `expires`); absent when it never expires. Every open answer of this
   * identity is closed then (proxy/stream-lifetime.ts).
   */
  readonly expiresAt?: number;
}

/**
 * The gateway asking for itself (pin checks, federation probes, `check --connect`), not a caller:
 * such identities name no authentication method, and every caller's names at least one.
 */
export function isGatewaysOwn(identity: Identity): boolean {
  return identity.methods.length === 0;
}
