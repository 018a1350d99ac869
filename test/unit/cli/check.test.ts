/** `portcullis check`'s report: each route's challenge scopes and the OAuth warnings. */
import { describe, expect, it } from 'vitest';
import { describeConfig } from '../../../src/cli/check.js';
import { parseConfig } from '../../../src/config/load.js';

const JWT = `identities:
  jwt:
    - { issuer: https://idp.example.com/, jwksUri: https://idp.example.com/jwks.json }
`;

function report(routes: string): string {
  return describeConfig(parseConfig(`${JWT}routes:\n${routes}`, { env: {} }), 'p.yaml');
}

describe('check', () => {
  it('prints the default challenge scopes: every scope a single-scope tool, resource or prompt entry names', () => {
    const text = report(`  - route: /files/mcp
    resource: https://mcp.example.com/files/mcp
    upstream: https://files.internal/mcp
    authentication: { methods: [jwt] }
    authorizationServers: [https://idp.example.com/]
    tools: { read_file: files:read, write_file: [files:write], delete_file: [files:write, files:admin] }
    resources: { "file:///public/**": files:read }
    prompts: { summarize: notes:prompt }
    methods: { "logging/setLevel": ops:log }
`);
    expect(text).toContain(
      'challenge scope files:read files:write notes:prompt (default: single-scope entries)',
    );
    expect(text).toContain('authorization   https://idp.example.com/');
    expect(text).not.toContain('names no authorizationServers');
  });

  it('prints challengeScopes as written, and (none) for an empty list', () => {
    const text = report(`  - route: /a
    resource: https://mcp.example.com/a
    upstream: https://a.internal/mcp
    authentication: { methods: [jwt] }
    authorizationServers: [https://idp.example.com/]
    challengeScopes: [a:read]
    tools: { x: b:read }
  - route: /b
    resource: https://mcp.example.com/b
    upstream: https://b.internal/mcp
    authentication: { methods: [jwt] }
    authorizationServers: [https://idp.example.com/]
    challengeScopes: []
    tools: { x: b:read }
`);
    expect(text).toMatch(/route \/a[\s\S]*challenge scope a:read\n/);
    expect(text).toMatch(/route \/b[\s\S]*challenge scope \(none\)\n/);
  });

  it('warns about a route that accepts JWTs without authorizationServers, and only about that one', () => {
    const text = report(`  - route: /jwt
    resource: https://mcp.example.com/jwt
    upstream: https://a.internal/mcp
    authentication: { methods: [jwt] }
  - route: /oauth
    resource: https://mcp.example.com/oauth
    upstream: https://a.internal/mcp
    authentication: { methods: [jwt] }
    authorizationServers: [https://idp.example.com/]
`);
    const warnings = text.split('\n').filter((line) => line.includes('authorizationServers'));
    expect(warnings).toEqual([
      'warning: routes[0] accepts JWTs but names no authorizationServers: OAuth clients cannot discover where to get a token',
    ]);
    expect(text).toContain('authorization   none (no OAuth metadata, no resource_metadata)');
  });
});
