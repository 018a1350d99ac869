import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createClientAddress } from '../../../src/server/client-address.js';

/** What the function reads of a request: the socket's peer and the headers, as node:http gives them. */
function req(remoteAddress: string | undefined, headers: IncomingHttpHeaders = {}): IncomingMessage {
  return { socket: { remoteAddress }, headers } as unknown as IncomingMessage;
}
const xff = (peer: string, chain: string) => req(peer, { 'x-forwarded-for': chain });

describe('createClientAddress: no trusted proxies', () => {
  const clientAddress = createClientAddress([]);

  it('is the socket peer, whatever X-Forwarded-For says', () => {
    expect(clientAddress(xff('198.51.100.7', '203.0.113.1'))).toEqual({
      address: '198.51.100.7',
      peer: '198.51.100.7',
    });
    expect(clientAddress(xff('127.0.0.1', '10.0.0.1, 127.0.0.1'))).toEqual({
      address: '127.0.0.1',
      peer: '127.0.0.1',
    });
    expect(clientAddress(req('::1'))).toEqual({ address: '::1', peer: '::1' });
  });

  it('never reads X-Forwarded-For (property)', () => {
    fc.assert(
      fc.property(
        fc.string(),
        (chain) => clientAddress(xff('198.51.100.7', chain)).address === '198.51.100.7',
      ),
    );
  });

  it('is `unknown` when the socket has no peer address (closed)', () => {
    expect(clientAddress(req(undefined))).toEqual({ address: 'unknown', peer: 'unknown' });
  });
});

