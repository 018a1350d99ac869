import { entryScopes, type RouteConfig } from '../config/schema.js';

const WELL_KNOWN = '/.well-known/oauth-protected-resource';

/**
 * RFC 9728 §3.1: the metadata of resource `https://host/files/mcp` lives at
 * `https://host/.well-known/oauth-protected-resource/files/mcp`. `undefined` when the route names
 * no authorization server: it then has no metadata, and its challenges point nowhere — a
 * `resource_metadata` there sends clients (mcp-remote) into OAuth discovery and dynamic client
 * registration against a server that does not exist.
 */
export function resourceMetadataUrl(route: RouteConfig): string | undefined {
  if (route.authorizationServers.length === 0) return undefined;
  const resource = new URL(route.resource);
  const path = resource.pathname === '/' ? '' : resource.pathname;
  return `${resource.origin}${WELL_KNOWN}${path}`;
}

/** The paths on which the gateway serves a route's metadata: by its public resource path and by its route. */
export function resourceMetadataPaths(route: RouteConfig): string[] {
  const url = resourceMetadataUrl(route);
  if (url === undefined) return [];
  const resourcePath = new URL(url).pathname;
  const routePath = `${WELL_KNOWN}${route.route}`;
  return resourcePath === routePath ? [routePath] : [resourcePath, routePath];
}

/**
 * The scopes a route's 401 challenge names: `challengeScopes` if written, else every scope that a
 * single-scope `tools`, `resources` or `prompts` entry names (sorted). An OAuth client asks for
 * what the challenge names — without it, for every scope the metadata lists. Entries needing
 * several scopes together (admin operations, typically) are left to a step-up.
 */
export function challengeScopes(route: RouteConfig): readonly string[] {
  if (route.challengeScopes !== undefined) return route.challengeScopes;
  const scopes = new Set<string>();
  for (const table of [route.tools, route.resources, route.prompts]) {
    for (const entry of Object.values(table)) {
      const required = entryScopes(entry);
      if (required.length === 1) scopes.add(required[0] as string);
    }
  }
  return [...scopes].sort();
}

/**
 * `WWW-Authenticate` for the route's 401s, built once (MCP authorization spec, RFC 6750 §3):
 * `error` (when a credential was refused), then `scope`, then `resource_metadata`, each only where
 * it has a value; `Bearer` alone when none has.
 */
export function challenge(route: RouteConfig): {
  readonly missing: Record<string, string>;
  readonly invalid: Record<string, string>;
} {
  const scopes = challengeScopes(route);
  const metadata = resourceMetadataUrl(route);
  const params = [
    ...(scopes.length > 0 ? [`scope="${scopes.join(' ')}"`] : []),
    ...(metadata === undefined ? [] : [`resource_metadata="${metadata}"`]),
  ];
  return {
    missing: { 'www-authenticate': params.length > 0 ? `Bearer ${params.join(', ')}` : 'Bearer' },
    invalid: { 'www-authenticate': ['Bearer error="invalid_token"', ...params].join(', ') },
  };
}

/** RFC 6750 scope-token characters: what may stand inside the quoted `scope` value. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
/** Scopes a token holds that a step-up challenge repeats, at most (a header must stay small). */
const MAX_HELD_SCOPES = 64;
const MAX_HELD_SCOPE_LENGTH = 128;

/**
 * The step-up challenge for a 403 `insufficient_scope` (RFC 6750 §3.1): the scopes the call needs
 * together with those the caller's token already holds. A client that replaces its scope set with
 * the challenge's (the official SDKs do when their token response omits `scope`) would otherwise
 * lose the scopes it had, and its next ordinary call would need another round. The held scopes
 * come from the token: only RFC 6750 scope tokens are repeated (a quote or a control character
 * would break the header), bounded in number and length.
 */
export function stepUpChallenge(
  required: readonly string[],
  held: ReadonlySet<string>,
  resourceMetadata: string | undefined,
): string {
  const scopes = new Set(required);
  let repeated = 0;
  for (const scope of [...held].sort()) {
    if (repeated >= MAX_HELD_SCOPES) break;
    if (scope.length > MAX_HELD_SCOPE_LENGTH || scopes.has(scope) || !SCOPE_TOKEN.test(scope)) continue;
    scopes.add(scope);
    repeated++;
  }
  const metadata = resourceMetadata === undefined ? '' : `, resource_metadata="${resourceMetadata}"`;
  return `Bearer error="insufficient_scope", scope="${[...scopes].join(' ')}"${metadata}`;
}

/** The RFC 9728 document for a route; `scopes_supported` are the scopes its policy mentions. */
export function resourceMetadata(route: RouteConfig): Record<string, unknown> {
  const scopes = new Set<string>();
  for (const table of [route.tools, route.resources, route.prompts, route.methods]) {
    for (const entry of Object.values(table)) for (const scope of entryScopes(entry)) scopes.add(scope);
  }
  return {
    resource: route.resource,
    authorization_servers: route.authorizationServers,
    scopes_supported: [...scopes].sort(),
    bearer_methods_supported: ['header'],
  };
}
