/** `routes[].forwardHeaders`: which client headers a route adds to the allow-list, checked at load. */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { configProblems, MINIMAL_POLICY } from '../../support/config.js';

const policy = (names: string) => `${MINIMAL_POLICY}    forwardHeaders: [${names}]
`;

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
    expect(configProblems(policy(name))).toEqual([
      'portcullis.yaml:8:22 routes[0].forwardHeaders[0]: is a credential, hop-by-hop or gateway-owned header: never forwarded from clients',
    ]);
  });

  it('refuses a name that is not an HTTP header name', () => {
    expect(configProblems(policy('"x tenant"'))).toEqual([
      'portcullis.yaml:8:22 routes[0].forwardHeaders[0]: must be an HTTP header name',
    ]);
  });
});
