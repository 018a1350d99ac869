/** `portcullis check`'s report: each route's challenge scopes and the OAuth warnings. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { commandProblems, describeConfig } from '../../../src/cli/check.js';
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

describe('check on stdio routes', () => {
  const stdio = (upstream: string) =>
    parseConfig(
      `${JWT}routes:
  - route: /s/mcp
    resource: https://mcp.example.com/s/mcp
    authorizationServers: [https://idp.example.com/]
    upstream: ${upstream}
    authentication: { methods: [jwt] }
`,
      { env: {} },
    );

  it('shows the argv, the isolation and whose user runs it', () => {
    const text = describeConfig(
      stdio('{ command: [node, server.js, "--dir=/a b"], processes: shared }'),
      'p.yaml',
      {},
    );
    expect(text).toContain(
      'upstream        stdio "node" "server.js" "--dir=/a b" (shared, at most 16, as the gateway user)',
    );
  });

  it('warns, naming the variables and never their values, when a server runs as the gateway’s user beside secrets', () => {
    const env = { SESSION_KEY: 'value-never-printed', GITHUB_TOKEN: 'also-hidden', HOME: '/root' };
    const text = describeConfig(stdio('{ command: [node] }'), 'p.yaml', env);
    expect(text).toContain(
      "warning: routes[0] runs a stdio server as the gateway's own user while the gateway's environment holds GITHUB_TOKEN, SESSION_KEY",
    );
    expect(text).not.toContain('value-never-printed');
    expect(describeConfig(stdio('{ command: [node], user: 65534 }'), 'p.yaml', env)).not.toContain(
      'own user',
    );
    expect(describeConfig(stdio('{ command: [node] }'), 'p.yaml', { HOME: '/root' })).not.toContain(
      'own user',
    );
  });

  it('reports a command that is no executable, and an unknown user, as errors', () => {
    expect(commandProblems(stdio('{ command: [no-such-program-anywhere] }'))).toEqual([
      `routes[0].upstream.command: "no-such-program-anywhere" is not an executable file on the child's PATH`,
    ]);
    const plainFile = join(mkdtempSync(join(tmpdir(), 'portcullis-check-')), 'notes.txt');
    writeFileSync(plainFile, 'not a program', { mode: 0o644 });
    expect(commandProblems(stdio(`{ command: [${JSON.stringify(plainFile)}] }`))).toEqual([
      `routes[0].upstream.command: ${JSON.stringify(plainFile)} is not an executable file`,
    ]);
    expect(
      commandProblems(stdio(`{ command: [${JSON.stringify(process.execPath)}], user: no-such-user-here }`)),
    ).toEqual(['routes[0].upstream: unknown user "no-such-user-here"']);
    expect(commandProblems(stdio(`{ command: [${JSON.stringify(process.execPath)}] }`))).toEqual([]);
  });
});
