import { z } from 'zod';
import { compileCondition, isConditionProblem } from '../policy/conditions.js';
import { resourcePatternProblem } from '../policy/uri.js';
import { serversProblems } from '../upstream/federation/servers.js';

/**
 * The policy file's one schema: it is the TypeScript type (`Config`), the validator, and the
 * published JSON Schema (`schema/portcullis.schema.json`). Every object is strict: a typo in a
 * key must not silently weaken security. Durations are integers with their unit in the name.
 */

const httpUrl = z
  .string()
  .refine((value) => /^https?:\/\/[^\s/]/.test(value) && URL.canParse(value), 'must be an http(s) URL');

const filePath = z.string().min(1, 'must be a file path');
const positiveMs = z.number().int('must be an integer').positive('must be positive');
const port = z.number().int('must be an integer').min(0).max(65535);

/** `N/second|minute|hour`, N ≥ 1. */
export const rateSpec = z
  .string()
  .regex(/^[1-9][0-9]*\/(second|minute|hour)$/, 'must look like 600/minute (N/second|minute|hour)');

const scopeName = z
  .string()
  .min(1)
  .regex(/^[\x21\x23-\x5B\x5D-\x7E]+$/, 'must be an RFC 6750 scope token');
/** One scope, or a list of scopes all of which are required. */
const scopeRequirement = z.union([scopeName, z.array(scopeName).min(1)]);
const nameToScopes = z.record(z.string().min(1), scopeRequirement);
/**
 * A `tools` entry: its scopes, or `{ scopes, when }` — the scopes plus a CEL rule over the call's
 * arguments, the identity and the route (`policy/conditions.ts`), compiled at load.
 */
const toolEntry = z.union([
  scopeRequirement,
  z.strictObject({
    scopes: scopeRequirement,
    when: z.string().min(1).optional(),
    /**
     * A human says yes to each call, with these arguments, before it is forwarded: `caller` — the
     * calling user, through their own MCP client; `approver` — another person, on the gateway's
     * approval page (DESIGN.md "human confirmation").
     */
    confirm: z.enum(['caller', 'approver']).optional(),
  }),
]);
export type ToolEntry = z.infer<typeof toolEntry>;

/** The scopes a policy entry requires, whatever its form. */
export function entryScopes(
  entry: string | readonly string[] | { readonly scopes: string | readonly string[] },
): readonly string[] {
  const scopes =
    typeof entry === 'object' && !Array.isArray(entry)
      ? (entry as { scopes: string | readonly string[] }).scopes
      : entry;
  return typeof scopes === 'string' ? [scopes] : (scopes as readonly string[]);
}

const cidr = z.union([z.cidrv4(), z.cidrv6(), z.ipv4(), z.ipv6()], {
  error: 'must be an IP address or CIDR range',
});

const listenSchema = z.strictObject({
  /** Address to bind. Default `0.0.0.0`. */
  host: z.string().min(1).default('0.0.0.0'),
  /** Port to bind; 0 picks a free one. */
  port,
});

const tlsSchema = z.strictObject({
  /** PEM certificate chain served to clients. */
  cert: filePath,
  /** PEM private key. */
  key: filePath,
  /** PEM CA bundle; setting it turns on client certificates. */
  clientCA: filePath.optional(),
  /** `required` refuses the handshake without a valid certificate; `optional` lets token clients in. */
  clientCertificate: z.enum(['required', 'optional']).optional(),
});

const limitsSchema = z.strictObject({
  /** Largest request body read, in bytes. Default 4 MiB. */
  maxBodyBytes: z.number().int().positive().default(4_194_304),
  /** Time allowed to receive request headers. Default 10 s. */
  headersTimeoutMs: positiveMs.default(10_000),
  /** Time allowed to receive a whole request (headers and body). Default 30 s. */
  requestTimeoutMs: positiveMs.default(30_000),
  /** Idle time before a client keep-alive connection is closed. Default 5 s. */
  keepAliveTimeoutMs: positiveMs.default(5_000),
  /** On SIGTERM, time given to in-flight requests and streams before they are closed. Default 30 s. */
  drainTimeoutMs: z.number().int().nonnegative().default(30_000),
  /** In-flight requests per identity (per replica). Default 64. */
  maxConcurrentPerIdentity: z.number().int().positive().default(64),
  /** Open SSE streams per identity (per replica). Default 16. */
  maxStreamsPerIdentity: z.number().int().positive().default(16),
  /** In-flight requests in total (per replica). Default 4096. */
  maxConcurrentTotal: z.number().int().positive().default(4096),
  /** Largest upstream answer relayed, in bytes. Default 64 MiB. */
  maxResponseBytes: z.number().int().positive().default(67_108_864),
  /**
   * Deepest nesting of arrays and objects in a request body; deeper → 400 `too_deep`, decided by a
   * linear scan before anything recursive reads the body. Default 64 (MCP messages nest a handful
   * of levels; tool arguments rarely a dozen). At most 1000: recursive code downstream (the
   * upstream's decoder, JSON.stringify) must stay far from its stack limit.
   */
  maxJsonDepth: z.number().int().min(8).max(1000).default(64),
});

