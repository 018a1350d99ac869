import type { IncomingMessage } from 'node:http';
import type { AuthMethod, Config, RouteConfig } from '../config/schema.js';
import { createAnonymousIdentity } from './anonymous.js';
import type { ApiKeyResult } from './api-key.js';
import { challenge } from './challenge.js';
import { type AuthFailure, authFailure, type CredentialsFailure, type Failed } from './failures.js';
import type { Identity } from './identity.js';
import type { JwtVerifier } from './jwt.js';
import { type ClientCertificate, clientCertificateOf, type MtlsResult } from './mtls.js';

export type { AuthFailure } from './failures.js';

export type Authenticate = (req: IncomingMessage) => Identity | AuthFailure | Promise<Identity | AuthFailure>;

/** The verifiers shared by every route (built once per policy). */
export interface Verifiers {
  readonly apiKey: (presented: string) => ApiKeyResult;
  readonly jwt: JwtVerifier;
  readonly mtls: (cert: ClientCertificate) => MtlsResult;
}

/** The credentials one request presents, read from its headers and its TLS connection. */
interface Presented {
  readonly jwt?: string;
  readonly apiKey?: string;
  readonly certificate: ClientCertificate | null;
}

/** Three base64url segments: a JWT (its signature may be empty: `alg: none` is still a JWT, and refused). */
const JWT_SHAPE = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/;
const BEARER = /^Bearer +(\S+) *$/i;

/**
 * A route's authenticator (DESIGN.md step 4):
 * - `require: any` — methods are tried in the order listed; the first that *presents* a credential
 *   decides, and a presented credential that fails is 401, never a fall-through to another method
 *   or to anonymous. `anonymous` applies only when nothing is presented.
 * - `require: all` — every listed method must present and succeed; scopes are the intersection.
 */
export function createAuthenticator(config: Config, route: RouteConfig, verifiers: Verifiers): Authenticate {
  const { methods, require } = route.authentication;
  const anonymous =
    methods.includes('anonymous') && config.identities.anonymous
      ? createAnonymousIdentity(config.identities.anonymous.scopes)
      : undefined;
  const challenges = challenge(route);
  // A refusal per failure the request as a whole can have, built once.
  const refused = (method: AuthMethod | 'none', failure: CredentialsFailure | 'unverified_certificate') =>
    authFailure(method, { failure }, challenges);
  const twoCredentials = refused('none', 'two_credentials');
  const notBearer = refused('none', 'not_bearer');
  const notAccepted = refused('none', 'method_not_accepted');
  const noCredential = refused('none', 'no_credential');
  const unverified = refused('mtls', 'unverified_certificate');

  /** One method against what was presented: an identity, a failure, or `undefined` if it was not presented. */
  function attempt(
    method: AuthMethod,
    presented: Presented,
  ): Identity | AuthFailure | Promise<Identity | AuthFailure> | undefined {
    switch (method) {
      case 'apiKey': {
        if (presented.apiKey === undefined) return undefined;
        const result = verifiers.apiKey(presented.apiKey);
        return 'failure' in result ? authFailure('apiKey', result, challenges) : result;
      }
      case 'jwt': {
        if (presented.jwt === undefined) return undefined;
        return verifiers.jwt
          .verify(presented.jwt, route.resource, presented.certificate?.thumbprint)
          .then((result) => ('failure' in result ? authFailure('jwt', result, challenges) : result));
      }
      case 'mtls': {
        if (presented.certificate === null) return undefined;
        const result = verifiers.mtls(presented.certificate);
        return 'failure' in result ? authFailure('mtls', result, challenges) : result;
      }
      case 'anonymous':
        return undefined;
    }
  }

  return (req) => {
    const presented = readCredentials(req);
    if ('failure' in presented) return presented.failure === 'two_credentials' ? twoCredentials : notBearer;
    // A certificate that is presented but does not chain to the client CA is refused on any route.
    if (presented.certificate !== null && !presented.certificate.verified) return unverified;

    if (require === 'all') return all(presented);
    for (const method of methods) {
      const outcome = attempt(method, presented);
      if (outcome !== undefined) return outcome;
    }
    // A header credential no listed method takes is still a credential: never anonymous.
    if (presented.jwt !== undefined || presented.apiKey !== undefined) return notAccepted;
    return anonymous ?? noCredential;
  };

  async function all(presented: Presented): Promise<Identity | AuthFailure> {
    // A header credential that no listed method takes is refused as such, as with `any`.
    if (
      (presented.jwt !== undefined && !methods.includes('jwt')) ||
      (presented.apiKey !== undefined && !methods.includes('apiKey'))
    ) {
      return notAccepted;
    }
    const identities: Identity[] = [];
    for (const method of methods) {
      const outcome = await attempt(method, presented);
      if (outcome === undefined) return authFailure(method, { failure: 'not_presented' }, challenges);
      if ('refusal' in outcome) return outcome;
      identities.push(outcome);
    }
    return combine(identities);
  }
}

