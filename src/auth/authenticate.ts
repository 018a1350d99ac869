import type { IncomingHttpHeaders } from 'node:http';
import type { Config, RouteConfig } from '../config/schema.js';
import { type Refusal, refuse } from '../errors.js';
import { createAnonymousIdentity } from './anonymous.js';
import type { Identity } from './identity.js';

export type Authenticate = (headers: IncomingHttpHeaders) => Identity | Refusal;

/**
 * Builds a route's authenticator. Rule (DESIGN.md step 4): a presented credential decides and a
 * failing one is 401, never a fall-through; `anonymous` applies only when nothing is presented.
 *
 * This build verifies `anonymous` only. A credential for a method it cannot verify yet (API key,
 * JWT, mTLS arrive with the authentication issue) is refused: failing closed is the only safe
 * placeholder.
 */
export function createAuthenticator(config: Config, route: RouteConfig): Authenticate {
  const anonymous =
    route.authentication.methods.includes('anonymous') && config.identities.anonymous
      ? createAnonymousIdentity(config.identities.anonymous.scopes)
      : undefined;
  const challenge = { 'www-authenticate': 'Bearer' };
  return (headers) => {
    const presented = headers.authorization !== undefined || headers['x-api-key'] !== undefined;
    if (presented)
      return refuse('invalid_credential', {
        headers: { 'www-authenticate': 'Bearer error="invalid_token"' },
      });
    return anonymous ?? refuse('missing_credential', { headers: challenge });
  };
}
