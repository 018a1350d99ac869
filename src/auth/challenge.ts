import type { RouteConfig } from '../config/schema.js';

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/**
 * RFC 9728 §3.1: the metadata of resource `https://host/files/mcp` lives at
 * `https://host/.well-known/oauth-protected-resource/files/mcp`.
 */
export function resourceMetadataUrl(route: RouteConfig): string {
  const resource = new URL(route.resource);
  const path = resource.pathname === '/' ? '' : resource.pathname;
  return `${resource.origin}${WELL_KNOWN}${path}`;
}

/** The paths on which the gateway serves a route's metadata: by its public resource path and by its route. */
export function resourceMetadataPaths(route: RouteConfig): string[] {
  const resourcePath = new URL(resourceMetadataUrl(route)).pathname;
  const routePath = `${WELL_KNOWN}${route.route}`;
  return resourcePath === routePath ? [routePath] : [resourcePath, routePath];
}

/** `WWW-Authenticate` for the route's 401s, built once (MCP authorization spec, RFC 6750 §3). */
export function challenge(route: RouteConfig): {
  readonly missing: Record<string, string>;
  readonly invalid: Record<string, string>;
} {
  const metadata = `resource_metadata="${resourceMetadataUrl(route)}"`;
  return {
    missing: { 'www-authenticate': `Bearer ${metadata}` },
    invalid: { 'www-authenticate': `Bearer error="invalid_token", ${metadata}` },
  };
}

/** The RFC 9728 document for a route; `scopes_supported` are the scopes its policy mentions. */
export function resourceMetadata(route: RouteConfig): Record<string, unknown> {
  const scopes = new Set<string>();
  for (const table of [route.tools, route.resources, route.prompts, route.methods]) {
    for (const required of Object.values(table)) {
      for (const scope of typeof required === 'string' ? [required] : required) scopes.add(scope);
    }
  }
  return {
    resource: route.resource,
    authorization_servers: route.authorizationServers,
    scopes_supported: [...scopes].sort(),
    bearer_methods_supported: ['header'],
  };
}
