import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createSealer } from '../../../src/proxy/seal.js';
import { createSessionSealer } from '../../../src/proxy/sessions.js';

const key = () => randomBytes(32).toString('base64');

describe('createSealer', () => {
  it('opens what it sealed, for the same purpose only', () => {
    const sealer = createSealer([key()]);
    const sealed = sealer.seal('one', ['route', 'identity', 7]);
    expect(sealer.open('one', sealed)).toEqual(['route', 'identity', 7]);
    expect(sealer.open('two', sealed)).toBeUndefined();
  });

  it('opens under an older key (rotation), never under an unrelated one', () => {
    const [current, previous] = [key(), key()];
    const sealed = createSealer([previous]).seal('p', ['x']);
    expect(createSealer([current, previous]).open('p', sealed)).toEqual(['x']);
    expect(createSealer([current]).open('p', sealed)).toBeUndefined();
  });

  it('refuses altered, truncated, oversized and non-base64url values', () => {
    const sealer = createSealer([key()]);
    const sealed = sealer.seal('p', ['x']);
    const flipped = `${sealed.slice(0, 20)}${sealed[20] === 'A' ? 'B' : 'A'}${sealed.slice(21)}`;
    expect(sealer.open('p', flipped)).toBeUndefined();
    expect(sealer.open('p', sealed.slice(0, 20))).toBeUndefined();
    expect(sealer.open('p', 'A'.repeat(70_000))).toBeUndefined();
    expect(sealer.open('p', `${sealed}=`)).toBeUndefined();
  });

  it('never takes a session id for a sealed value, nor a sealed value for a session id', () => {
    const k = key();
    const session = createSessionSealer([k]).seal({
      upstreamId: 'u',
      route: '/mcp',
      identity: 'apiKey:a',
      version: '2025-11-25',
      issuedAt: 1,
    });
    expect(createSealer([k]).open('session', session)).toBeUndefined();
    expect(createSessionSealer([k]).open(createSealer([k]).seal('session', ['u']))).toBeUndefined();
  });
});
