import { readFileSync } from 'node:fs';
import type { ServerOptions as HttpsOptions, Server as HttpsServer } from 'node:https';
import type { Logger } from 'pino';
import type { FileWatch } from '../config/reload.js';
import type { Config } from '../config/schema.js';

type TlsConfig = NonNullable<Config['tls']>;

/** The main listener's certificate, key and client CA, as read from their files. */
export interface TlsMaterial {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca?: Buffer;
}

/** The files in the order `materialOf` reads them back. */
function tlsPaths(tls: TlsConfig): string[] {
  return [tls.cert, tls.key, ...(tls.clientCA === undefined ? [] : [tls.clientCA])];
}

function materialOf([cert, key, ca]: readonly Buffer[]): TlsMaterial {
  if (cert === undefined || key === undefined) throw new TypeError('a certificate and a key are required');
  return { cert, key, ...(ca === undefined ? {} : { ca }) };
}

/** Reads the listener's certificate, key and client CA as configured. */
export function readTlsMaterial(tls: TlsConfig): TlsMaterial {
  return materialOf(tlsPaths(tls).map((path) => readFileSync(path)));
}

/**
 * The main listener's TLS: 1.2 minimum. With a client CA, certificates are requested; `required`
 * refuses the handshake without a valid one, `optional` lets token clients share the port and
 * leaves an unverified certificate for authentication to refuse (401).
 */
export function tlsOptions(tls: TlsConfig, material: TlsMaterial): HttpsOptions {
  return {
    cert: material.cert,
    key: material.key,
    minVersion: 'TLSv1.2',
    ...(material.ca === undefined
      ? {}
      : {
          ca: material.ca,
          requestCert: true,
          rejectUnauthorized: (tls.clientCertificate ?? 'required') === 'required',
        }),
  };
}

/**
 * Re-reads the TLS files when they change on disk (cert-manager rotation) and swaps the server's
 * secure context: open connections keep theirs, new handshakes get the new one, nothing restarts.
 * `onApplied` hears each material put in force. A half-written or mismatched pair is logged and
 * the old material kept until the files agree.
 */
export function followTlsFiles(deps: {
  readonly watch: FileWatch;
  readonly settings: TlsConfig;
  readonly server: HttpsServer;
  readonly current: TlsMaterial;
  readonly onApplied: (material: TlsMaterial) => void;
  readonly logger: Logger;
}): void {
  const { settings: tls, server, current, logger } = deps;
  deps.watch.add({
    name: 'tls',
    paths: tlsPaths(tls),
    current: [current.cert, current.key, ...(current.ca === undefined ? [] : [current.ca])],
    onChange: (contents) => {
      const material = materialOf(contents);
      try {
        server.setSecureContext(tlsOptions(tls, material));
        deps.onApplied(material);
      } catch (err) {
        // A new certificate without its new key (or the reverse) is refused until both are in place.
        logger.warn(
          { err: (err as Error).message },
          'tls files do not form a valid pair yet; keeping the current certificate',
        );
        return false;
      }
      logger.info('tls certificate, key or client CA reloaded');
      return true;
    },
  });
}
