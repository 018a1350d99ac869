import { type Authenticate, createAuthenticator } from '../auth/authenticate.js';
import type { Config, RouteConfig } from '../config/schema.js';
import { createForwarder, type Forwarder } from '../proxy/forward.js';

/** A route with everything the hot path needs built once at load. */
export interface CompiledRoute {
  readonly config: RouteConfig;
  readonly path: string;
  readonly allowedOrigins: ReadonlySet<string>;
  /** `upstreamHeaders` with lowercased names. */
  readonly upstreamHeaders: Readonly<Record<string, string>>;
  readonly authenticate: Authenticate;
  readonly forwarder: Forwarder;
}

export interface Router {
  /** Exact match on the path (query ignored); no normalization, so `/mcp/` and `/MCP` are not `/mcp`. */
  match(url: string | undefined): CompiledRoute | undefined;
  readonly routes: readonly CompiledRoute[];
  close(): Promise<void>;
}

export function createRouter(config: Config): Router {
  const routes = config.routes.map((route) => compileRoute(config, route));
  const byPath = new Map(routes.map((route) => [route.path, route]));
  return {
    routes,
    match(url) {
      if (url === undefined) return undefined;
      const q = url.indexOf('?');
      return byPath.get(q === -1 ? url : url.slice(0, q));
    },
    async close() {
      await Promise.all(routes.map((route) => route.forwarder.close()));
    },
  };
}

function compileRoute(config: Config, route: RouteConfig): CompiledRoute {
  return {
    config: route,
    path: route.route,
    // A page served from the route's own public origin is same-origin, never a rebinding attack.
    allowedOrigins: new Set([...route.allowedOrigins, new URL(route.resource).origin]),
    upstreamHeaders: Object.fromEntries(
      Object.entries(route.upstreamHeaders).map(([name, value]) => [name.toLowerCase(), value]),
    ),
    authenticate: createAuthenticator(config, route),
    forwarder: createForwarder(route),
  };
}