const redisSchema = z
  .strictObject({
    /** `redis://` or `rediss://` URL. */
    url: z
      .string()
      .refine((v) => /^rediss?:\/\//.test(v) && URL.canParse(v), 'must be a redis:// or rediss:// URL')
      .optional(),
    sentinel: z
      .strictObject({ name: z.string().min(1), nodes: z.array(z.string().min(1)).min(1) })
      .optional(),
    cluster: z.strictObject({ nodes: z.array(z.string().min(1)).min(1) }).optional(),
    /** PEM CA for `rediss://`. */
    tlsCA: filePath.optional(),
    /** A Redis answer slower than this counts as Redis being down. Default 50 ms. */
    commandTimeoutMs: positiveMs.default(50),
  })
  .refine(
    (r) => [r.url, r.sentinel, r.cluster].filter((v) => v !== undefined).length === 1,
    'set exactly one of url, sentinel, cluster',
  );

const base64Key32 = z
  .string()
  .refine((v) => /^[A-Za-z0-9+/]{43}=$/.test(v), 'must be a base64-encoded 32-byte key');

const sessionsSchema = z.strictObject({
  /** Base64 32-byte AES keys: the first seals, all open (rotation). */
  keys: z.array(base64Key32).min(1).optional(),
  /** Sessions older than this are refused. Default 1 day. */
  maxAgeSec: z.number().int().positive().default(86_400),
});

const auditSchema = z.strictObject({
  /** `stdout`, a file path (appended), or `none` (no audit: benchmarks only). Default `stdout`. */
  destination: z.string().min(1).default('stdout'),
  /** How tool arguments appear in audit records. Default `omit`. */
  arguments: z.enum(['omit', 'hash', 'redact', 'full']).default('omit'),
  /** Keys whose values `redact` masks, at any depth. */
  redactKeys: z.array(z.string().min(1)).default(['password', 'token', 'secret', 'authorization', 'apiKey']),
  /** HMAC key for the record chain and argument hashes. */
  chainKey: z.string().min(16, 'must be at least 16 characters').optional(),
});

const logSchema = z.strictObject({
  level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** One log line per request. Default false. */
  requests: z.boolean().default(false),
});

const tracingSchema = z.strictObject({
  /** OTLP/HTTP endpoint; tracing is off without it. */
  otlpEndpoint: httpUrl,
  /** Share of traces sampled, 0–1. Default 1. */
  sampleRatio: z.number().min(0).max(1).default(1),
});

/**
 * Who the gateway is when it vouches for a caller to an upstream (`upstreamIdentity: { mode:
 * assertion }`): the issuer of its assertions and the keys that sign them.
 */
const gatewayIdentitySchema = z.strictObject({
  /** `iss` of every assertion, and `act.sub`: the gateway as the party acting for the caller. */
  issuer: httpUrl,
  /**
   * PEM private keys (EC P-256 → ES256, Ed25519 → EdDSA): the first signs, all are published in
   * the JWKS (rotation: add the next key second, let upstreams fetch it, then move it first).
   */
  signingKeys: z.array(filePath).min(1),
  /** How long an assertion is valid. Default and maximum 300 s. */
  assertionLifetimeSec: z.number().int().min(30).max(300).default(300),
});
export type GatewayIdentityConfig = z.infer<typeof gatewayIdentitySchema>;

/**
 * How an upstream learns who is calling (DESIGN.md "Identity to the upstream"), in
 * `Authorization: Bearer`. `assertion`: a short-lived JWT the gateway signs. `tokenExchange`: the
 * caller's JWT exchanged (RFC 8693) at an authorization server for a token meant for the upstream.
 * The caller's own credential is never forwarded, in any mode.
 */
const upstreamIdentitySchema = z.discriminatedUnion('mode', [
  z.strictObject({
    mode: z.literal('assertion'),
    /** `aud` of the assertion: the upstream's own identifier, which it checks. */
    audience: z.string().min(1),
    /** `scope`: every scope the caller holds (`caller`, default), or only those the call needed (`call`). */
    scopes: z.enum(['caller', 'call']).default('caller'),
  }),
  z
    .strictObject({
      mode: z.literal('tokenExchange'),
      /** The authorization server's token endpoint. */
      tokenEndpoint: httpUrl,
      /** The authorization server's issuer identifier: the `aud` of a `private_key_jwt` client assertion. Default: `tokenEndpoint`. */
      issuer: httpUrl.optional(),
      clientId: z.string().min(1),
      /** Client authentication by secret (`client_secret_basic`)… */
      clientSecret: z.string().min(1).optional(),
      /** …or by `private_key_jwt`: a PEM private key (EC P-256 → ES256, Ed25519 → EdDSA, RSA → RS256). */
      clientKey: filePath.optional(),
      /** `audience` of the exchange: the upstream the token is for. */
      audience: z.string().min(1),
      /** `resource` of the exchange (RFC 8707), when the authorization server wants one. */
      resource: httpUrl.optional(),
      /** `scope` asked for: every scope the caller holds (`caller`, default) or those the call needed (`call`). */
      scopes: z.enum(['caller', 'call']).default('caller'),
      /** How long the token endpoint may take; slower is 503 `idp_unavailable`. Default 5 s. */
      timeoutMs: positiveMs.default(5_000),
    })
    .refine(
      (spec) => (spec.clientSecret === undefined) !== (spec.clientKey === undefined),
      'needs exactly one of clientSecret and clientKey',
    ),
]);
export type UpstreamIdentityConfig = z.infer<typeof upstreamIdentitySchema>;

/** Human confirmation of `confirm` tools: the caller's (`confirm: caller`), or an approver's. */
const approvalsSchema = z
  .strictObject({
    /** How long a caller has to confirm a call: its `requestState` expires then. Default 120 s. */
    confirmTimeoutSec: z.number().int().min(5).max(3_600).default(120),
    /**
     * `confirm: approver`: the gateway's public base URL (where people reach its main listener).
     * Approval and status pages are served under `<publicUrl>/portcullis/`.
     */
    publicUrl: httpUrl.optional(),
    /** The OpenID provider approvers and requesters log in with (code flow + PKCE). */
    oidc: z
      .strictObject({
        issuer: httpUrl,
        clientId: z.string().min(1),
        /** Omitted: a public client (PKCE only). */
        clientSecret: z.string().min(1).optional(),
        /** More scopes asked at login besides `openid` (the approver scopes are asked too). */
        scopes: z.array(scopeName).default([]),
      })
      .optional(),
    /** An approver's login must grant all of these scopes… */
    approverScopes: z.array(scopeName).min(1).optional(),
    /** …or carry this claim with this value (an array claim containing it counts). */
    approverClaim: z
      .record(z.string().min(1), z.string().min(1))
      .refine((claim) => Object.keys(claim).length === 1, 'must name exactly one claim')
      .optional(),
    /** How long an approval may stay pending, and an approved one wait for its call. Default 900 s. */
    ttlSec: z.number().int().min(60).max(86_400).default(900),
    /** Whether a requester may approve their own call. Default false. */
    allowSelfApproval: z.boolean().default(false),
    /**
     * Requesters that are not JWT callers of `oidc.issuer`: identity key (`apiKey:ci-bot`,
     * `mtls:ops`) → the subject at `oidc.issuer` who owns them (self-approval, the status page).
     */
    owners: z.record(z.string().min(1), z.string().min(1)).default({}),
    /** Where approvers are told of a pending approval: a JSON POST with the link. */
    notify: z.strictObject({ webhook: httpUrl, timeoutMs: positiveMs.default(5_000) }).optional(),
    /** Pending approvals one identity may create. Default 10/minute. */
    createLimit: rateSpec.default('10/minute'),
  })
  .refine(
    (approvals) => approvals.approverScopes === undefined || approvals.approverClaim === undefined,
    'approverScopes and approverClaim are exclusive',
  );

const apiKeySchema = z.strictObject({
  /** Stable id, shown in audit records; two entries may share it during a rotation. */
  id: z.string().min(1),
  /** `sha256:` + 64 lowercase hex digits of the key. The key itself is never configured. */
  hash: z.string().regex(/^sha256:[0-9a-f]{64}$/, 'must be sha256: followed by 64 lowercase hex digits'),
  scopes: z.array(scopeName).default([]),
  /** RFC 3339 time or date (00:00Z) after which the key is refused. */
  expires: z
    .union([z.string(), z.date()])
    .transform((v) => (v instanceof Date ? v.toISOString() : v))
    .refine(
      (v) =>
        /^\d{4}-\d{2}-\d{2}([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2}))?$/.test(v) &&
        !Number.isNaN(Date.parse(v)),
      'must be an RFC 3339 date or date-time',
    )
    .optional(),
});

