import type { Identity } from '../../auth/identity.js';
import type { UpstreamIdentityConfig } from '../../config/schema.js';
import type { Decision } from '../../policy/decide.js';
import type { Upstream, UpstreamRequest } from '../upstream.js';
import type { Assertions } from './assertions.js';

type AssertionSpec = Extract<UpstreamIdentityConfig, { mode: 'assertion' }>;

/**
 * An HTTP upstream told who calls (`upstreamIdentity: { mode: assertion }`): every request it is
 * sent — calls, lists, GET streams, the gateway's own handshakes for that caller — carries the
 * gateway's assertion for the caller in `Authorization: Bearer`. The header is the gateway's alone:
 * the client's never reaches an upstream (proxy/headers.ts), and `upstreamHeaders` may not set it.
 */
export function assertIdentity(upstream: Upstream, assertions: Assertions, spec: AssertionSpec): Upstream {
  const scopeOf =
    spec.scopes === 'call' ? (request: UpstreamRequest) => neededScopes(request.decisions) : callerScopes;
  return {
    send(request) {
      const token = assertions.token(request.identity, spec.audience, scopeOf(request));
      if (typeof token === 'string') return upstream.send(bearing(request, token));
      return token.then((signed) => upstream.send(bearing(request, signed)));
    },
    close: () => upstream.close(),
  };
}

function bearing(request: UpstreamRequest, token: string): UpstreamRequest {
  return { ...request, headers: { ...request.headers, authorization: `Bearer ${token}` } };
}

/** Every scope the caller holds, in the order its credential lists them. */
function callerScopes(request: { readonly identity: Identity }): string {
  return [...request.identity.scopes].join(' ');
}

/** The scopes the allowed messages of the call required, sorted (a GET or DELETE needs none). */
function neededScopes(decisions: readonly Decision[] | undefined): string {
  if (decisions === undefined) return '';
  const needed = new Set<string>();
  for (const decision of decisions)
    if (decision.effect === 'allow') for (const scope of decision.required) needed.add(scope);
  return [...needed].sort().join(' ');
}
