import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';
import type { Config } from '../config/schema.js';
import type { Sealer } from '../proxy/seal.js';

/**
 * Logging people in to the approval pages (DESIGN.md "human confirmation"): the authorization
 * code flow with PKCE at `approvals.oidc` (`openid-client`), the state, nonce and verifier in a
 * sealed pre-login cookie, then a sealed `__Host-` session cookie (Secure, HttpOnly,
 * SameSite=Lax). No session is stored on the gateway: any replica with the same `sessions.keys`
 * opens the cookie.
 */

export type ApprovalsConfig = Config['approvals'];

/** Who is logged in to the pages, as their ID token said at login. */
export interface Person {
  readonly issuer: string;
  readonly subject: string;
  readonly name?: string;
  /** The login granted the approver scopes or carried the approver claim. */
  readonly approver: boolean;
  /** Random, secret to the browser's cookie jar: CSRF tokens are bound to it. */
  readonly session: string;
  /** Epoch ms after which the session is over. */
  readonly expiresAt: number;
}

/** A page session lasts at most this long (the ID token's own expiry may end it sooner). */
const SESSION_MS = 3_600_000;
/** A login must come back within this long. */
const LOGIN_MS = 600_000;

export const SESSION_COOKIE = '__Host-portcullis-approvals';
export const LOGIN_COOKIE = '__Host-portcullis-login';
/** Where the provider sends the browser back, under `publicUrl`. */
export const CALLBACK_PATH = '/portcullis/callback';

/**
 * The public URL of a page at `path` (`/portcullis/…`): under `publicUrl` with its path kept — a
 * gateway behind a proxy at `https://example.com/mcp-gateway` links to
 * `https://example.com/mcp-gateway/portcullis/…` (the proxy strips its prefix on the way in).
 */
export function pageUrl(publicUrl: string, path: string): string {
  return `${publicUrl.replace(/\/+$/, '')}${path}`;
}

export interface Login {
  /** The provider's authorization URL for a new login, and the pre-login cookie to set with it. */
  start(next: string): Promise<{ readonly location: string; readonly cookie: string }>;
  /**
   * The callback: the code exchanged and checked against the pre-login cookie (state, nonce,
   * verifier). The session cookie and where to go, or why the login failed (never a secret).
   */
  finish(
    callbackUrl: URL,
    loginCookie: string | undefined,
  ): Promise<{ readonly cookie: string; readonly next: string } | { readonly failed: string }>;
  /** The person a session cookie names, while it is valid. */
  person(sessionCookie: string | undefined): Person | undefined;
  /** Clears the pre-login cookie (set with the session's). */
  readonly clearLogin: string;
}

