/** The 401 challenges and RFC 9728 paths of a route, built once from its configuration. */
import { describe, expect, it } from 'vitest';
import {
  challenge,
  challengeScopes,
  resourceMetadataPaths,
  resourceMetadataUrl,
  stepUpChallenge,
} from '../../../src/auth/challenge.js';
import { configSchema, type RouteConfig } from '../../../src/config/schema.js';

function route(extra: Record<string, unknown> = {}): RouteConfig {
  const config = configSchema.parse({
    identities: { apiKeys: [{ id: 'k', hash: `sha256:${'0'.repeat(64)}` }] },
    routes: [
      {
        route: '/files/mcp',
        resource: 'https://mcp.example.com/public/files',
        upstream: 'http://127.0.0.1:9/mcp',
        authentication: { methods: ['apiKey'] },
        tools: {
          read_file: 'files:read',
          write_file: ['files:write'],
          purge: ['files:write', 'files:admin'],
        },
        resources: { 'file:///public/**': 'files:read' },
        prompts: { summarize: 'notes:prompt' },
        methods: { 'logging/setLevel': 'ops:log' },
        ...extra,
      },
    ],
  });
  return config.routes[0] as RouteConfig;
}

const WITH_AS = { authorizationServers: ['https://idp.example.com/'] };
const METADATA = 'https://mcp.example.com/.well-known/oauth-protected-resource/public/files';

describe('challengeScopes', () => {
  it('defaults to every scope a single-scope tools, resources or prompts entry names, sorted', () => {
    expect(challengeScopes(route())).toEqual(['files:read', 'files:write', 'notes:prompt']);
  });

  it('is challengeScopes when written, even empty', () => {
    expect(challengeScopes(route({ challengeScopes: ['b', 'a'] }))).toEqual(['b', 'a']);
    expect(challengeScopes(route({ challengeScopes: [] }))).toEqual([]);
  });
});

describe('challenge', () => {
  it('names error, scope and resource_metadata in that order on a route with an authorization server', () => {
    expect(challenge(route(WITH_AS))).toEqual({
      missing: {
        'www-authenticate': `Bearer scope="files:read files:write notes:prompt", resource_metadata="${METADATA}"`,
      },
      invalid: {
        'www-authenticate': `Bearer error="invalid_token", scope="files:read files:write notes:prompt", resource_metadata="${METADATA}"`,
      },
    });
  });

  it('has no resource_metadata, and serves no metadata, without an authorization server', () => {
    const plain = route();
    expect(resourceMetadataUrl(plain)).toBeUndefined();
    expect(resourceMetadataPaths(plain)).toEqual([]);
    expect(challenge(plain).missing).toEqual({
      'www-authenticate': 'Bearer scope="files:read files:write notes:prompt"',
    });
  });

  it('is a bare Bearer challenge with neither scopes nor an authorization server', () => {
    expect(challenge(route({ challengeScopes: [] }))).toEqual({
      missing: { 'www-authenticate': 'Bearer' },
      invalid: { 'www-authenticate': 'Bearer error="invalid_token"' },
    });
    expect(resourceMetadataPaths(route(WITH_AS))).toEqual([
      '/.well-known/oauth-protected-resource/public/files',
      '/.well-known/oauth-protected-resource/files/mcp',
    ]);
  });
});

describe('stepUpChallenge', () => {
  it('names the needed scopes first, then the held ones sorted, each once', () => {
    expect(stepUpChallenge(['b:write', 'a:write'], new Set(['z:read', 'a:write', 'c:read']), METADATA)).toBe(
      `Bearer error="insufficient_scope", scope="b:write a:write c:read z:read", resource_metadata="${METADATA}"`,
    );
  });
});
