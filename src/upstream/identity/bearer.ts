import type { Identity } from '../../auth/identity.js';
import type { Decision } from '../../policy/decide.js';
import type { UpstreamRequest } from '../upstream.js';

/**
 * `request` with the gateway's credential for the upstream in `Authorization: Bearer`. The header
 * is the gateway's alone: the client's never reaches an upstream (proxy/headers.ts), and
 * `upstreamHeaders` may not set it beside `upstreamIdentity`.
 */
export function withBearer(request: UpstreamRequest, token: string): UpstreamRequest {
  return { ...request, headers: { ...request.headers, authorization: `Bearer ${token}` } };
}

/** An RFC 6749 scope token: what a space-separated `scope` can carry without being misread. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const callerScopesOf = new WeakMap<Identity, string>();

/**
 * Every scope the caller holds, in the order its credential lists them, space-separated. A scope
 * a token's `scp` array spells with a space or a control character is left out: the gateway holds
 * it as one inert scope, an upstream would read its words as several.
 */
export function callerScopes(request: { readonly identity: Identity }): string {
  const { identity } = request;
  let scope = callerScopesOf.get(identity);
  if (scope === undefined) {
    scope = [...identity.scopes].filter((s) => SCOPE_TOKEN.test(s)).join(' ');
    callerScopesOf.set(identity, scope);
  }
  return scope;
}

/** The scopes the allowed messages of the call required, sorted (a GET or DELETE needs none). */
export function neededScopes(decisions: readonly Decision[] | undefined): string {
  if (decisions === undefined) return '';
  const needed = new Set<string>();
  for (const decision of decisions)
    if (decision.effect === 'allow') for (const scope of decision.required) needed.add(scope);
  return [...needed].sort().join(' ');
}