export function createLogin(approvals: ApprovalsConfig, sealer: Sealer, now: () => number = Date.now): Login {
  const spec = approvals.oidc;
  const publicUrl = approvals.publicUrl;
  if (spec === undefined || publicUrl === undefined)
    throw new Error('approvals.oidc and publicUrl are required');
  const redirectUri = pageUrl(publicUrl, CALLBACK_PATH);
  const scope = ['openid', ...(approvals.approverScopes ?? []), ...spec.scopes].join(' ');
  // Discovered at the first login, then kept; a failed discovery is tried again next time.
  let provider: Promise<oidc.Configuration> | undefined;
  const discover = () => {
    provider ??= oidc
      .discovery(
        new URL(spec.issuer),
        spec.clientId,
        undefined,
        spec.clientSecret === undefined ? oidc.None() : oidc.ClientSecretBasic(spec.clientSecret),
        // A plain-http provider is the operator's choice (`check` warns off loopback).
        spec.issuer.startsWith('http:')
          ? { execute: [oidc.allowInsecureRequests], timeout: 10 }
          : { timeout: 10 },
      )
      .catch((err: unknown) => {
        provider = undefined;
        throw err;
      });
    return provider;
  };
  // Always Secure (a `__Host-` cookie must be): over plain http only a loopback page keeps it,
  // which browsers treat as a secure context (a test, a laptop) — never a public one.
  const secure = '; Secure';

  return {
    async start(next) {
      const config = await discover();
      const verifier = oidc.randomPKCECodeVerifier();
      const state = oidc.randomState();
      const nonce = oidc.randomNonce();
      const location = oidc.buildAuthorizationUrl(config, {
        redirect_uri: redirectUri,
        scope,
        state,
        nonce,
        code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
        code_challenge_method: 'S256',
      });
      const sealed = sealer.seal('approvals-login', [state, nonce, verifier, next, now() + LOGIN_MS]);
      return {
        location: location.href,
        cookie: `${LOGIN_COOKIE}=${sealed}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${LOGIN_MS / 1000}${secure}`,
      };
    },
    async finish(callbackUrl, loginCookie) {
      const login = loginCookie === undefined ? undefined : sealer.open('approvals-login', loginCookie);
      const [state, nonce, verifier, next, until] = login ?? [];
      if (
        typeof state !== 'string' ||
        typeof nonce !== 'string' ||
        typeof verifier !== 'string' ||
        typeof next !== 'string' ||
        typeof until !== 'number' ||
        until <= now()
      )
        return { failed: 'the login expired or was started elsewhere: start again' };
      const config = await discover();
      let tokens: Awaited<ReturnType<typeof oidc.authorizationCodeGrant>>;
      try {
        tokens = await oidc.authorizationCodeGrant(config, callbackUrl, {
          pkceCodeVerifier: verifier,
          expectedState: state,
          expectedNonce: nonce,
          idTokenExpected: true,
        });
      } catch (err) {
        // The provider's error code, or the check that failed: never the code or a token.
        const code = (err as { error?: unknown; code?: unknown }).error ?? (err as { code?: unknown }).code;
        return { failed: `the login failed (${typeof code === 'string' ? code : 'invalid response'})` };
      }
      const idClaims = tokens.claims();
      if (idClaims === undefined) return { failed: 'the login failed (no ID token)' };
      // A code flow's ID token often carries `sub` alone: the approver claim and the name are
      // read from UserInfo too (checked to be the same subject).
      let claims: Readonly<Record<string, unknown>> & { iss: string; sub: string; exp: number } = idClaims;
      if (approvals.approverClaim !== undefined || typeof idClaims.name !== 'string') {
        try {
          claims = { ...(await oidc.fetchUserInfo(config, tokens.access_token, idClaims.sub)), ...idClaims };
        } catch {
          // No UserInfo: the ID token's claims decide.
        }
      }
      const granted = new Set((tokens.scope ?? scope).split(' '));
      const expiresAt = Math.min(now() + SESSION_MS, claims.exp * 1000);
      const name = typeof claims.name === 'string' ? claims.name : undefined;
      const person: unknown[] = [
        claims.iss,
        claims.sub,
        name ?? null,
        isApprover(approvals, granted, claims),
        randomBytes(16).toString('base64url'),
        expiresAt,
      ];
      const sealed = sealer.seal('approvals-session', person);
      const maxAge = Math.max(0, Math.floor((expiresAt - now()) / 1000));
      return {
        cookie: `${SESSION_COOKIE}=${sealed}; Path=/; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure}`,
        next,
      };
    },
    person(sessionCookie) {
      if (sessionCookie === undefined) return undefined;
      const fields = sealer.open('approvals-session', sessionCookie);
      const [issuer, subject, name, approver, session, expiresAt] = fields ?? [];
      if (
        typeof issuer !== 'string' ||
        typeof subject !== 'string' ||
        (name !== null && typeof name !== 'string') ||
        typeof approver !== 'boolean' ||
        typeof session !== 'string' ||
        typeof expiresAt !== 'number' ||
        expiresAt <= now()
      )
        return undefined;
      return { issuer, subject, ...(name === null ? {} : { name }), approver, session, expiresAt };
    },
    clearLogin: `${LOGIN_COOKIE}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0${secure}`,
  };
}

/** Whether a login may approve: every approver scope granted, or the approver claim carried. */
function isApprover(
  approvals: ApprovalsConfig,
  granted: ReadonlySet<string>,
  claims: Readonly<Record<string, unknown>>,
): boolean {
  if (approvals.approverScopes !== undefined) return approvals.approverScopes.every((s) => granted.has(s));
  const [entry] = Object.entries(approvals.approverClaim ?? {});
  if (entry === undefined) return false;
  const [claim, wanted] = entry;
  const value = claims[claim];
  return value === wanted || (Array.isArray(value) && value.includes(wanted));
}
