import { describe, expect, it } from 'vitest';
import { clientSessionId, createSessionOpening } from '../../../src/proxy/session-stage.js';
import { createSessionSealer, type SessionClaims } from '../../../src/proxy/sessions.js';
import { onExchange, READER, testRouter } from '../../support/exchange.js';

const key = Buffer.alloc(32, 3).toString('base64');
/** What the stage does not check; route, identity and age are set per test. */
const claims = { upstreamId: 'up-1', version: '2025-11-25' };

describe('createSessionOpening: the session stage', () => {
  const route = testRouter().routes[0]!;
  const sessions = createSessionSealer([key]);
  const open = createSessionOpening({ sessions, maxAgeSec: 60 });
  const now = () => Math.floor(Date.now() / 1000);
  const sealedFor = (over: Partial<SessionClaims> = {}) =>
    sessions.seal({ ...claims, route: '/mcp', identity: READER.key, issuedAt: now(), ...over });
  const withSession = (sealed: string, version?: string): RequestInit => ({
    method: 'POST',
    body: '{}',
    headers: { 'mcp-session-id': sealed, ...(version ? { 'mcp-protocol-version': version } : {}) },
  });

  it('opens a session of this route and identity, recording its claims and the id the client holds', async () => {
    const sealed = sealedFor();
    const { result, exchange } = await onExchange(route, open, withSession(sealed));
    expect(result).toBeUndefined();
    expect(exchange.session).toMatchObject({ upstreamId: 'up-1', identity: READER.key });
    expect(exchange.sessionId).toBe(sealed);
  });

  it.each([
    ['another identity', { identity: 'apiKey:other' }],
    ['another route', { route: '/other' }],
    ['too old', { issuedAt: 1_000 }],
  ])('refuses a session of %s: session_not_found', async (_, over) => {
    const { result, exchange } = await onExchange(route, open, withSession(sealedFor(over)));
    expect(result?.reason).toBe('session_not_found');
    expect(exchange.session).toBeUndefined();
  });

  it('ignores the session header of a modern request, and a request without one', async () => {
    const modern = await onExchange(route, open, withSession('forged', '2026-07-28'));
    expect(modern.result).toBeUndefined();
    expect(modern.exchange.session).toBeUndefined();
    expect((await onExchange(route, open)).result).toBeUndefined();
  });

  it('gives the client its own id back for its session, and a sealed new one for a new upstream session', async () => {
    const sealed = sealedFor();
    const { result } = await onExchange(
      route,
      (exchange) => {
        open(exchange);
        return [clientSessionId(sessions, exchange, 'up-1'), clientSessionId(sessions, exchange, 'up-2')];
      },
      withSession(sealed),
    );
    expect(result[0]).toBe(sealed);
    expect(result[1]).not.toContain('up-2');
    expect(sessions.open(result[1] as string)).toMatchObject({ upstreamId: 'up-2', identity: READER.key });
  });
});
