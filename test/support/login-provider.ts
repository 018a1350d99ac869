/**
 * A real OpenID Connect provider for the approval pages' logins: `oidc-provider` on 127.0.0.1
 * (port 0) with its development login and consent pages (any password; the login names the
 * account), PKCE required, and accounts with a name and groups. `mcp:approve` is a scope it
 * grants to whoever asks for it: whether a login may approve is the gateway's decision from
 * what was granted (or from `groups`, with `approverClaim`).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider from 'oidc-provider';

export interface LoginProvider {
  readonly issuer: string;
  close(): Promise<void>;
}

export interface Account {
  readonly name: string;
  readonly groups?: readonly string[];
}

export async function startLoginProvider(opts: {
  /** The gateways' callback URLs (`<publicUrl>/portcullis/callback`). */
  readonly redirectUris: readonly string[];
  readonly clientId: string;
  readonly clientSecret: string;
  readonly accounts: Readonly<Record<string, Account>>;
  /** Scopes granted besides `openid` (a login that does not ask for one does not get it). */
  readonly scopes?: readonly string[];
}): Promise<LoginProvider> {
  let handler:
    | ((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void)
    | undefined;
  const server = createServer((req, res) => handler?.(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: opts.clientId,
        client_secret: opts.clientSecret,
        redirect_uris: [...opts.redirectUris],
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    scopes: ['openid', 'profile', 'groups', ...(opts.scopes ?? [])],
    claims: { openid: ['sub'], profile: ['name'], groups: ['groups'] },
    pkce: { required: () => true },
    cookies: { keys: ['portcullis-test-login-provider'] },
    features: { devInteractions: { enabled: true } },
    async findAccount(_ctx, id) {
      const account = opts.accounts[id];
      if (account === undefined) return undefined;
      return {
        accountId: id,
        claims: async () => ({ sub: id, name: account.name, groups: account.groups ?? [] }),
      };
    },
  });
  handler = provider.callback();
  return {
    issuer,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
