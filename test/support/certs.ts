/**
 * Real X.509 certificates made in the test: a CA and leaf certificates it signs, as PEM, via
 * WebCrypto (`@peculiar/x509`). Nothing is copied from fixtures on disk.
 */
import 'reflect-metadata';
import { webcrypto, X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import * as x509 from '@peculiar/x509';

// Node's WebCrypto is the standard `Crypto`; its type lives in node:crypto, not the DOM lib.
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

export interface Pem {
  readonly cert: string;
  readonly key: string;
}

export interface TestCA extends Pem {
  /** A leaf certificate this CA signs, valid from a minute ago for a day unless told otherwise. */
  issue(opts: LeafOptions): Promise<Pem>;
}

async function exportKey(key: webcrypto.CryptoKey): Promise<string> {
  const der = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

function serial(): string {
  return Buffer.from(webcrypto.getRandomValues(new Uint8Array(8)))
    .toString('hex')
    .replace(/^[89a-f]/, '1');
}

export async function createTestCA(name = 'Portcullis Test CA'): Promise<TestCA> {
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const caCert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 86_400_000),
    keys,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const ca: Pem = { cert: caCert.toString('pem'), key: await exportKey(keys.privateKey) };
  return {
    ...ca,
    issue(opts) {
      return issueCertificate(ca, opts);
    },
  };
}

/** What {@link issueCertificate} puts in a leaf certificate; validity defaults to the CA's (now ± a day). */
export interface LeafOptions {
  readonly cn: string;
  /**
   * The whole subject as an RFC 4514 string, replacing `CN=<cn>`: e.g. `CN=a, CN=b` (two RDNs)
   * or `CN=a+CN=b` (one multi-valued RDN), for subjects a CA should never have signed.
   */
  readonly subject?: string;
  readonly dns?: readonly string[];
  readonly ips?: readonly string[];
  readonly uris?: readonly string[];
  readonly client?: boolean;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

/**
 * A leaf certificate signed by `ca` (a CA from {@link createTestCA}, as PEM) with a chosen
 * validity window: for certificates that have expired or are not yet valid.
 */
export async function issueCertificate(ca: Pem, opts: LeafOptions): Promise<Pem> {
  const caCert = new x509.X509Certificate(ca.cert);
  const caKey = await webcrypto.subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(ca.key), ALG, false, [
    'sign',
  ]);
  const leafKeys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const names = [
    ...(opts.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(opts.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
    ...(opts.uris ?? []).map((value) => ({ type: 'url' as const, value })),
  ];
  const leaf = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: opts.subject ?? `CN=${opts.cn}`,
    issuer: caCert.subject,
    notBefore: opts.notBefore ?? new Date(now - 60_000),
    notAfter: opts.notAfter ?? new Date(now + 86_400_000),
    publicKey: leafKeys.publicKey,
    signingKey: caKey,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension([
        opts.client ? x509.ExtendedKeyUsage.clientAuth : x509.ExtendedKeyUsage.serverAuth,
      ]),
      ...(names.length > 0 ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return { cert: leaf.toString('pem'), key: await exportKey(leafKeys.privateKey) };
}

/**
 * A TLS socket as far as `clientCertificateOf` (src/auth/mtls.ts) reads it — `encrypted`,
 * `authorized`, `getPeerCertificate()` — counting calls to `getPeerCertificate`. For unit tests
 * of what is read from a handshake without making one.
 */
export function tlsSocket(peer: Partial<PeerCertificate>, authorized: boolean) {
  const socket = {
    encrypted: true as const,
    authorized,
    calls: 0,
    getPeerCertificate() {
      socket.calls++;
      return peer;
    },
  };
  return socket;
}

/** {@link tlsSocket} presenting a real certificate (PEM) as Node describes it; `authorized`: it chained to the client CA. */
export function tlsSocketWith(leaf: Pem, authorized: boolean) {
  const certificate = new X509Certificate(leaf.cert);
  const subject: Record<string, string> = {};
  for (const line of certificate.subject.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) subject[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return tlsSocket(
    {
      raw: certificate.raw,
      subject: subject as unknown as PeerCertificate['subject'],
      subjectaltname: certificate.subjectAltName ?? '',
      fingerprint256: certificate.fingerprint256,
    },
    authorized,
  );
}
