import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Metrics } from '../metrics/registry.js';
import { sendMetadata } from './respond.js';
import { JWKS_PATH } from './router.js';

/**
 * The admin listener, on its own port so metrics never share the public surface:
 * `/healthz` (the process is alive), `/readyz` (policy loaded and not draining), `/metrics`, and
 * the gateway's JWKS at `/.well-known/jwks.json` when it signs assertions (upstreams inside the
 * cluster fetch it here when the main listener demands client certificates).
 */
export function createAdminHandler(deps: {
  readonly metrics: Metrics;
  readonly ready: () => boolean;
  /** The current policy's JWKS, if any (a reload can change it). */
  readonly jwks?: () => string | undefined;
}): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (path === '/readyz') {
      const ready = deps.ready();
      res
        .writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' })
        .end(ready ? 'ready\n' : 'not ready\n');
    } else if (path === '/metrics') {
      deps.metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': deps.metrics.registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else if (path === JWKS_PATH && deps.jwks?.() !== undefined) {
      sendMetadata(res, deps.jwks() as string);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  };
}
