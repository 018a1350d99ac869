/**
 * The mTLS identity pieces without a network: Node's `subjectaltname` text parsed back into its
 * entries (from real certificates made here), the certificate description read from a TLS socket,
 * and the matcher that maps a certificate to an `identities.mtls` entry.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  type ClientCertificate,
  clientCertificateOf,
  createMtlsMatcher,
  parseSubjectAltName,
} from '../../../src/auth/mtls.js';
import type { Config } from '../../../src/config/schema.js';
import { createTestCA, type TestCA, tlsSocket } from '../../support/certs.js';

type MtlsEntry = Config['identities']['mtls'][number];

let ca: TestCA;
beforeAll(async () => {
  ca = await createTestCA('Unit CA');
});

/** Node's own `subjectaltname` text for a certificate with these SAN entries. */
async function nodeSanText(names: { dns?: string[]; uris?: string[]; ips?: string[] }): Promise<string> {
  const leaf = await ca.issue({ cn: 'unit', client: true, ...names });
  return new X509Certificate(leaf.cert).subjectAltName ?? '';
}

describe('parseSubjectAltName', () => {
  it('parses plain DNS, URI and IP entries in order', async () => {
    const text = await nodeSanText({
      dns: ['web.tools.svc'],
      uris: ['spiffe://prod/agent/reporting'],
      ips: ['127.0.0.1'],
    });
    expect(parseSubjectAltName(text)).toEqual([
      ['DNS', 'web.tools.svc'],
      ['IP Address', '127.0.0.1'],
      ['URI', 'spiffe://prod/agent/reporting'],
    ]);
  });

  it('returns nothing for an empty SAN', () => {
    expect(parseSubjectAltName('')).toEqual([]);
  });

  it('keeps a DNS name that embeds ", URI:spiffe://…" as one DNS entry, never a forged URI', async () => {
    const forged = 'evil.example, URI:spiffe://prod/agent/reporting';
    const text = await nodeSanText({ dns: [forged] });
    // Node quotes the value (and escapes the comma) precisely so that it cannot be split here.
    expect(text).toMatch(/^DNS:"/);
    const parsed = parseSubjectAltName(text);
    expect(parsed).toEqual([['DNS', forged]]);
    expect(parsed.filter(([type]) => type === 'URI')).toEqual([]);
  });

  it('unquotes values with quotes, backslashes and non-ASCII characters', async () => {
    const text = await nodeSanText({ dns: ['a"b\\c', 'café.example'], uris: ['spiffe://prod/a,b'] });
    expect(parseSubjectAltName(text)).toEqual([
      ['DNS', 'a"b\\c'],
      ['DNS', 'café.example'],
      ['URI', 'spiffe://prod/a,b'],
    ]);
  });

  it('reads back exactly the DNS names and URIs a real certificate carries (property)', async () => {
    const value = fc.string({
      unit: fc.constantFrom(...'ab.-:/,"\\\' =+*\té'.split('')),
      minLength: 1,
      maxLength: 24,
    });
    await fc.assert(
      fc.asyncProperty(
        fc.array(value, { maxLength: 3 }),
        fc.array(value, { maxLength: 3 }),
        async (dns, uris) => {
          fc.pre(dns.length + uris.length > 0);
          const parsed = parseSubjectAltName(await nodeSanText({ dns, uris }));
          expect(parsed.filter(([type]) => type === 'DNS').map(([, v]) => v)).toEqual(dns);
          expect(parsed.filter(([type]) => type === 'URI').map(([, v]) => v)).toEqual(uris);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('stops at the first text that is not an entry and never reads a forged entry after it', () => {
    expect(parseSubjectAltName('DNS:a, garbage, URI:spiffe://prod/x')).toEqual([['DNS', 'a']]);
    expect(parseSubjectAltName('DNS:a,URI:spiffe://prod/x')).toEqual([]);
    expect(parseSubjectAltName('DNS:"unterminated, URI:spiffe://prod/x')).toEqual([]);
    // A quoted value that is not followed by a separator, or is not a JSON string, ends the list
    // (the regular expression this replaces threw on both).
    expect(parseSubjectAltName('DNS:"a"x, URI:spiffe://prod/x')).toEqual([]);
    expect(parseSubjectAltName('DNS:ok, DNS:"\\q", URI:spiffe://prod/x')).toEqual([['DNS', 'ok']]);
    expect(parseSubjectAltName('DNS:a, ')).toEqual([['DNS', 'a']]);
    expect(parseSubjectAltName('DNS:, URI:')).toEqual([
      ['DNS', ''],
      ['URI', ''],
    ]);
  });

  it.each([
    ['a run of type letters with no colon', 'A'.repeat(100_000)],
    ['letters and spaces with no colon', 'IP Address '.repeat(9_091)],
    ['an unterminated quoted value', `DNS:"${'a\\"'.repeat(33_333)}`],
    ['commas without spaces', 'DNS:a,'.repeat(16_667)],
    ['types without values', 'DNS:'.repeat(25_000)],
  ])('reads 100 KB of malformed SAN text (%s) in one pass', (_, text) => {
    // The unanchored global regular expression took 1.1 s on 20 KB and grew quadratically
    // (about 27 s here); a single pass takes well under a millisecond.
    const started = performance.now();
    parseSubjectAltName(text);
    expect(performance.now() - started).toBeLessThan(250);
  });

  it('reads 100 KB of well-formed SAN entries completely', () => {
    const text = Array.from({ length: 5_000 }, (_, i) => `DNS:host${i}.example`).join(', ');
    const parsed = parseSubjectAltName(text);
    expect(parsed).toHaveLength(5_000);
    expect(parsed[4_999]).toEqual(['DNS', 'host4999.example']);
  });
});

describe('clientCertificateOf', () => {
  it('is null for a plain TCP socket and for a TLS socket without a client certificate', () => {
    expect(clientCertificateOf({ encrypted: undefined })).toBeNull();
    expect(clientCertificateOf(null)).toBeNull();
    expect(clientCertificateOf(tlsSocket({}, false))).toBeNull();
  });

  it('describes a certificate: every CN, SAN DNS and URI, fingerprints, verification; read once per socket', async () => {
    const leaf = await ca.issue({
      cn: 'agent-ops',
      dns: ['web.tools.svc'],
      uris: ['spiffe://prod/agent/reporting'],
      client: true,
    });
    const x509 = new X509Certificate(leaf.cert);
    const socket = tlsSocket(
      {
        raw: x509.raw,
        // Node gives an array for a subject with two CN attributes.
        subject: { CN: ['agent-ops', 'second-cn'], O: 'Example' } as unknown as PeerCertificate['subject'],
        subjectaltname: x509.subjectAltName ?? '',
        fingerprint256: x509.fingerprint256,
      },
      true,
    );
    const described = clientCertificateOf(socket);
    expect(described).toEqual({
      verified: true,
      subject: 'CN=agent-ops+second-cn, O=Example',
      cn: ['agent-ops', 'second-cn'],
      dns: ['web.tools.svc'],
      uris: ['spiffe://prod/agent/reporting'],
      fingerprint256: x509.fingerprint256,
      thumbprint: createHash('sha256').update(x509.raw).digest('base64url'),
    });
    expect(clientCertificateOf(socket)).toBe(described);
    expect(socket.calls).toBe(1);
  });

  it('marks a certificate the handshake did not verify as unverified', async () => {
    const x509 = new X509Certificate((await ca.issue({ cn: 'x', client: true })).cert);
    const socket = tlsSocket(
      {
        raw: x509.raw,
        subject: { CN: 'x' } as PeerCertificate['subject'],
        fingerprint256: x509.fingerprint256,
      },
      false,
    );
    expect(clientCertificateOf(socket)).toMatchObject({ verified: false, cn: ['x'], dns: [], uris: [] });
  });
});

describe('createMtlsMatcher', () => {
  const entries: MtlsEntry[] = [
    { name: 'reporting', match: { uri: 'spiffe://prod/agent/reporting' }, scopes: ['files:read'] },
    { name: 'ops-agent', match: { cn: 'agent-ops' }, scopes: ['files:read', 'files:write'] },
    { name: 'web', match: { dns: 'web.tools.svc' }, scopes: ['files:read'] },
  ];
  const match = createMtlsMatcher(entries);

  function cert(names: {
    readonly cn?: readonly string[];
    readonly dns?: readonly string[];
    readonly uris?: readonly string[];
  }): ClientCertificate {
    return {
      verified: true,
      subject: `CN=${(names.cn ?? []).join('+')}`,
      cn: names.cn ?? [],
      dns: names.dns ?? [],
      uris: names.uris ?? [],
      fingerprint256: 'AA:BB',
      thumbprint: 'q83v',
    };
  }

  it.each([
    ['cn', { cn: ['agent-ops'] }, 'ops-agent', ['files:read', 'files:write']],
    ['SAN DNS', { cn: ['frontend'], dns: ['other.svc', 'web.tools.svc'] }, 'web', ['files:read']],
    ['SAN URI', { cn: ['workload'], uris: ['spiffe://prod/agent/reporting'] }, 'reporting', ['files:read']],
  ] as const)('matches by %s and builds the mtls identity', (_, names, name, scopes) => {
    const certificate = cert(names);
    const identity = match(certificate);
    if ('failure' in identity) throw new Error('expected an identity');
    expect(identity).toMatchObject({ key: `mtls:${name}`, subject: name, methods: ['mtls'] });
    expect([...identity.scopes].sort()).toEqual([...scopes].sort());
    expect(identity.certificate).toEqual({
      subject: certificate.subject,
      san: [...certificate.dns, ...certificate.uris],
      fingerprint256: 'AA:BB',
    });
    expect(Object.isFrozen(identity)).toBe(true);
  });

  it('compares DNS names case-insensitively (RFC 5280), CN and URI exactly', () => {
    expect(match(cert({ dns: ['Web.Tools.SVC'] }))).toMatchObject({ key: 'mtls:web' });
    expect(match(cert({ cn: ['Agent-Ops'] }))).toEqual({ failure: 'no_identity' });
    expect(match(cert({ uris: ['SPIFFE://prod/agent/reporting'] }))).toEqual({ failure: 'no_identity' });
  });

  it('takes the first entry, in policy order, that a certificate matches', () => {
    const both = cert({ cn: ['agent-ops'], uris: ['spiffe://prod/agent/reporting'] });
    expect(match(both)).toMatchObject({ key: 'mtls:reporting' });
    const reversed = createMtlsMatcher([entries[1]!, entries[0]!]);
    expect(reversed(both)).toMatchObject({ key: 'mtls:ops-agent' });
  });

  it.each([
    ['names nothing configured', { cn: ['stranger'], dns: ['stranger.svc'], uris: ['spiffe://prod/other'] }],
    ['has the configured DNS name only as its CN', { cn: ['web.tools.svc'] }],
    ['has the configured CN only as a SAN DNS name', { cn: ['someone'], dns: ['agent-ops'] }],
    ['has the configured SPIFFE ID only as a SAN DNS name', { dns: ['spiffe://prod/agent/reporting'] }],
    [
      'has a SPIFFE ID that only starts with the configured one',
      { uris: ['spiffe://prod/agent/reporting/x'] },
    ],
    ['differs from the configured CN in case', { cn: ['Agent-Ops'] }],
    ['has the configured CN next to another CN', { cn: ['agent-ops', 'intern'] }],
    ['has the configured CN after another CN', { cn: ['intern', 'agent-ops'] }],
    ['has the configured CN twice', { cn: ['agent-ops', 'agent-ops'] }],
  ] as const)('finds no identity for a certificate that %s', (_, names) => {
    expect(match(cert(names))).toEqual({ failure: 'no_identity' });
  });

  it('refuses an ambiguous subject only for cn matching: its SAN DNS and URI names still match', () => {
    const twoCns = ['agent-ops', 'intern'];
    expect(match(cert({ cn: twoCns, dns: ['web.tools.svc'] }))).toMatchObject({ key: 'mtls:web' });
    expect(match(cert({ cn: twoCns, uris: ['spiffe://prod/agent/reporting'] }))).toMatchObject({
      key: 'mtls:reporting',
    });
  });

  it('finds no identity when no entries are configured', () => {
    expect(createMtlsMatcher([])(cert({ cn: ['agent-ops'] }))).toEqual({ failure: 'no_identity' });
  });
});
