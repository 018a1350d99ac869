/**
 * The identity provider failing, through a real gateway (issue 13, class 13): real JWKS endpoints
 * that answer 500, are stopped, or hang; a key the issuer removes. An IdP fault is 503
 * `idp_unavailable` with `Retry-After` — never 401 — reaches no upstream, is not counted toward
 * `authFailures` (real users are not locked out with 429 once it recovers), is logged at warn
 * without the token and counted in `portcullis_idp_errors_total`. A removed key stops working
 * within `jwksCacheMaxAgeSec`, cached tokens included.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import {
  createSigningKey,
  type JwksServer,
  nowSec,
  type SigningKey,
  signJwt,
  startJwksServer,
} from '../support/jwks.js';
import { postModern } from '../support/modern-call.js';
import { sleep } from '../support/wait.js';
import { counterValue, metricsText } from '../support/wire.js';

const RESOURCE = 'https://mcp.example.com/mcp';
const FLAKY = 'https://flaky.example.com/';
const GONE = 'https://gone.example.com/';
const SLOW = 'https://slow.example.com/';
const ROTATING = 'https://rotating.example.com/';
/** Small on purpose: the revocation bound and the staleness that exposes an outage, in seconds. */
const MAX_AGE_SEC = 1;
/** The backoff after a failed fetch is min(jwksCooldownMs, 5 s). */
const COOLDOWN_MS = 1000;
const AUTH_FAILURE_LIMIT = 5;

let upstream: Peer;
let flaky: JwksServer;
let slow: JwksServer;
let rotating: JwksServer;
let goneUrl: string;
let gateway: TestGateway;
let flakyKey: SigningKey;
let goneKey: SigningKey;
let slowKey: SigningKey;
let rotatingKey: SigningKey;
let log = '';

beforeAll(async () => {
  [flakyKey, goneKey, slowKey, rotatingKey] = await Promise.all([
    createSigningKey('ES256', 'flaky-1'),
    createSigningKey('ES256', 'gone-1'),
    createSigningKey('ES256', 'slow-1'),
    createSigningKey('ES256', 'rotating-1'),
  ]);
  let gone: JwksServer;
  [upstream, flaky, slow, rotating, gone] = await Promise.all([
    startV2Server({ response: 'json' }),
    startJwksServer([flakyKey]),
    startJwksServer([slowKey]),
    startJwksServer([rotatingKey]),
    startJwksServer([goneKey]),
  ]);
  // Stopped before the gateway ever reads it: every fetch is refused at the TCP level.
  goneUrl = gone.url;
  await gone.close();
  slow.setFault('hang');
  const issuer = (name: string, url: string, extra = '') => `    - issuer: ${name}
      jwksUri: ${url}
      algorithms: [ES256]
      jwksCooldownMs: ${COOLDOWN_MS}
${extra}`;
  gateway = await startTestGateway({
    log: new Writable({
      write(chunk, _encoding, done) {
        log += String(chunk);
        done();
      },
    }),
    policy: `authFailures: { limit: ${AUTH_FAILURE_LIMIT}/minute }
identities:
  jwt:
${issuer(FLAKY, flaky.url, `      jwksCacheMaxAgeSec: ${MAX_AGE_SEC}\n`)}${issuer(GONE, goneUrl)}${issuer(SLOW, slow.url)}${issuer(ROTATING, rotating.url, `      jwksCacheMaxAgeSec: ${MAX_AGE_SEC}\n`)}
routes:
  - route: /mcp
    resource: ${RESOURCE}
    upstream: ${upstream.url}
    authentication: { methods: [jwt] }
    authorizationServers: [${FLAKY}]
    tools: { echo: files:read }
`,
  });
});
afterAll(async () => {
  await gateway?.close();
  await Promise.all([upstream?.close(), flaky?.close(), slow?.close(), rotating?.close()]);
});

function tokenOf(key: SigningKey, iss: string, sub = 'alice'): Promise<string> {
  const now = nowSec();
  return signJwt(key, { iss, aud: RESOURCE, sub, scope: 'files:read', iat: now, exp: now + 600 });
}

function callEcho(token: string): Promise<Response> {
  const params = { name: 'echo', arguments: { text: 'hi' } };
  return postModern(`${gateway.url}/mcp`, { method: 'tools/call', params, key: token });
}

async function expectServed(token: string): Promise<void> {
  const answer = await callEcho(token);
  expect(answer.status, await answer.clone().text()).toBe(200);
  expect(await answer.json()).toMatchObject({ id: 1, result: { content: [{ text: 'hi' }] } });
}

