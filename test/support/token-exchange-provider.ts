/**
 * A real OAuth authorization server for token-exchange tests: `oidc-provider` on 127.0.0.1 (port
 * 0) with introspection, and an RFC 8693 token-exchange grant registered through its
 * `registerGrantType`. oidc-provider ships no token-exchange grant, so the grant's handler is
 * TEST CODE ({@link testTokenExchangeGrant}): it verifies the subject token against the test
 * issuer's keys, refuses a subject named `blocked` and an audience it does not know, and issues an
 * opaque access token for the subject, which a resource server checks by introspection.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLocalJWKSet, type JWK, jwtVerify } from 'jose';
import Provider, { type ClientMetadata, errors, type KoaContextWithOIDC } from 'oidc-provider';

export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token';

/** One exchange the authorization server was asked for, and what it answered. */
export interface ExchangeRecord {
  readonly clientId: string;
  readonly subjectToken: string;
  readonly audience: string | undefined;
  readonly resource: string | undefined;
  readonly scope: string | undefined;
  /** The access token issued, or the OAuth error returned. */
  readonly issued?: string;
  readonly error?: string;
}

export interface ExchangeServer {
  readonly issuer: string;
  readonly tokenEndpoint: string;
  /** Every exchange asked for, in order. */
  readonly exchanges: ExchangeRecord[];
  /** RFC 7662 introspection as the resource server `clientId` (with its secret) asks for it. */
  introspect(token: string, clientId: string, secret: string): Promise<Record<string, unknown>>;
  /** The next exchanges answer 503 (the server is up but failing) while true. */
  setFailing(failing: boolean): void;
  close(): Promise<void>;
}

export interface ExchangeServerOptions {
  /** The issuer of the subject tokens and its public keys. */
  readonly subjectIssuer: string;
  readonly subjectKeys: readonly JWK[];
  /** The audiences it issues tokens for. */
  readonly audiences: readonly string[];
  readonly clients: readonly ClientMetadata[];
  /** `expires_in` of issued tokens. Default 300 s. */
  readonly ttlSec?: number;
}

export async function startTokenExchangeProvider(opts: ExchangeServerOptions): Promise<ExchangeServer> {
  let handler: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  let failing = false;
  const server = createServer((req, res) => {
    if (failing && req.url?.startsWith('/token') && !req.url.startsWith('/token/introspection')) {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('maintenance');
      return;
    }
    handler?.(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const exchanges: ExchangeRecord[] = [];
  const keys = createLocalJWKSet({ keys: [...opts.subjectKeys] });

  const provider = new Provider(issuer, {
    clients: [...opts.clients],
    clientAuthMethods: ['client_secret_basic', 'private_key_jwt'],
    features: { introspection: { enabled: true }, devInteractions: { enabled: false } },
    ttl: { AccessToken: opts.ttlSec ?? 300 },
    scopes: ['openid', 'notes:read', 'notes:write'],
  });

  /** TEST CODE: the token-exchange grant (RFC 8693) this authorization server runs. */
  async function testTokenExchangeGrant(ctx: KoaContextWithOIDC): Promise<void> {
    const params = ctx.oidc.params as Record<string, string | undefined>;
    const client = ctx.oidc.client as NonNullable<KoaContextWithOIDC['oidc']['client']>;
    const record = {
      clientId: client.clientId,
      subjectToken: params.subject_token ?? '',
      audience: params.audience,
      resource: params.resource,
      scope: params.scope,
    };
    const refuse = (error: Error & { error?: string }) => {
      exchanges.push({ ...record, error: error.error ?? 'invalid_request' });
      throw error;
    };
    if (params.subject_token_type !== ACCESS_TOKEN_TYPE)
      refuse(new errors.InvalidRequest('unsupported subject_token_type'));
    let subject: string;
    try {
      const { payload } = await jwtVerify(params.subject_token ?? '', keys, { issuer: opts.subjectIssuer });
      subject = String(payload.sub);
    } catch {
      return refuse(new errors.InvalidGrant('subject_token does not verify'));
    }
    if (subject === 'blocked') refuse(new errors.InvalidGrant('subject may not be delegated'));
    if (params.audience === undefined || !opts.audiences.includes(params.audience))
      refuse(new errors.InvalidTarget('unknown audience'));
    const grant = new provider.Grant({ accountId: subject, clientId: client.clientId });
    if (params.scope !== undefined) grant.addOIDCScope(params.scope);
    const token = new provider.AccessToken({
      accountId: subject,
      client,
      grantId: await grant.save(),
      scope: params.scope ?? '',
      gty: 'token_exchange',
      extra: { aud: params.audience },
    });
    const value = await token.save();
    exchanges.push({ ...record, issued: value });
    ctx.body = {
      access_token: value,
      issued_token_type: ACCESS_TOKEN_TYPE,
      token_type: 'Bearer',
      expires_in: token.expiration,
      ...(params.scope === undefined ? {} : { scope: params.scope }),
    };
  }
  provider.registerGrantType(
    TOKEN_EXCHANGE_GRANT,
    testTokenExchangeGrant,
    new Set([
      'subject_token',
      'subject_token_type',
      'requested_token_type',
      'audience',
      'resource',
      'scope',
      'actor_token',
      'actor_token_type',
    ]),
  );
  handler = provider.callback();

  return {
    issuer,
    tokenEndpoint: `${issuer}/token`,
    exchanges,
    async introspect(token, clientId, secret) {
      const answer = await fetch(`${issuer}/token/introspection`, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}`,
        },
        body: new URLSearchParams({ token }),
      });
      return (await answer.json()) as Record<string, unknown>;
    },
    setFailing(value) {
      failing = value;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
