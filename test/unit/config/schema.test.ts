/** The policy schema itself (no YAML, no environment): defaults, strictness and the cross-field rules. */
import { describe, expect, it } from 'vitest';
import { configJsonSchema, configSchema, rateSpec } from '../../../src/config/schema.js';

const ROUTE = {
  route: '/mcp',
  resource: 'https://mcp.example.com/mcp',
  upstream: 'http://127.0.0.1:3000/mcp',
  authentication: { methods: ['anonymous'] },
};
const BASE = { identities: { anonymous: {} }, routes: [ROUTE] };

/** `path: message` of every issue the schema reports for `input` (empty when it accepts it). */
function issuesOf(input: unknown): string[] {
  const result = configSchema.safeParse(input);
  return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

const withRoute = (extra: Record<string, unknown>, top: Record<string, unknown> = {}) => ({
  ...BASE,
  ...top,
  routes: [{ ...ROUTE, ...extra }],
});

describe('configSchema defaults', () => {
  it('fills every default of a minimal policy, failing closed', () => {
    const config = configSchema.parse(BASE);
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8443 });
    expect(config.admin).toEqual({ host: '0.0.0.0', port: 9090 });
    expect(config.limits).toMatchObject({
      maxBodyBytes: 4_194_304,
      maxJsonDepth: 64,
      maxConcurrentTotal: 4096,
    });
    expect(config.audit).toMatchObject({ destination: 'stdout', arguments: 'omit' });
    expect(config.authFailures).toEqual({ limit: '20/minute' });
    const route = config.routes[0];
    expect(route).toMatchObject({
      default: 'deny',
      mode: 'enforce',
      authentication: { methods: ['anonymous'], require: 'any' },
      upstreamTimeouts: { connectMs: 2_000, headersMs: 30_000, idleMs: 300_000 },
      forwardHeaders: [],
      allowedOrigins: [],
      authorizationServers: [],
    });
    expect(route?.rateLimits).toBeUndefined();
  });
});

describe('configSchema strictness', () => {
  it.each([
    ['at the top', { ...BASE, listne: { port: 1 } }, ''],
    ['in a route', withRoute({ defualt: 'allow' }), 'routes.0'],
    ['in limits', { ...BASE, limits: { maxBodyByte: 1 } }, 'limits'],
    [
      'in an API key',
      { ...BASE, identities: { apiKeys: [{ id: 'a', hash: `sha256:${'0'.repeat(64)}`, scope: [] }] } },
      'identities.apiKeys.0',
    ],
  ])('refuses an unknown key %s', (_where, input, path) => {
    const issues = issuesOf(input);
    expect(issues.length).toBeGreaterThan(0);
    expect(issues.some((issue) => issue.startsWith(`${path}: `))).toBe(true);
  });

  it('refuses a policy without routes', () => {
    expect(issuesOf({ identities: { anonymous: {} }, routes: [] })).toEqual([
      'routes: must list at least one route',
    ]);
  });
});

describe('configSchema cross-field rules', () => {
  it.each<[string, unknown, string]>([
    [
      'rate limits without a fail mode',
      withRoute({ rateLimits: [{ per: 'identity', limit: '1/second' }] }),
      'routes.0.failMode: is required when rateLimits is set',
    ],
    [
      'anonymous under require: all',
      withRoute({ authentication: { methods: ['anonymous'], require: 'all' } }),
      'routes.0.authentication.methods: anonymous cannot be combined with require: all',
    ],
    [
      'a method listed twice',
      withRoute({ authentication: { methods: ['anonymous', 'anonymous'] } }),
      'routes.0.authentication.methods: lists a method twice',
    ],
    [
      'a method without its identity source',
      withRoute({ authentication: { methods: ['apiKey'] } }),
      'routes.0.authentication.methods.0: apiKey needs identities.apiKeys',
    ],
    [
      'mtls without a client CA',
      withRoute({ authentication: { methods: ['mtls'] } }),
      'routes.0.authentication.methods.0: mtls needs tls.clientCA',
    ],
    [
      'a client certificate mode without a CA',
      { ...BASE, tls: { cert: 'c.pem', key: 'k.pem', clientCertificate: 'required' } },
      'tls.clientCertificate: needs tls.clientCA',
    ],
    [
      'hashed arguments without a chain key',
      { ...BASE, audit: { arguments: 'hash' } },
      'audit.arguments: hash needs audit.chainKey (a bare SHA-256 of a short value is reversible)',
    ],
    [
      'two sources for Redis',
      { ...BASE, redis: { url: 'redis://r:6379', cluster: { nodes: ['r:6379'] } } },
      'redis: set exactly one of url, sentinel, cluster',
    ],
    [
      'a JWT issuer with both a JWKS URL and keys',
      {
        ...BASE,
        identities: {
          anonymous: {},
          jwt: [{ issuer: 'https://idp.example.com/', jwksUri: 'https://idp.example.com/jwks', keys: [{}] }],
        },
      },
      'identities.jwt.0: set exactly one of jwksUri, keys',
    ],
  ])('refuses %s', (_what, input, expected) => {
    expect(issuesOf(input).some((issue) => issue.startsWith(expected))).toBe(true);
  });

  it('refuses a route path used twice, pointing at the first', () => {
    expect(issuesOf({ ...BASE, routes: [ROUTE, ROUTE] })).toEqual([
      'routes.1.route: duplicates routes[0].route',
    ]);
  });

  it('refuses two mTLS identities of one name', () => {
    const mtls = [
      { name: 'a', match: { cn: 'x' } },
      { name: 'a', match: { dns: 'y' } },
    ];
    expect(issuesOf({ ...BASE, identities: { anonymous: {}, mtls } })).toEqual([
      'identities.mtls.1.name: is not unique',
    ]);
  });

  it.each(['Authorization', 'x-api-key', 'Cookie', 'X-Forwarded-For', 'transfer-encoding', 'Mcp-Session-Id'])(
    'never lets a route forward %s from clients',
    (name) => {
      expect(issuesOf(withRoute({ forwardHeaders: [name] }))).toEqual([
        'routes.0.forwardHeaders.0: is a credential, hop-by-hop or gateway-owned header: never forwarded from clients',
      ]);
    },
  );

  it('accepts a header a route may forward', () => {
    expect(issuesOf(withRoute({ forwardHeaders: ['X-Tenant'] }))).toEqual([]);
  });
});