const asymmetricAlg = z.enum([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
]);

const jwtIssuerSchema = z
  .strictObject({
    issuer: httpUrl,
    jwksUri: httpUrl.optional(),
    /** Static public JWKs instead of a JWKS endpoint. */
    keys: z.array(z.record(z.string(), z.unknown())).min(1).optional(),
    /** Allowed algorithms: asymmetric only. Default RS256, ES256. */
    algorithms: z.array(asymmetricAlg).min(1).default(['RS256', 'ES256']),
    clockToleranceSec: z.number().int().nonnegative().default(30),
    /** Longest accepted `exp - iat`; no maximum unless set. */
    maxTokenLifetimeSec: z.number().int().positive().optional(),
    /** Minimum time between JWKS refetches on an unknown `kid`. Default 30 s. */
    jwksCooldownMs: z.number().int().nonnegative().default(30_000),
    /**
     * Longest time a fetched JWKS is trusted before it is read again, in seconds. Default 300. It
     * bounds how long a key removed from the issuer's JWKS (and every token it signed, cached or
     * not) keeps verifying — and how long a JWKS outage goes unnoticed: past it, tokens of this
     * issuer are refused 503 `idp_unavailable` until the JWKS answers again.
     */
    jwksCacheMaxAgeSec: z.number().int().positive().default(300),
    /** Claim holding scopes. Default: `scope`, then `scp`. */
    scopeClaim: z.string().min(1).optional(),
    subjectClaim: z.string().min(1).default('sub'),
  })
  .refine((j) => (j.jwksUri === undefined) !== (j.keys === undefined), 'set exactly one of jwksUri, keys');

