import { describe, expect, it } from 'vitest';
import { clientSessionId, createSessionOpening, createSessionSealer } from '../../../src/proxy/sessions.js';
import { onExchange, READER, testRouter } from '../../support/exchange.js';

const key = (n: number) => Buffer.alloc(32, n).toString('base64');
const claims = {
  upstreamId: 'up-1',
  route: '/mcp',
  identity: 'apiKey:ci',
  version: '2025-11-25',
  issuedAt: 1_800_000_000,
};

describe('createSessionSealer', () => {
  it('opens what it sealed, and nothing else', () => {
    const sealer = createSessionSealer([key(1)]);
    const sealed = sealer.seal(claims);
    expect(sealer.open(sealed)).toEqual(claims);
    expect(sealed).not.toContain('up-1');
    expect(sealer.open(`${sealed}A`)).toBeUndefined();
    expect(sealer.open('')).toBeUndefined();
    expect(sealer.open('not base64!')).toBeUndefined();
  });

  it('rotates: the first key seals, every key opens; a removed key stops opening', () => {
    const old = createSessionSealer([key(1)]);
    const rotated = createSessionSealer([key(2), key(1)]);
    const sealedByOld = old.seal(claims);
    expect(rotated.open(sealedByOld)).toEqual(claims);
    expect(old.open(rotated.seal(claims))).toBeUndefined();
    expect(createSessionSealer([key(2)]).open(sealedByOld)).toBeUndefined();
  });

  it('an id with any byte of its IV, ciphertext or tag changed does not open (the GCM tag refuses it)', () => {
    const sealer = createSessionSealer([key(1)]);
    const bytes = Buffer.from(sealer.seal(claims), 'base64url');
    for (let i = 1; i < bytes.length; i++) {
      const forged = Buffer.from(bytes);
      forged[i] = (forged[i] as number) ^ 0x01;
      expect(sealer.open(forged.toString('base64url')), `byte ${i}`).toBeUndefined();
    }
  });

  it('uses a random key per process when none is configured', () => {
    const one = createSessionSealer(undefined);
    const two = createSessionSealer(undefined);
    expect(two.open(one.seal(claims))).toBeUndefined();
    expect(one.open(one.seal(claims))).toEqual(claims);
  });
});

describe('createSessionOpening: the session stage', () => {
  const route = testRouter().routes[0]!;
  const sessions = createSessionSealer([key(3)]);
  const open = createSessionOpening({ sessions, maxAgeSec: 60 });
  const now = () => Math.floor(Date.now() / 1000);
  const sealedFor = (over: Partial<typeof claims> = {}) =>
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
