import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { describeConfig } from '../../../src/cli/check.js';
import { loadConfigFile } from '../../../src/config/load.js';
import { configJsonSchema } from '../../../src/config/schema.js';

const ROOT = join(import.meta.dirname, '../../..');
const ENV = {
  PORTCULLIS_DEMO_UPSTREAM: 'http://127.0.0.1:3000/mcp',
  PORTCULLIS_DEMO_PORT: '8080',
  PORTCULLIS_DEMO_ADMIN_PORT: '9090',
  PORTCULLIS_DEMO_KEY_HASH: `sha256:${'ab'.repeat(32)}`,
  REDIS_URL: 'redis://redis:6379',
  SESSION_KEY: Buffer.alloc(32, 7).toString('base64'),
  AUDIT_CHAIN_KEY: 'a-chain-key-of-some-length',
  FILES_UPSTREAM_TOKEN: 'upstream-secret-token',
};

describe('config/ examples', () => {
  const files = readdirSync(join(ROOT, 'config')).filter((f) => f.endsWith('.yaml'));

  it.each(files)('%s loads and validates', (file) => {
    const { config } = loadConfigFile(join(ROOT, 'config', file), ENV);
    expect(config.routes.length).toBeGreaterThan(0);
  });

  it('portcullis check prints routes, upstreams, tools → scopes, without secret values', () => {
    const { config } = loadConfigFile(join(ROOT, 'config', 'example.yaml'), ENV);
    const text = describeConfig(config, 'example.yaml');
    expect(text).toContain('route /files/mcp');
    expect(text).toContain('upstream        http://files-mcp.tools.svc:8080/mcp');
    expect(text).toMatch(/delete_file\s+→ files:write \+ files:admin/);
    expect(text).toMatch(/files\/reindex\s+→ files:admin/);
    expect(text).toMatch(/rename_file\s+→ files:write, confirmed by the caller/);
    expect(text).toContain('warning: routes[0].upstream uses plain http off loopback');
    expect(text).not.toContain(ENV.FILES_UPSTREAM_TOKEN);
    expect(text).toContain(
      "upstream        http://tickets-mcp.tools.svc:8080/mcp (told who calls: assertion for https://tickets-mcp.tools.svc, the call's scopes)",
    );
  });

  it('check warns about two upstreams told who calls under one audience, and a token endpoint off loopback in plain http', () => {
    const { config } = loadConfigFile(join(ROOT, 'config', 'example.yaml'), ENV);
    const tickets = config.routes[1] as (typeof config.routes)[number];
    const exchanged = {
      mode: 'tokenExchange' as const,
      tokenEndpoint: 'http://idp.example.com/token',
      clientId: 'portcullis',
      clientSecret: 'a-secret-never-printed',
      audience: 'https://tickets-mcp.tools.svc',
      scopes: 'caller' as const,
      timeoutMs: 5000,
    };
    const twice = {
      ...config,
      routes: [...config.routes, { ...tickets, route: '/tickets2/mcp', upstreamIdentity: exchanged }],
    };
    const text = describeConfig(twice, 'example.yaml');
    expect(text).toContain(
      "warning: routes[2].upstreamIdentity.audience https://tickets-mcp.tools.svc is routes[1]'s too: what is sent to one is good at the other",
    );
    expect(text).toContain('warning: routes[2].upstreamIdentity.tokenEndpoint uses plain http off loopback');
    expect(text).toContain('told who calls: token exchanged at http://idp.example.com/token');
    expect(text).not.toContain('a-secret-never-printed');
  });
});

describe('check on approvals', () => {
  it('warns about approval pages or their provider in plain http off loopback, and about self-approval; prints no client secret', () => {
    const { config } = loadConfigFile(join(ROOT, 'config', 'example.yaml'), ENV);
    const text = describeConfig(
      {
        ...config,
        approvals: {
          ...config.approvals,
          publicUrl: 'http://portcullis.example.com',
          oidc: {
            issuer: 'http://idp.example.com/',
            clientId: 'c',
            clientSecret: 'approvals-secret-never-printed',
            scopes: [],
          },
          approverScopes: ['mcp:approve'],
          allowSelfApproval: true,
        },
      },
      'example.yaml',
    );
    expect(text).toContain('warning: approvals.publicUrl uses plain http off loopback');
    expect(text).toContain('warning: approvals.oidc.issuer uses plain http off loopback');
    expect(text).toContain('warning: approvals.allowSelfApproval: a requester may approve their own call');
    expect(text).not.toContain('approvals-secret-never-printed');
  });
});

describe('schema/portcullis.schema.json', () => {
  it('is the JSON Schema of the current config schema (run `npm run schema` when this fails)', () => {
    const committed = JSON.parse(
      readFileSync(join(ROOT, 'schema', 'portcullis.schema.json'), 'utf8'),
    ) as unknown;
    expect(committed).toEqual(configJsonSchema());
  });
});

describe('a federated route in portcullis check', () => {
  it('prints each server and warns about a prefix LLM providers would refuse', () => {
    const { config } = loadConfigFile(join(ROOT, 'config', 'federation.yaml'), ENV);
    const dotted = {
      ...config,
      routes: config.routes.map((route) => ({
        ...route,
        servers: { ...route.servers, other: { ...route.servers?.files, prefix: 'ot.', resources: [] } },
      })),
    } as typeof config;
    const text = describeConfig(dotted, 'federation.yaml');
    expect(text).toContain('server files    http://files-mcp.tools.svc:8080/mcp (required)');
    expect(text).toMatch(/server everything stdio "npx" "-y" "@modelcontextprotocol\/server-everything"/);
    expect(text).toContain(`warning: routes[0].servers.other.prefix "ot." contains '.'`);
    expect(text).not.toContain(ENV.FILES_UPSTREAM_TOKEN);
  });
});