const mtlsIdentitySchema = z.strictObject({
  name: z.string().min(1),
  match: z
    .strictObject({
      cn: z.string().min(1).optional(),
      dns: z.string().min(1).optional(),
      uri: z.string().min(1).optional(),
    })
    .refine(
      (m) => Object.values(m).filter((v) => v !== undefined).length === 1,
      'set exactly one of cn, dns, uri',
    ),
  scopes: z.array(scopeName).default([]),
});

const identitiesSchema = z.strictObject({
  apiKeys: z.array(apiKeySchema).default([]),
  jwt: z.array(jwtIssuerSchema).default([]),
  mtls: z.array(mtlsIdentitySchema).default([]),
  /** Present → the `anonymous` method may be used by routes that list it. */
  anonymous: z.strictObject({ scopes: z.array(scopeName).default([]) }).optional(),
});

export const authMethod = z.enum(['mtls', 'jwt', 'apiKey', 'anonymous']);

const rateLimitRuleSchema = z.strictObject({
  per: z.enum(['identity', 'identity+tool', 'client', 'route']),
  /** Tool name patterns the rule applies to; all calls when omitted. */
  tools: z.array(z.string().min(1)).min(1).optional(),
  limit: rateSpec,
  /** Calls allowed at once above the steady rate. Default: the limit's N. */
  burst: z.number().int().positive().optional(),
});

/**
 * Headers a route may never forward from clients: credentials (the gateway checks them and never
 * passes them on), hop-by-hop and framing headers (they belong to one connection or message), and
 * the headers the gateway sets itself (forwarding chain, session id, `Accept-Encoding: identity`).
 */
const NEVER_FORWARDED: ReadonlySet<string> = new Set([
  'authorization',
  'proxy-authorization',
  'x-api-key',
  'cookie',
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
  'content-length',
  'expect',
  'accept-encoding',
  'mcp-session-id',
  'forwarded',
  'x-real-ip',
]);

/** An environment variable's name, as POSIX shells accept it. */
const envName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'must be an environment variable name');
/** A user or group: a name, or a numeric id. */
const account = z.union([
  z.string().regex(/^[a-z_][a-z0-9_.-]*\$?$/i, 'must be a user or group name'),
  z.number().int().nonnegative(),
]);

/**
 * A stdio MCP server the gateway spawns and is the one client of (DESIGN.md "Upstreams"). The
 * command is an argv array, never a shell line; the child's environment is `env` alone, plus
 * `PATH`, `LANG` and its own `HOME` and `TMPDIR`.
 */
export const stdioUpstreamSchema = z
  .strictObject({
    /** The program and its arguments: `[npx, -y, "@modelcontextprotocol/server-filesystem", /srv]`. */
    command: z.array(z.string().min(1, 'must not be empty')).min(1, 'must name a program'),
    /** The child's whole environment, beside `PATH`, `LANG`, `HOME` and `TMPDIR`. */
    env: z.record(envName, z.string()).default({}),
    /** Working directory (an absolute path). Default: the gateway's state directory for the process. */
    cwd: z.string().startsWith('/', 'must be an absolute path').optional(),
    /** Run the child as this user (name or uid): outside the gateway's trust boundary. */
    user: account.optional(),
    /** Run the child with this group (name or gid). */
    group: account.optional(),
    /** One process per identity (default), one for the route, or one per legacy session. */
    processes: z.enum(['perIdentity', 'shared', 'perSession']).default('perIdentity'),
    /** Processes of this route at once; when full, the least recently used idle one stops. */
    maxProcesses: z.number().int().positive().default(16),
    /** A process with nothing in flight and no open stream stops after this. Default 5 min. */
    idleTimeoutSec: z.number().int().positive().default(300),
    /** Time for the process to start and answer its handshake. Default 10 s. */
    startTimeoutMs: positiveMs.default(10_000),
    /**
     * What the gateway declares to the server beyond sampling and elicitation: `roots`, answered by
     * the gateway itself with these (servers such as server-filesystem confine themselves to them).
     * Never a client's roots: on a process shared by several clients no one client's would do.
     */
    clientCapabilities: z
      .strictObject({
        roots: z
          .array(
            z.strictObject({
              uri: z.string().startsWith('file://', 'must be a file:// URI'),
              name: z.string().min(1).optional(),
            }),
          )
          .min(1),
      })
      .optional(),
    /** Restarts after a crash: the first at once, then doubling from `backoffMs` to `maxBackoffMs`. */
    restart: z
      .strictObject({
        backoffMs: positiveMs.default(500),
        maxBackoffMs: positiveMs.default(30_000),
      })
      .default({ backoffMs: 500, maxBackoffMs: 30_000 }),
  })
  .refine((u) => u.restart.backoffMs <= u.restart.maxBackoffMs, {
    path: ['restart', 'backoffMs'],
    message: 'must not exceed maxBackoffMs',
  });
