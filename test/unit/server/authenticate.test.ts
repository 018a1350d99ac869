import { describe, expect, it } from 'vitest';
import { newApiKey } from '../../../src/auth/api-key.js';
import { parseConfig } from '../../../src/config/load.js';
import { isRefusal } from '../../../src/errors.js';
import type { Guarded } from '../../../src/exchange.js';
import { parseRate } from '../../../src/ratelimit/limiter.js';
import { createMemoryLimiter } from '../../../src/ratelimit/memory.js';
import { createAuthentication } from '../../../src/server/authenticate.js';
import { createRouter } from '../../../src/server/router.js';
import { onExchange } from '../../support/exchange.js';

const AGENT = newApiKey('pk_test_');
const route = createRouter(
  parseConfig(
    `identities:
  apiKeys: [{ id: agent, hash: "${AGENT.hash}", scopes: [files:read] }]
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: http://127.0.0.1:9/mcp
    authentication: { methods: [apiKey] }
`,
    { env: {} },
  ),
).routes[0]!;

const post = (key?: string): RequestInit => ({
  method: 'POST',
  body: '{}',
  headers: key === undefined ? {} : { 'x-api-key': key },
});

describe('createAuthentication: the authenticate stage', () => {
  it('gives the exchange its identity for a valid credential', async () => {
    const authenticate = createAuthentication({
      limiter: createMemoryLimiter(),
      authFailureRate: parseRate('3/minute'),
    });
    const { result, exchange } = await onExchange(
      route,
      (ex) => authenticate(ex as Guarded),
      post(AGENT.key),
    );
    expect(isRefusal(result)).toBe(false);
    expect(exchange.identity.key).toBe('apiKey:agent');
    expect(exchange.authFailure).toBeUndefined();
  });

  it('records why a credential failed, and damps the address once its failure budget is spent', async () => {
    const limiter = createMemoryLimiter();
    const authenticate = createAuthentication({ limiter, authFailureRate: parseRate('2/minute') });
    const attempt = () => onExchange(route, (ex) => authenticate(ex as Guarded), post('pk_test_wrong'));
    const first = await attempt();
    expect(isRefusal(first.result) && first.result.reason).toBe('invalid_credential');
    expect(first.exchange.authFailure).toMatchObject({ method: 'apiKey' });
    await attempt();
    const damped = await attempt();
    expect(isRefusal(damped.result) && damped.result).toMatchObject({
      reason: 'too_many_failures',
      headers: { 'retry-after': expect.stringMatching(/^[1-9][0-9]*$/) },
    });
    // Damped before the credential is checked: even the right key waits.
    const right = await onExchange(route, (ex) => authenticate(ex as Guarded), post(AGENT.key));
    expect(isRefusal(right.result) && right.result.reason).toBe('too_many_failures');
  });

  it('never counts a missing credential toward damping', async () => {
    const limiter = createMemoryLimiter();
    const authenticate = createAuthentication({ limiter, authFailureRate: parseRate('1/minute') });
    for (let i = 0; i < 3; i++) {
      const { result } = await onExchange(route, (ex) => authenticate(ex as Guarded), post());
      expect(isRefusal(result) && result.reason).toBe('missing_credential');
    }
    const { result } = await onExchange(route, (ex) => authenticate(ex as Guarded), post(AGENT.key));
    expect(isRefusal(result)).toBe(false);
  });
});
