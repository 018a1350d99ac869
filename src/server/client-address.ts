import type { IncomingMessage } from 'node:http';
import { BlockList, isIP, isIPv6 } from 'node:net';

export interface ClientAddress {
  /** The address the gateway trusts as the client's. */
  readonly address: string;
  /** The connection's peer (a proxy, when `forwardedFor` is set). */
  readonly peer: string;
  /** The `X-Forwarded-For` chain as received from a trusted proxy, to extend upstream. */
  readonly forwardedFor?: string;
}

/**
 * The client's address: the socket's peer, unless that peer is a trusted proxy, in which case the
 * `X-Forwarded-For` chain is walked from the right past trusted proxies; the first untrusted entry
 * is the client. A client cannot spoof its address by sending the header itself: entries left of
 * the first untrusted hop are never read.
 */
export function createClientAddress(
  trustedProxies: readonly string[],
): (req: IncomingMessage) => ClientAddress {
  if (trustedProxies.length === 0) {
    return (req) => {
      const peer = req.socket.remoteAddress ?? 'unknown';
      return { address: peer, peer };
    };
  }
  const trusted = new BlockList();
  for (const entry of trustedProxies) {
    const [address = '', prefix] = entry.split('/');
    const type = isIPv6(address) ? 'ipv6' : 'ipv4';
    if (prefix === undefined) trusted.addAddress(address, type);
    else trusted.addSubnet(address, Number(prefix), type);
  }
  const isTrusted = (address: string) => {
    const plain = unmapped(address);
    return isIP(plain) !== 0 && trusted.check(plain, isIPv6(plain) ? 'ipv6' : 'ipv4');
  };
  return (req) => {
    const peer = req.socket.remoteAddress ?? 'unknown';
    const header = req.headers['x-forwarded-for'];
    if (!isTrusted(peer) || typeof header !== 'string') return { address: peer, peer };
    const hops = header.split(',').map((hop) => hop.trim());
    let client = peer;
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i] as string;
      // Something that is not an address was not written by a proxy we trust: stop at the last good hop.
      if (isIP(unmapped(hop)) === 0) break;
      client = hop;
      if (!isTrusted(hop)) break;
    }
    return { address: client, peer, forwardedFor: header };
  };
}

/** `::ffff:10.0.0.1` (a dual-stack socket's IPv4 peer) is 10.0.0.1. */
function unmapped(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}