describe('rateSpec', () => {
  it.each(['1/second', '600/minute', '10000/hour'])('accepts %s', (spec) => {
    expect(rateSpec.safeParse(spec).success).toBe(true);
  });

  it.each(['0/second', '01/minute', '5/day', '5 / minute', '-1/hour', '1.5/second', '/minute'])(
    'refuses %s',
    (spec) => {
      expect(rateSpec.safeParse(spec).success).toBe(false);
    },
  );
});

describe('configJsonSchema', () => {
  it('publishes the schema with its id, and unknown keys refused as in the validator', () => {
    const schema = configJsonSchema() as {
      $id: string;
      additionalProperties?: unknown;
      required?: string[];
      properties: Record<string, unknown>;
    };
    expect(schema.$id).toBe('https://portcullis.dev/schema/portcullis.schema.json');
    expect(schema.additionalProperties).toBe(false);
    expect(schema.required).toEqual(['routes']);
    expect(Object.keys(schema.properties)).toEqual(Object.keys(configSchema.shape));
  });
});

describe('approvals (confirm: approver)', () => {
  const approverTool = { tools: { drop: { scopes: 'db:admin', confirm: 'approver' } } };
  const approvals = {
    publicUrl: 'https://portcullis.example.com',
    oidc: { issuer: 'https://idp.example.com/', clientId: 'portcullis-approvals' },
    approverScopes: ['mcp:approve'],
  };

  it('loads with the public URL, the provider and who may approve', () => {
    expect(issuesOf(withRoute(approverTool, { approvals }))).toEqual([]);
  });

  it('names what an approver route needs: the public URL, the provider, who may approve', () => {
    expect(issuesOf(withRoute(approverTool))).toEqual([
      'approvals.publicUrl: confirm: approver needs it',
      'approvals.oidc: confirm: approver needs it',
      'approvals.approverScopes: confirm: approver needs approverScopes or approverClaim (who may approve)',
    ]);
  });

  it('no route may sit under /portcullis/, where the approval pages are', () => {
    expect(issuesOf({ ...withRoute({ route: '/portcullis/mcp' }), approvals })).toEqual([
      'routes.0.route: is under /portcullis/, where the approval pages are served',
    ]);
    expect(issuesOf(withRoute({ route: '/portcullis/mcp' }))).toEqual([]);
  });

  it('approverScopes and approverClaim are exclusive; a claim names exactly one', () => {
    expect(
      issuesOf({ ...BASE, approvals: { ...approvals, approverClaim: { groups: 'mcp-approvers' } } }),
    ).toEqual(['approvals: approverScopes and approverClaim are exclusive']);
    expect(issuesOf({ ...BASE, approvals: { approverClaim: { a: 'x', b: 'y' } } })).toEqual([
      'approvals.approverClaim: must name exactly one claim',
    ]);
  });

  it('defaults: 900 s pending, no self-approval, 10 new approvals a minute per identity', () => {
    expect(configSchema.parse(BASE).approvals).toEqual({
      confirmTimeoutSec: 120,
      ttlSec: 900,
      allowSelfApproval: false,
      owners: {},
      createLimit: '10/minute',
    });
  });
});
