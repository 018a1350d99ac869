import type {
  RouteConfig,
  StdioUpstreamConfig,
  UpstreamConfig,
  UpstreamIdentityConfig,
  UpstreamTimeoutsConfig,
  UpstreamTlsConfig,
} from './schema.js';

/**
 * One server a route sends to, with what applies to it alone: a single-server route's `upstream`,
 * or one member of a federated route's `servers` (its own TLS, timeouts and headers; the route's
 * timeouts when it sets none). What builds, checks and describes upstreams reads these, never the
 * route's fields, so a federated route's servers get exactly what a route of their own would.
 */
export interface UpstreamTarget {
  /** The route's path (metric labels, seals). */
  readonly route: string;
  /** The server's name in a federated route; undefined for a single-server route. */
  readonly server: string | undefined;
  readonly upstream: UpstreamConfig;
  readonly tls: UpstreamTlsConfig | undefined;
  readonly timeouts: UpstreamTimeoutsConfig;
  /** Headers added to every request to it. */
  readonly headers: Readonly<Record<string, string>>;
  /** How it is told who calls (`upstreamIdentity`); HTTP servers only. */
  readonly identity: UpstreamIdentityConfig | undefined;
  /** Where its `upstream` is written in the policy file, for messages: `routes[0].servers.files.upstream`. */
  readonly field: string;
}

/** A target whose upstream is a stdio program. */
export type StdioTarget = UpstreamTarget & { readonly upstream: StdioUpstreamConfig };

/** Every server `route` (the `index`th of the file) sends to, in the order the file lists them. */
export function upstreamTargets(route: RouteConfig, index: number): UpstreamTarget[] {
  if (route.servers === undefined)
    return [
      {
        route: route.route,
        server: undefined,
        upstream: route.upstream as UpstreamConfig,
        tls: route.upstreamTls,
        timeouts: route.upstreamTimeouts,
        headers: route.upstreamHeaders,
        identity: route.upstreamIdentity,
        field: `routes[${index}].upstream`,
      },
    ];
  return Object.entries(route.servers).map(([server, spec]) => ({
    route: route.route,
    server,
    upstream: spec.upstream,
    tls: spec.upstreamTls,
    timeouts: spec.upstreamTimeouts ?? route.upstreamTimeouts,
    headers: spec.upstreamHeaders,
    identity: spec.upstreamIdentity,
    field: `routes[${index}].servers.${server}.upstream`,
  }));
}

export function isStdioTarget(target: UpstreamTarget): target is StdioTarget {
  return typeof target.upstream !== 'string';
}
