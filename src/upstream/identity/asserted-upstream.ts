import type { UpstreamIdentityConfig } from '../../config/schema.js';
import type { Upstream, UpstreamRequest } from '../upstream.js';
import type { Assertions } from './assertions.js';
import { callerScopes, neededScopes, withBearer } from './bearer.js';

type AssertionSpec = Extract<UpstreamIdentityConfig, { mode: 'assertion' }>;

/**
 * An HTTP upstream told who calls (`upstreamIdentity: { mode: assertion }`): every request it is
 * sent — calls, lists, GET streams, the gateway's own handshakes for that caller — carries the
 * gateway's assertion for the caller in `Authorization: Bearer`.
 */
export function assertIdentity(upstream: Upstream, assertions: Assertions, spec: AssertionSpec): Upstream {
  const scopeOf =
    spec.scopes === 'call' ? (request: UpstreamRequest) => neededScopes(request.decisions) : callerScopes;
  return {
    send(request) {
      const token = assertions.token(request.identity, spec.audience, scopeOf(request));
      if (typeof token === 'string') return upstream.send(withBearer(request, token));
      return token.then((signed) => upstream.send(withBearer(request, signed)));
    },
    close: () => upstream.close(),
  };
}