describe('createClientAddress: trusted proxies', () => {
  const clientAddress = createClientAddress(['127.0.0.1/32', '10.0.0.0/8', 'fd00::/8', '2001:db8:ffff::1']);

  it('takes the client a trusted proxy names, and keeps the chain to extend upstream', () => {
    expect(clientAddress(xff('127.0.0.1', '203.0.113.7'))).toEqual({
      address: '203.0.113.7',
      peer: '127.0.0.1',
      forwardedFor: '203.0.113.7',
    });
  });

  it('ignores X-Forwarded-For from a peer that is not trusted', () => {
    expect(clientAddress(xff('198.51.100.7', '203.0.113.7'))).toEqual({
      address: '198.51.100.7',
      peer: '198.51.100.7',
    });
    expect(clientAddress(xff('11.0.0.1', '203.0.113.7'))).toEqual({ address: '11.0.0.1', peer: '11.0.0.1' });
  });

  it('is the peer when a trusted proxy sends no X-Forwarded-For', () => {
    expect(clientAddress(req('10.1.2.3'))).toEqual({ address: '10.1.2.3', peer: '10.1.2.3' });
  });

  it('walks from the right past trusted proxies to the first untrusted hop', () => {
    expect(clientAddress(xff('127.0.0.1', '203.0.113.7, 10.0.0.2, 10.9.9.9')).address).toBe('203.0.113.7');
  });

  it('never reads the entries a client wrote left of the first untrusted hop (spoofing)', () => {
    // The client sent "10.0.0.5, 127.0.0.1" itself; the proxy appended the address it saw.
    const result = clientAddress(xff('10.0.0.1', '10.0.0.5, 127.0.0.1, 198.51.100.9'));
    expect(result.address).toBe('198.51.100.9');
    expect(clientAddress(xff('127.0.0.1', '1.1.1.1, 8.8.8.8, 198.51.100.9')).address).toBe('198.51.100.9');
  });

  it('spoofed entries can never change the address a trusted proxy appended (property)', () => {
    const anything = fc.array(fc.oneof(fc.ipV4(), fc.ipV6(), fc.string()), { maxLength: 5 });
    fc.assert(
      fc.property(anything, fc.ipV4(), (spoofed, real) => {
        fc.pre(!real.startsWith('10.') && !real.startsWith('127.'));
        const chain = [...spoofed, real].join(', ');
        return clientAddress(xff('127.0.0.1', chain)).address === real;
      }),
      { numRuns: 300 },
    );
  });

  it('is always an IP address or the peer, never an arbitrary string (property)', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (chain) => {
        const { address } = clientAddress(xff('127.0.0.1', chain));
        return address === '127.0.0.1' || isIP(address.replace(/^::ffff:/, '')) !== 0;
      }),
      { numRuns: 300 },
    );
  });

  describe('garbage entries', () => {
    it.each([
      ['not an address', 'not-an-ip'],
      ['a host name', 'attacker.example'],
      ['an address with a port', '203.0.113.7:4433'],
      ['a bracketed IPv6 address', '[2001:db8::1]'],
      ['a bracketed IPv6 address with a port', '[2001:db8::1]:443'],
      ['an empty hop', ''],
      ['an out-of-range octet', '203.0.113.256'],
      ['a leading-zero octet', '010.0.0.1'],
      ['an RFC 7239 token', 'for=203.0.113.7'],
      ['unknown', 'unknown'],
      ['a CIDR', '203.0.113.0/24'],
    ])('stops at %s and never takes it as the client', (_, garbage) => {
      // Right of garbage: only trusted hops, so the client is the last good hop (a trusted proxy).
      const result = clientAddress(xff('127.0.0.1', `198.51.100.1, ${garbage}, 10.0.0.2`));
      expect(result.address).toBe('10.0.0.2');
      const atTheEnd = clientAddress(xff('127.0.0.1', `198.51.100.1, ${garbage}`));
      expect(atTheEnd.address).toBe('127.0.0.1');
    });

    it('takes a good untrusted hop right of the garbage', () => {
      expect(clientAddress(xff('127.0.0.1', 'garbage, 203.0.113.7')).address).toBe('203.0.113.7');
      expect(clientAddress(xff('127.0.0.1', 'garbage, 203.0.113.7, 10.0.0.3')).address).toBe('203.0.113.7');
    });

    it('is the peer for an empty or blank header', () => {
      expect(clientAddress(xff('127.0.0.1', '')).address).toBe('127.0.0.1');
      expect(clientAddress(xff('127.0.0.1', ' , ,')).address).toBe('127.0.0.1');
    });

    it('trims spaces and tabs around hops', () => {
      expect(clientAddress(xff('127.0.0.1', '  203.0.113.7\t,10.0.0.2  ')).address).toBe('203.0.113.7');
    });
  });

  describe('IPv6', () => {
    it('trusts an IPv6 proxy by subnet and by single address', () => {
      expect(clientAddress(xff('fd00::1', '2001:db8::7')).address).toBe('2001:db8::7');
      expect(clientAddress(xff('2001:db8:ffff::1', '2001:db8::7')).address).toBe('2001:db8::7');
      expect(clientAddress(xff('2001:db8:ffff::2', '2001:db8::7')).address).toBe('2001:db8:ffff::2');
    });

    it('walks IPv6 and IPv4 hops alike', () => {
      expect(clientAddress(xff('127.0.0.1', '2001:db8::7, fd12::3, 10.0.0.2')).address).toBe('2001:db8::7');
      expect(clientAddress(xff('fd00::1', '203.0.113.7, fd00::2')).address).toBe('203.0.113.7');
    });

    it('does not trust ::1 because 127.0.0.1 is trusted, nor the reverse', () => {
      const v4only = createClientAddress(['127.0.0.1/32']);
      expect(v4only(xff('::1', '203.0.113.7')).address).toBe('::1');
      const v6only = createClientAddress(['::1']);
      expect(v6only(xff('127.0.0.1', '203.0.113.7')).address).toBe('127.0.0.1');
      expect(v6only(xff('::1', '203.0.113.7')).address).toBe('203.0.113.7');
    });
  });

  describe('::ffff: mapped IPv4 (dual-stack sockets)', () => {
    it('trusts a mapped peer whose IPv4 address is trusted', () => {
      expect(clientAddress(xff('::ffff:127.0.0.1', '203.0.113.7'))).toEqual({
        address: '203.0.113.7',
        peer: '::ffff:127.0.0.1',
        forwardedFor: '203.0.113.7',
      });
      expect(clientAddress(xff('::ffff:10.20.30.40', '203.0.113.7')).address).toBe('203.0.113.7');
    });

    it('does not trust a mapped peer outside the trusted ranges', () => {
      expect(clientAddress(xff('::ffff:11.0.0.1', '203.0.113.7')).address).toBe('::ffff:11.0.0.1');
      expect(clientAddress(xff('::ffff:128.0.0.1', '203.0.113.7')).address).toBe('::ffff:128.0.0.1');
    });

    it('walks past a mapped trusted hop in the chain', () => {
      expect(clientAddress(xff('127.0.0.1', '203.0.113.7, ::ffff:10.0.0.2')).address).toBe('203.0.113.7');
    });

    it('takes a mapped untrusted hop as the client, never skipping past it', () => {
      const result = clientAddress(xff('127.0.0.1', '10.0.0.9, ::ffff:203.0.113.7, 10.0.0.2'));
      expect(result.address.replace(/^::ffff:/, '')).toBe('203.0.113.7');
    });

    it('trusts mapped addresses written in hex as the IPv4 address they map', () => {
      // ::ffff:7f00:1 is 127.0.0.1.
      expect(clientAddress(xff('::ffff:7f00:1', '203.0.113.7')).address).toBe('203.0.113.7');
    });

    it('does not let `::ffff:` make garbage look like an address', () => {
      expect(clientAddress(xff('127.0.0.1', '203.0.113.7, ::ffff:evil.example')).address).toBe('127.0.0.1');
      expect(clientAddress(xff('127.0.0.1', '::ffff:1.2.3')).address).toBe('127.0.0.1');
    });
  });
});
