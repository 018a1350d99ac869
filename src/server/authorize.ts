import type { Refusal } from '../errors.js';
import type { Authorized, Parsed } from '../exchange.js';
import { isModern } from '../jsonrpc/protocol-version.js';
import { authorize } from '../policy/authorize.js';
import { withCanonicalUris } from '../policy/canonical-body.js';

/**
 * The authorize stage (DESIGN.md step 6): every message decided from the parsed body alone. The
 * canonical resource URIs policy matched are what is forwarded and audited from here on, never
 * the client's spelling.
 */
export function createAuthorization(): (exchange: Parsed) => Authorized | Refusal {
  return (exchange) => {
    const { route } = exchange;
    const authorization = authorize(route.policy, exchange.body, exchange.identity, {
      modern: isModern(exchange.version),
      resourceMetadata: route.resourceMetadata,
    });
    exchange.body = withCanonicalUris(exchange, authorization.decisions).body;
    exchange.decisions = authorization.decisions;
    if (authorization.refusal !== undefined) return authorization.refusal;
    // Allowed from here on: a client that leaves now is audited as an allowed call it abandoned.
    exchange.allowed = true;
    return exchange as Authorized;
  };
}
