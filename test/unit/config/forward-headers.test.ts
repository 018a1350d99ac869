/** `routes[].forwardHeaders`: which client headers a route adds to the allow-list, checked at load. */
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/load.js';

const policy = (names: string) => `identities:
  anonymous: {}
routes:
  - route: /mcp
    resource: http://127.0.0.1:8443/mcp
    upstream: http://127.0.0.1:3000/mcp
    authentication: { methods: [anonymous] }
    forwardHeaders: [${names}]
`;

function problemsOf(text: string): string[] {
  try {
    parseConfig(text, { file: 'portcullis.yaml', env: {} });
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}

describe('routes[].forwardHeaders', () => {
  it('accepts ordinary header names and defaults to none', () => {
    expect(parseConfig(policy('X-Tenant, baggage'), { env: {} }).routes[0]?.forwardHeaders).toEqual([
      'X-Tenant',
      'baggage',
    ]);
    expect(
      parseConfig(policy('').replace('    forwardHeaders: []\n', ''), { env: {} }).routes[0]?.forwardHeaders,
    ).toEqual([]);
  });

  it.each([
    'Authorization',
    'proxy-authorization',
    'X-API-Key',
    'Cookie',
    'Connection',
    'Keep-Alive',
    'TE',
    'Transfer-Encoding',
    'Upgrade',
    'Host',
    'Content-Length',
    'Accept-Encoding',
    'Mcp-Session-Id',
    'Forwarded',
    'X-Forwarded-Host',
    'x-forwarded-client-cert',
    'X-Real-IP',
  ])('refuses %s at load, naming where', (name) => {
    expect(problemsOf(policy(name))).toEqual([
      'portcullis.yaml:8:22 routes[0].forwardHeaders[0]: is a credential, hop-by-hop or gateway-owned header: never forwarded from clients',
    ]);
  });

  it('refuses a name that is not an HTTP header name', () => {
    expect(problemsOf(policy('"x tenant"'))).toEqual([
      'portcullis.yaml:8:22 routes[0].forwardHeaders[0]: must be an HTTP header name',
    ]);
  });
});