export type StdioUpstreamConfig = z.infer<typeof stdioUpstreamSchema>;

const forwardableHeader = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name')
  .refine((name) => {
    const lower = name.toLowerCase();
    return !NEVER_FORWARDED.has(lower) && !lower.startsWith('x-forwarded-');
  }, 'is a credential, hop-by-hop or gateway-owned header: never forwarded from clients');

/** The upstream MCP server: a Streamable HTTP endpoint's URL, or a stdio program to spawn. */
const upstreamSchema = z.union([httpUrl, stdioUpstreamSchema], {
  error: (issue) =>
    issue.input === undefined
      ? 'is required'
      : 'must be an http(s) URL, or a stdio server: { command: [program, arguments…] }',
});
export type UpstreamConfig = z.infer<typeof upstreamSchema>;

const upstreamTlsSchema = z
  .strictObject({
    ca: filePath.optional(),
    cert: filePath.optional(),
    key: filePath.optional(),
    serverName: z.string().min(1).optional(),
  })
  .refine((t) => (t.cert === undefined) === (t.key === undefined), 'cert and key go together');
export type UpstreamTlsConfig = z.infer<typeof upstreamTlsSchema>;

const DEFAULT_UPSTREAM_TIMEOUTS = { connectMs: 2_000, headersMs: 30_000, idleMs: 300_000 };
const upstreamTimeoutsSchema = z.strictObject({
  /** TCP/TLS connect. Default 2 s. */
  connectMs: positiveMs.default(2_000),
  /** Until the upstream's response headers. Default 30 s. */
  headersMs: positiveMs.default(30_000),
  /** Longest silence inside a response body (SSE included). Default 5 min. */
  idleMs: positiveMs.default(300_000),
});
export type UpstreamTimeoutsConfig = z.infer<typeof upstreamTimeoutsSchema>;

const upstreamHeadersSchema = z.record(
  z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'must be an HTTP header name'),
  z.string(),
);

/** What only an HTTP upstream has: set beside a stdio one, it would silently do nothing. */
const HTTP_ONLY = ['upstreamTls', 'upstreamHeaders', 'upstreamIdentity'] as const;

const IDENTITY_CLASH = 'cannot be set with upstreamIdentity, which sends the Authorization header';

/** The `upstreamHeaders` name that would overwrite the assertion `upstreamIdentity` sends, if any. */
function identityHeaderClash(spec: {
  readonly upstreamIdentity?: unknown;
  readonly upstreamHeaders?: Readonly<Record<string, string>> | undefined;
}): string | undefined {
  if (spec.upstreamIdentity === undefined) return undefined;
  return Object.keys(spec.upstreamHeaders ?? {}).find((name) => name.toLowerCase() === 'authorization');
}

/** One member of a federated route (DESIGN.md "Upstreams" → Federation). */
const serverSchema = z
  .strictObject({
    /** This server: a Streamable HTTP endpoint's URL, or a stdio program to spawn. */
    upstream: upstreamSchema,
    upstreamTls: upstreamTlsSchema.optional(),
    /** Default: the route's `upstreamTimeouts`. `headersMs` also bounds this server's part of a fanned-out list. */
    upstreamTimeouts: upstreamTimeoutsSchema.optional(),
    /** Headers added to every request to this server (e.g. its own credential). */
    upstreamHeaders: upstreamHeadersSchema.default({}),
    /** Who the caller is, told to this server (HTTP servers only). */
    upstreamIdentity: upstreamIdentitySchema.optional(),
    /** What this server's tools and prompts are exposed under. Default `<server>__`. */
    prefix: z.string().optional(),
    /** Resource URI patterns this server owns (canonical form): their URIs route to it. */
    resources: z.array(z.string().min(1)).default([]),
    /** A failing server fails every fanned-out list, instead of being left out of it. */
    required: z.boolean().default(false),
  })
  .superRefine((server, ctx) => {
    if (typeof server.upstream !== 'string')
      for (const field of HTTP_ONLY) {
        const value = server[field];
        if (value !== undefined && Object.keys(value).length > 0)
          ctx.addIssue({ code: 'custom', path: [field], message: 'applies to HTTP upstreams only' });
      }
    const clash = identityHeaderClash(server);
    if (clash !== undefined)
      ctx.addIssue({ code: 'custom', path: ['upstreamHeaders', clash], message: IDENTITY_CLASH });
    server.resources.forEach((pattern, i) => {
      const problem = resourcePatternProblem(pattern);
      if (problem !== undefined) ctx.addIssue({ code: 'custom', path: ['resources', i], message: problem });
    });
  });
