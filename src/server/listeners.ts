import {
  createServer as createHttpServer,
  type RequestListener,
  type Server,
  type ServerOptions,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { FileWatch } from '../config/reload.js';
import type { Config } from '../config/schema.js';
import { followTlsFiles, readTlsMaterial, type TlsMaterial, tlsOptions } from './tls-files.js';

export interface MainListener {
  readonly server: Server;
  readonly proto: 'http' | 'https';
}

/**
 * The main listener (DESIGN.md step 1): `https` when `tls` is configured — its files read now, and
 * re-read through `tls.watch` when they change — else `http`; with the configured header, request
 * and keep-alive timeouts. Malformed HTTP is answered with a fixed status line, never the parser's
 * message, and the process keeps serving.
 */
export function createMainListener(deps: {
  readonly limits: Config['limits'];
  readonly tls:
    | {
        readonly settings: NonNullable<Config['tls']>;
        readonly watch: FileWatch;
        /** Hears the material in force: at start and after each rotation. */
        readonly onMaterial: (material: TlsMaterial) => void;
      }
    | undefined;
  readonly handler: RequestListener;
  readonly logger: Logger;
}): MainListener {
  const { limits, tls, handler, logger } = deps;
  const options: ServerOptions = {
    requestTimeout: limits.requestTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    noDelay: true,
  };
  let main: MainListener;
  if (tls === undefined) main = { server: createHttpServer(options, handler), proto: 'http' };
  else {
    const material = readTlsMaterial(tls.settings);
    const server = createHttpsServer({ ...options, ...tlsOptions(tls.settings, material) }, handler);
    tls.onMaterial(material);
    followTlsFiles({ ...tls, server, current: material, onApplied: tls.onMaterial, logger });
    main = { server, proto: 'https' };
  }
  main.server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    logger.debug({ code: err.code }, 'client connection error');
    if (socket.writable && !socket.destroyed) {
      const status = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? '408 Request Timeout' : '400 Bad Request';
      socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    } else socket.destroy();
  });
  return main;
}

/** The admin listener: plain HTTP on its own port (`/healthz`, `/readyz`, `/metrics`). */
export function createAdminListener(handler: RequestListener): Server {
  return createHttpServer(handler);
}

/** Listens on `port` and `host`; resolves to the base URL, e.g. `http://127.0.0.1:8443`. */
export function listen(
  server: Server,
  { port, host }: { readonly port: number; readonly host: string },
  proto: 'http' | 'https',
): Promise<string> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve(baseUrl(server, proto));
    });
  });
}

function baseUrl(server: Server, proto: string): string {
  const { address, port } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address === '0.0.0.0' ? '127.0.0.1' : address;
  return `${proto}://${host}:${port}`;
}

/** Closes a listener and every connection on it at once (the admin listener: probes need no drain). */
export async function closeNow(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
