import type { AuthMethod } from '../config/schema.js';
import { type Refusal, type RefusalReason, refuse } from '../errors.js';

/** Why an API key was refused. */
export type ApiKeyFailure = 'unknown' | 'expired';

/** Why a bearer JWT was refused — or, `jwks_unavailable`, could not be judged at all. */
export type JwtFailure =
  | 'malformed'
  | 'unknown_issuer'
  | 'bad_signature'
  | 'expired'
  | 'claims'
  | 'lifetime'
  | 'no_subject'
  | 'unknown_key'
  | 'certificate_binding'
  | 'jwks_unavailable';

/** Why a client certificate was refused. */
export type MtlsFailure = 'unverified_certificate' | 'no_identity';

/** Why the request's credentials, taken together, were refused before any method judged one. */
export type CredentialsFailure =
  | 'no_credential'
  | 'not_presented'
  | 'two_credentials'
  | 'not_bearer'
  | 'method_not_accepted';

/**
 * Every way authentication can fail: a closed vocabulary. Each value is also the `reason` label of
 * `portcullis_auth_failures_total` and the audit record's `authentication.why` — dashboards and
 * alerts read them (README, Metrics), so none is ever renamed.
 */
export type AuthFailureKind = ApiKeyFailure | JwtFailure | MtlsFailure | CredentialsFailure;

/** The refusals authentication answers with (src/errors.ts). */
type AuthRefusalReason = Extract<
  RefusalReason,
  'missing_credential' | 'invalid_credential' | 'idp_unavailable'
>;

/** What a method's verifier returns instead of an identity. */
export interface Failed<K extends AuthFailureKind> {
  readonly failure: K;
}

/**
 * The one map from a failure to the refusal it answers (DESIGN.md step 4, "Refusals"). `satisfies`
 * makes it exhaustive: a failure kind added above does not compile until its refusal is chosen.
 * - `missing_credential`: nothing to judge — how clients discover authentication; never damped.
 * - `invalid_credential`: a presented credential failed — a guess, damped per client address.
 * - `idp_unavailable`: the issuer's key set could not be read, so the token was never judged: 503
 *   (a client would throw away a good token on a 401), not the caller's failure.
 */
const REFUSAL_OF = {
  no_credential: 'missing_credential',
  not_presented: 'missing_credential',
  two_credentials: 'invalid_credential',
  not_bearer: 'invalid_credential',
  method_not_accepted: 'invalid_credential',
  unknown: 'invalid_credential',
  expired: 'invalid_credential',
  malformed: 'invalid_credential',
  unknown_issuer: 'invalid_credential',
  bad_signature: 'invalid_credential',
  claims: 'invalid_credential',
  lifetime: 'invalid_credential',
  no_subject: 'invalid_credential',
  unknown_key: 'invalid_credential',
  certificate_binding: 'invalid_credential',
  jwks_unavailable: 'idp_unavailable',
  unverified_certificate: 'invalid_credential',
  no_identity: 'invalid_credential',
} as const satisfies Record<AuthFailureKind, AuthRefusalReason>;

/** Why authentication failed, for the refusal, the metrics label and the audit record; never the credential. */
export interface AuthFailure {
  readonly refusal: Refusal;
  /** The method whose credential failed; `none` when the request's credentials failed as a whole. */
  readonly method: AuthMethod | 'none';
  readonly why: AuthFailureKind;
}

/** A route's `WWW-Authenticate` values (auth/challenge.ts), built once per route. */
export interface Challenges {
  readonly missing: Record<string, string>;
  readonly invalid: Record<string, string>;
}

/**
 * Turns a failure into the route's refusal. `retryAfterSec` is the issuer's next JWKS attempt,
 * given with `jwks_unavailable` only.
 */
export function authFailure(
  method: AuthMethod | 'none',
  failed: Failed<AuthFailureKind> & { readonly retryAfterSec?: number },
  challenges: Challenges,
): AuthFailure {
  const reason = REFUSAL_OF[failed.failure];
  const headers =
    reason === 'idp_unavailable'
      ? { 'retry-after': String(failed.retryAfterSec ?? 1) }
      : reason === 'missing_credential'
        ? challenges.missing
        : challenges.invalid;
  return { refusal: refuse(reason, { headers }), method, why: failed.failure };
}