export type ServerConfig = z.infer<typeof serverSchema>;

const serverInfoSchema = z.strictObject({
  name: z.string().min(1),
  version: z.string().min(1),
  title: z.string().min(1).optional(),
});

const routeSchema = z
  .strictObject({
    /** Exact path clients call, e.g. `/files/mcp`. */
    route: z
      .string()
      .regex(/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$/, 'must be an absolute path without query or fragment'),
    /** Public URL of this route: JWT audience and RFC 9728 `resource`. */
    resource: httpUrl,
    /** The upstream MCP server: a Streamable HTTP endpoint's URL, or a stdio program to spawn. */
    upstream: upstreamSchema.optional(),
    /** Several MCP servers behind this one route (federation), by server name; instead of `upstream`. */
    servers: z.record(z.string(), serverSchema).optional(),
    /** What a federated route says it is (`serverInfo` in `initialize` and `server/discover`). */
    serverInfo: serverInfoSchema.optional(),
    upstreamTls: upstreamTlsSchema.optional(),
    upstreamTimeouts: upstreamTimeoutsSchema.default(DEFAULT_UPSTREAM_TIMEOUTS),
    /** Headers added to every upstream request (e.g. the upstream's own credential). */
    upstreamHeaders: upstreamHeadersSchema.default({}),
    /** Who the caller is, told to the upstream (HTTP upstreams; per server on a federated route). */
    upstreamIdentity: upstreamIdentitySchema.optional(),
    /**
     * Client request headers forwarded upstream beyond the built-in allow-list (MCP headers,
     * `Accept`, `Content-Type`, `Last-Event-ID`, trace context, `User-Agent`). Credentials,
     * hop-by-hop headers and the headers the gateway sets itself are refused at load.
     */
    forwardHeaders: z.array(forwardableHeader).default([]),
    authentication: z.strictObject({
      methods: z.array(authMethod).min(1),
      require: z.enum(['any', 'all']).default('any'),
    }),
    /**
     * OAuth authorization servers for RFC 9728 metadata. Empty (default): the route serves no
     * metadata and its challenges carry no `resource_metadata` (a client would otherwise try OAuth
     * discovery and dynamic registration against a server that does not exist).
     */
    authorizationServers: z.array(httpUrl).default([]),
    /**
     * Scopes a 401 challenge names (`scope="…"`), i.e. what an OAuth client asks for first.
     * Default: every scope that a single-scope `tools`, `resources` or `prompts` entry names.
     */
    challengeScopes: z.array(scopeName).optional(),
    allowedOrigins: z
      .array(z.string().regex(/^https?:\/\/[^/]+$/, 'must be an origin like https://app.example.com'))
      .default([]),
    /**
     * The longest delegation chain a caller's token may carry (its nested `act` claims): deeper is
     * 403 `method_denied` (`data.rule: maxDelegationDepth`) for every request. Omitted: no bound.
     */
    maxDelegationDepth: z.number().int().min(0).max(16).optional(),
    mode: z.enum(['enforce', 'shadow']).default('enforce'),
    default: z.enum(['deny', 'allow']).default('deny'),
    tools: z.record(z.string().min(1), toolEntry).default({}),
    resources: nameToScopes.default({}),
    prompts: nameToScopes.default({}),
    /**
     * Methods beyond the method table, by name or glob. Naming a `tasks/` method (or a pattern that
     * can match one) is a load error: task ids are not bound to identities (`task-methods.ts`).
     */
    methods: nameToScopes.default({}),
    rateLimits: z.array(rateLimitRuleSchema).min(1).optional(),
    failMode: z.enum(['open', 'closed']).optional(),
    /**
     * The route's pin file (`portcullis pin` writes it), relative to the policy file: the tool and
     * prompt definitions the route trusts. Omitted: no pinning.
     */
    pins: z.string().min(1).optional(),
    /** `_meta` keys left out of definition hashes (every key is hashed by default). */
    volatileMeta: z.array(z.string().min(1)).default([]),
    /** With `pins`: `block` hides and refuses a changed or unpinned definition; `warn` serves it, reported. */
    onToolChange: z.enum(['block', 'warn']).default('block'),
    /** With `pins`: how long a definition seen is taken as the server's current one before listing it again. */
    pinRefreshSec: z.number().int().min(1).max(86_400).default(300),
    /** With `pins`: `tools/call` and `prompts/get` arguments checked against the pinned definition. */
    validateArguments: z.boolean().default(true),
    /** With `pins` and `validateArguments`: top-level arguments a tool's schema does not declare are invalid. */
    strictArguments: z.boolean().default(true),
    /** With `pins`: a tool result's `structuredContent` checked against the pinned `outputSchema`. */
    validateResults: z.boolean().default(false),
  })
  .superRefine((route, ctx) => {
    // Each `when` rule compiles at load, or the file does not load: the problem names where.
    for (const [name, entry] of Object.entries(route.tools)) {
      if (typeof entry !== 'object' || Array.isArray(entry) || entry.when === undefined) continue;
      const compiled = compileCondition(entry.when);
      if (isConditionProblem(compiled))
        ctx.addIssue({
          code: 'custom',
          path: ['tools', name, 'when'],
          message: `${compiled.message} (at character ${compiled.offset + 1} of the rule)`,
        });
    }
    if ((route.upstream === undefined) === (route.servers === undefined))
      ctx.addIssue({
        code: 'custom',
        path: route.upstream === undefined ? ['upstream'] : ['servers'],
        message:
          route.upstream === undefined
            ? 'is required (or servers, for a federated route)'
            : 'cannot be set beside upstream: a route has one upstream or several servers',
      });
    if (route.servers !== undefined) {
      // What a federated route sets per server: at the route it would silently do nothing.
      for (const field of HTTP_ONLY) {
        const value = route[field];
        if (value !== undefined && Object.keys(value).length > 0)
          ctx.addIssue({
            code: 'custom',
            path: [field],
            message: 'is set per server on a federated route (servers.<name>)',
          });
      }
      for (const problem of serversProblems(route.servers))
        ctx.addIssue({ code: 'custom', path: ['servers'], message: problem });
    } else if (route.serverInfo !== undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['serverInfo'],
        message: 'applies to federated routes (servers) only',
      });
    else if (typeof route.upstream !== 'string') {
      // What only an HTTP upstream has: set beside a stdio one, it would silently do nothing.
      for (const field of HTTP_ONLY) {
        const value = route[field];
        if (value !== undefined && Object.keys(value).length > 0)
          ctx.addIssue({ code: 'custom', path: [field], message: 'applies to HTTP upstreams only' });
      }
    }
    const clash = identityHeaderClash(route);
    if (clash !== undefined)
      ctx.addIssue({ code: 'custom', path: ['upstreamHeaders', clash], message: IDENTITY_CLASH });
    if (route.rateLimits !== undefined && route.failMode === undefined) {
      ctx.addIssue({ code: 'custom', path: ['failMode'], message: 'is required when rateLimits is set' });
    }
    if (route.authentication.require === 'all' && route.authentication.methods.includes('anonymous')) {
      ctx.addIssue({
        code: 'custom',
        path: ['authentication', 'methods'],
        message: 'anonymous cannot be combined with require: all',
      });
    }
    if (new Set(route.authentication.methods).size !== route.authentication.methods.length) {
      ctx.addIssue({ code: 'custom', path: ['authentication', 'methods'], message: 'lists a method twice' });
    }
    // Patterns match canonical URIs only: a non-canonical one would silently never match (a
    // deny that denies nothing). Refused at load, naming the spelling to write.
    for (const pattern of Object.keys(route.resources)) {
      const problem = resourcePatternProblem(pattern);
      if (problem !== undefined)
        ctx.addIssue({ code: 'custom', path: ['resources', pattern], message: problem });
    }
  });

