import { describe, expect, it } from 'vitest';
import { createSessionSealer } from '../../../src/proxy/sessions.js';

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

  it('seals whether the client declared form elicitation; an id sealed before the flag existed opens without it', () => {
    const sealer = createSessionSealer([key(1)]);
    expect(sealer.open(sealer.seal({ ...claims, elicitation: true }))).toEqual({
      ...claims,
      elicitation: true,
    });
    expect(sealer.open(sealer.seal({ ...claims, elicitation: false }))).toEqual(claims);
    expect(sealer.open(sealer.seal(claims))?.elicitation).toBeUndefined();
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