/** 503 idp_unavailable as the refusal table lists it, with nothing forwarded. */
async function expectIdpUnavailable(token: string): Promise<void> {
  const before = upstream.requests.length;
  const answer = await callEcho(token);
  expect(answer.status).toBe(503);
  expect(Number(answer.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  expect(answer.headers.get('www-authenticate')).toBeNull();
  expect(await answer.json()).toEqual({
    jsonrpc: '2.0',
    id: null,
    error: { code: -31094, message: 'Identity provider unavailable', data: { reason: 'idp_unavailable' } },
  });
  expect(upstream.requests.length, 'the upstream must see nothing').toBe(before);
}

const idpErrors = async (issuer: string, kind: string) =>
  counterValue(await metricsText(gateway), 'portcullis_idp_errors_total', { issuer, kind });

describe('a JWKS outage', () => {
  it('answers 503 idp_unavailable while the JWKS answers 500, never damps the caller, and serves them again when it recovers', async () => {
    const token = await tokenOf(flakyKey, FLAKY);
    await expectServed(token);
    flaky.setFault(500);
    await sleep(MAX_AGE_SEC * 1000 + 100); // the key set is now too old to trust without a re-read
    const fetched = flaky.fetches;
    // More than the authFailures limit: none of these is the caller's failure.
    for (let i = 0; i < AUTH_FAILURE_LIMIT + 3; i++) await expectIdpUnavailable(token);
    expect(flaky.fetches - fetched, 'the outage does not become a fetch per request').toBe(1);
    expect(await idpErrors(FLAKY, 'status')).toBe(1);

    const warned = log
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>)
      .filter((line) => line.issuer === FLAKY);
    expect(warned).toEqual([
      expect.objectContaining({ level: 40, issuer: FLAKY, kind: 'status', status: 500 }),
    ]);
    expect(log).not.toContain(token);

    const records = await gateway.auditRecords();
    const refused = records.filter((r) => r.reason === 'idp_unavailable');
    expect(refused).toHaveLength(AUTH_FAILURE_LIMIT + 3);
    expect(refused[0]).toMatchObject({ status: 503, decision: 'error' });
    expect(JSON.stringify(records)).not.toContain(token);
    const damped = counterValue(await metricsText(gateway), 'portcullis_auth_failures_total', {});
    expect(damped, 'an outage is not an authentication failure').toBe(0);

    // The IdP recovers: after the backoff the key set is read again and the same user is served,
    // not 429 too_many_failures.
    flaky.setFault('none');
    await sleep(COOLDOWN_MS + 100);
    await expectServed(token);
    await expectServed(await tokenOf(flakyKey, FLAKY, 'bob'));
  });

  it('answers 503 idp_unavailable when the JWKS endpoint is stopped (connection refused)', async () => {
    await expectIdpUnavailable(await tokenOf(goneKey, GONE));
    expect(await idpErrors(GONE, 'unreachable')).toBe(1);
    // Other issuers are unaffected: the process keeps serving.
    await expectServed(await tokenOf(flakyKey, FLAKY));
  });

  it('answers 503 idp_unavailable when the JWKS endpoint hangs, after the 5 s fetch timeout', async () => {
    const started = Date.now();
    await expectIdpUnavailable(await tokenOf(slowKey, SLOW));
    expect(Date.now() - started).toBeGreaterThanOrEqual(4900);
    expect(await idpErrors(SLOW, 'timeout')).toBe(1);
    await expectServed(await tokenOf(flakyKey, FLAKY));
  }, 20_000);
});

describe('key removal', () => {
  it('stops a token whose key left the JWKS within jwksCacheMaxAgeSec, though it was cached', async () => {
    const token = await tokenOf(rotatingKey, ROTATING);
    await expectServed(token);
    const next = await createSigningKey('ES256', 'rotating-2');
    rotating.add(next);
    rotating.remove(rotatingKey.kid);
    await sleep(MAX_AGE_SEC * 1000 + 100);
    const before = upstream.requests.length;
    const answer = await callEcho(token);
    expect(answer.status).toBe(401);
    expect(answer.headers.get('www-authenticate')).toBe(
      'Bearer error="invalid_token", scope="files:read", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp"',
    );
    expect(await answer.json()).toMatchObject({ error: { data: { reason: 'invalid_credential' } } });
    expect(upstream.requests.length).toBe(before);
    const text = await metricsText(gateway);
    expect(counterValue(text, 'portcullis_auth_failures_total', { reason: 'unknown_key' })).toBe(1);
    // A token from the key that replaced it is served.
    await expectServed(await tokenOf(next, ROTATING));
  });
});