export const configSchema = z
  .strictObject({
    listen: listenSchema.default({ host: '0.0.0.0', port: 8443 }),
    tls: tlsSchema.optional(),
    admin: listenSchema.default({ host: '0.0.0.0', port: 9090 }),
    limits: limitsSchema.default(limitsSchema.parse({})),
    /** Peers whose `X-Forwarded-For` is honoured. */
    trustedProxies: z.array(cidr).default([]),
    authFailures: z.strictObject({ limit: rateSpec.default('20/minute') }).default({ limit: '20/minute' }),
    redis: redisSchema.optional(),
    sessions: sessionsSchema.default({ maxAgeSec: 86_400 }),
    audit: auditSchema.default(auditSchema.parse({})),
    log: logSchema.default({ level: 'info', requests: false }),
    tracing: tracingSchema.optional(),
    gatewayIdentity: gatewayIdentitySchema.optional(),
    approvals: approvalsSchema.default(approvalsSchema.parse({})),
    identities: identitiesSchema.default(identitiesSchema.parse({})),
    routes: z.array(routeSchema).min(1, 'must list at least one route'),
  })
  .superRefine((config, ctx) => {
    const seen = new Map<string, number>();
    config.routes.forEach((route, index) => {
      const first = seen.get(route.route);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['routes', index, 'route'],
          message: `duplicates routes[${first}].route`,
        });
      }
      seen.set(route.route, index);
      for (const [path, spec] of identityTargets(route)) {
        const mode = spec.upstreamIdentity?.mode;
        if (mode === 'assertion' && config.gatewayIdentity === undefined)
          ctx.addIssue({
            code: 'custom',
            path: ['routes', index, ...path, 'upstreamIdentity'],
            message: 'mode assertion needs gatewayIdentity (the issuer and the keys that sign)',
          });
        // Only a JWT can be exchanged: a caller by API key or certificate has no token to give.
        const methods = route.authentication.methods;
        if (mode === 'tokenExchange' && (methods.length !== 1 || methods[0] !== 'jwt'))
          ctx.addIssue({
            code: 'custom',
            path: ['routes', index, ...path, 'upstreamIdentity'],
            message: 'mode tokenExchange needs a route that authenticates by jwt only',
          });
      }
      route.authentication.methods.forEach((method, m) => {
        const missing = missingIdentitySource(config, method);
        if (missing)
          ctx.addIssue({
            code: 'custom',
            path: ['routes', index, 'authentication', 'methods', m],
            message: missing,
          });
      });
    });
    if (config.tls?.clientCertificate !== undefined && config.tls.clientCA === undefined) {
      ctx.addIssue({ code: 'custom', path: ['tls', 'clientCertificate'], message: 'needs tls.clientCA' });
    }
    if (config.audit.arguments === 'hash' && config.audit.chainKey === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['audit', 'arguments'],
        message: 'hash needs audit.chainKey (a bare SHA-256 of a short value is reversible)',
      });
    }
    // The approval pages live under /portcullis/ on the main listener: no route may take it.
    if (config.approvals.publicUrl !== undefined)
      config.routes.forEach((route, index) => {
        if (route.route === '/portcullis' || route.route.startsWith('/portcullis/'))
          ctx.addIssue({
            code: 'custom',
            path: ['routes', index, 'route'],
            message: 'is under /portcullis/, where the approval pages are served',
          });
      });
    if (config.routes.some(usesApprover)) {
      const { approvals } = config;
      for (const [field, missing] of [
        ['publicUrl', approvals.publicUrl === undefined],
        ['oidc', approvals.oidc === undefined],
        ['approverScopes', approvals.approverScopes === undefined && approvals.approverClaim === undefined],
      ] as const)
        if (missing)
          ctx.addIssue({
            code: 'custom',
            path: ['approvals', field],
            message:
              field === 'approverScopes'
                ? 'confirm: approver needs approverScopes or approverClaim (who may approve)'
                : 'confirm: approver needs it',
          });
    }
    const names = new Set<string>();
    config.identities.mtls.forEach((entry, index) => {
      if (names.has(entry.name)) {
        ctx.addIssue({
          code: 'custom',
          path: ['identities', 'mtls', index, 'name'],
          message: 'is not unique',
        });
      }
      names.add(entry.name);
    });
  });