/** Credentials from headers and the connection; two header credentials at once is a refusal. */
function readCredentials(req: IncomingMessage): Presented | Failed<'two_credentials' | 'not_bearer'> {
  const certificate = clientCertificateOf(req.socket);
  // Node keeps only the first of repeated Authorization headers in `req.headers`: count the raw
  // ones, so a second credential can never hide behind the first.
  let count = 0;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if ((name.length === 13 || name.length === 9) && CREDENTIAL_HEADERS.has(name.toLowerCase())) count++;
  }
  if (count > 1) return { failure: 'two_credentials' };
  const apiKeyHeader = req.headers['x-api-key'];
  if (typeof apiKeyHeader === 'string') return { apiKey: apiKeyHeader, certificate };
  const authorization = req.headers.authorization;
  if (authorization === undefined) return { certificate };
  const bearer = BEARER.exec(authorization)?.[1];
  if (bearer === undefined) return { failure: 'not_bearer' };
  return JWT_SHAPE.test(bearer) ? { jwt: bearer, certificate } : { apiKey: bearer, certificate };
}

const CREDENTIAL_HEADERS: ReadonlySet<string> = new Set(['authorization', 'x-api-key']);

/** `require: all`: one identity naming each method; scopes are what every method grants. */
function combine(identities: readonly Identity[]): Identity {
  const [first, ...rest] = identities as [Identity, ...Identity[]];
  // One method: its identity as it is (what is kept beside it, e.g. a JWT's subject token, stays).
  if (rest.length === 0) return first;
  const scopes = new Set([...first.scopes].filter((scope) => rest.every((i) => i.scopes.has(scope))));
  const jwt = identities.find((i) => i.methods.includes('jwt'));
  const mtls = identities.find((i) => i.methods.includes('mtls'));
  const apiKey = identities.find((i) => i.methods.includes('apiKey'));
  return Object.freeze({
    key: identities.map((i) => i.key).join('+'),
    subject: identities.map((i) => i.subject).join(' + '),
    methods: Object.freeze(identities.flatMap((i) => i.methods)),
    scopes,
    ...(apiKey?.keyId === undefined ? {} : { keyId: apiKey.keyId }),
    ...(jwt?.issuer === undefined ? {} : { issuer: jwt.issuer }),
    ...(jwt?.claims === undefined ? {} : { claims: jwt.claims }),
    ...(mtls?.certificate === undefined ? {} : { certificate: mtls.certificate }),
    // The combined credential stops authenticating when its first part does.
    ...expiryOf(identities),
  });
}

function expiryOf(identities: readonly Identity[]): { expiresAt?: number } {
  let first = Number.POSITIVE_INFINITY;
  for (const identity of identities) first = Math.min(first, identity.expiresAt ?? first);
  return Number.isFinite(first) ? { expiresAt: first } : {};
}
