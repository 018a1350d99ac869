import { X509Certificate } from 'node:crypto';
import type { Metrics } from './registry.js';

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificate files this gauge reads: the serving chain (PEM) and the client CA bundle, if any. */
export interface CertificateFiles {
  readonly cert: Buffer;
  readonly ca?: Buffer | undefined;
}

/**
 * `portcullis_certificate_expiry_timestamp_seconds` for the serving certificate (the leaf of its
 * chain) and each certificate of the client CA bundle, set again whenever the files are re-read.
 */
export function recordCertificateExpiry(metrics: Metrics, files: CertificateFiles): void {
  const gauge = metrics.certificateExpiry;
  gauge.reset();
  const set = (certificate: string, pem: string) => {
    const x509 = new X509Certificate(pem);
    gauge.set({ certificate, subject: x509.subject.replace(/\n/g, ', ') }, Date.parse(x509.validTo) / 1000);
  };
  const [leaf] = files.cert.toString('utf8').match(PEM_BLOCK) ?? [];
  if (leaf !== undefined) set('serving', leaf);
  for (const pem of files.ca?.toString('utf8').match(PEM_BLOCK) ?? []) set('client_ca', pem);
}