/** Whether a route has a tool entry that needs an approver's yes. */
function usesApprover(route: z.output<typeof routeSchema>): boolean {
  return Object.values(route.tools).some(
    (entry) =>
      typeof entry === 'object' &&
      !Array.isArray(entry) &&
      'confirm' in entry &&
      entry.confirm === 'approver',
  );
}

/** The route, or each server of a federated one, with where it sits under the route. */
function identityTargets(
  route: z.output<typeof routeSchema>,
): [(string | number)[], { readonly upstreamIdentity?: UpstreamIdentityConfig | undefined }][] {
  if (route.servers === undefined) return [[[], route]];
  return Object.entries(route.servers).map(([name, server]) => [['servers', name], server]);
}

/** Why a route cannot use `method` with this configuration, or `undefined` when it can. */
function missingIdentitySource(
  config: z.output<typeof configSchema>,
  method: z.output<typeof authMethod>,
): string | undefined {
  switch (method) {
    case 'anonymous':
      return config.identities.anonymous ? undefined : 'anonymous needs identities.anonymous';
    case 'apiKey':
      return config.identities.apiKeys.length > 0 ? undefined : 'apiKey needs identities.apiKeys';
    case 'jwt':
      return config.identities.jwt.length > 0 ? undefined : 'jwt needs identities.jwt';
    case 'mtls':
      if (config.tls?.clientCA === undefined) return 'mtls needs tls.clientCA';
      return config.identities.mtls.length > 0 ? undefined : 'mtls needs identities.mtls';
  }
}

/** The validated, defaulted policy file. */
export type Config = z.output<typeof configSchema>;
export type RouteConfig = Config['routes'][number];
export type AuthMethod = z.output<typeof authMethod>;

/** The JSON Schema published for editors and CI (`schema/portcullis.schema.json`). */
export function configJsonSchema(): Record<string, unknown> {
  return {
    $id: 'https://portcullis.dev/schema/portcullis.schema.json',
    title: 'Portcullis policy file',
    ...z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }),
  };
}
