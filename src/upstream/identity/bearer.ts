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

/** Every scope the caller holds, in the order its credential lists them. */
export function callerScopes(request: { readonly identity: Identity }): string {
  return [...request.identity.scopes].join(' ');
}

/** The scopes the allowed messages of the call required, sorted (a GET or DELETE needs none). */
export function neededScopes(decisions: readonly Decision[] | undefined): string {
  if (decisions === undefined) return '';
  const needed = new Set<string>();
  for (const decision of decisions)
    if (decision.effect === 'allow') for (const scope of decision.required) needed.add(scope);
  return [...needed].sort().join(' ');
}
