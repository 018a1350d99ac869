import pino from 'pino';
import type { Identity } from '../auth/identity.js';
import type { Config, RouteConfig } from '../config/schema.js';
import { isStdioTarget, type UpstreamTarget, upstreamTargets } from '../config/upstreams.js';
import type { Definition } from '../integrity/definitions.js';
import { type CompiledPolicy, compilePolicy, type NameTable } from '../policy/compile.js';
import { createSealer } from '../proxy/seal.js';
import type { Failed } from '../upstream/federation/member.js';
import { EXPOSED_NAME } from '../upstream/federation/names.js';
import { createHttpUpstream } from '../upstream/http.js';
import { assertIdentity } from '../upstream/identity/asserted-upstream.js';
import { createAssertions } from '../upstream/identity/assertions.js';
import { type Listed, listServer } from '../upstream/list-server.js';
import { createStdioUpstream } from '../upstream/stdio/upstream.js';
import type { Upstream } from '../upstream/upstream.js';

/** Names longer than this break some LLM providers' function-name rules. */
const PROVIDER_NAME_LIMIT = 64;

/** Who `check --connect` is to the servers. */
const CHECK: Identity = { key: 'check', subject: 'portcullis check', methods: [], scopes: new Set() };

/** What `check --connect` found: lines to print, warnings, and servers it could not list (errors). */
export interface Connected {
  readonly lines: string[];
  readonly warnings: string[];
  readonly problems: string[];
}

/**
 * `portcullis check --connect`: connects to every server of every route as a client (the
 * 2025-era handshake, or 2026-07-28 for a server that speaks only that), lists its tools and
 * prompts (every page) and prints what clients will see — server, exposed name, and the scopes
 * the policy asks for it (or why it is refused) — with the names that break LLM providers' rules
 * (longer than 64, or with `.`) as warnings, and names outside the tool-name rule as hidden.
 */
export async function connectAndDescribe(config: Config): Promise<Connected> {
  const out: Connected = { lines: [], warnings: [], problems: [] };
  for (const [index, route] of config.routes.entries()) {
    const policy = compilePolicy(route);
    out.lines.push('', `route ${route.route} (connected)`);
    const rows: string[][] = [];
    for (const target of upstreamTargets(route, index)) {
      const found = await listTarget(config, route, target);
      const server = target.server ?? '(upstream)';
      if ('failure' in found) {
        out.problems.push(`${target.field}: could not list (${found.failure})`);
        rows.push([server, '—', `unreachable: ${found.failure}`]);
        continue;
      }
      for (const [section, items] of found.items)
        for (const name of namesOf(items)) {
          const exposed = target.server === undefined ? name : `${found.prefix}${name}`;
          if (!EXPOSED_NAME.test(exposed)) {
            rows.push([server, exposed, 'hidden: outside ^[A-Za-z0-9_.-]{1,128}$']);
            continue;
          }
          if (exposed.length > PROVIDER_NAME_LIMIT || exposed.includes('.'))
            out.warnings.push(
              `routes[${index}] ${section === 'tools' ? 'tool' : 'prompt'} ${exposed}: ${exposed.includes('.') ? "contains '.'" : `is ${exposed.length} characters`}, which some LLM providers refuse in function names (at most 64 of A-Z a-z 0-9 _ -)`,
            );
          rows.push([
            server,
            exposed,
            scopesOf(policy, section === 'tools' ? policy.tools : policy.prompts)(exposed),
          ]);
        }
    }
    const widths = [0, 1].map((c) => Math.max(...rows.map((r) => (r[c] ?? '').length), 6));
    for (const row of rows)
      out.lines.push(
        `  ${(row[0] ?? '').padEnd(widths[0] ?? 0)}  ${(row[1] ?? '').padEnd(widths[1] ?? 0)}  ${row[2]}`,
      );
  }
  return out;
}

/**
 * Connects to one server of a route as a client (a stdio server is started and stopped) and lists
 * its tools and prompts, every page: what `check --connect` prints and `pin` pins.
 */
export async function listTarget(
  config: Config,
  route: RouteConfig,
  target: UpstreamTarget,
): Promise<Listed | Failed> {
  const logger = pino({ level: 'silent' });
  const upstream = await build(config, target, logger);
  try {
    return await listServer(
      route,
      target,
      upstream,
      {
        logger,
        maxResponseBytes: config.limits.maxResponseBytes,
        maxJsonDepth: config.limits.maxJsonDepth,
      },
      CHECK,
    );
  } finally {
    await upstream.close();
  }
}

/** The server's upstream as the gateway builds it: an HTTP server told who asks by assertion gets one here too. */
async function build(config: Config, target: UpstreamTarget, logger: pino.Logger): Promise<Upstream> {
  if (!isStdioTarget(target)) {
    const upstream = createHttpUpstream(target.upstream as string, target);
    if (target.identity?.mode !== 'assertion' || config.gatewayIdentity === undefined) return upstream;
    return assertIdentity(upstream, await createAssertions(config.gatewayIdentity), target.identity);
  }
  return createStdioUpstream(target, target.upstream, {
    logger,
    sealer: createSealer(undefined),
    maxResponseBytes: config.limits.maxResponseBytes,
    maxJsonDepth: config.limits.maxJsonDepth,
  });
}

/** The scopes a name needs under the policy, or why it is refused. */
function scopesOf(policy: CompiledPolicy, table: NameTable): (name: string) => string {
  return (name) => {
    const requirement = table.lookup(name);
    if (requirement !== undefined) return `${requirement.scopes.join(' + ')} (${requirement.rule})`;
    return policy.defaultEffect === 'allow' ? 'any identity (default: allow)' : 'refused (default: deny)';
  };
}

/** The names of listed definitions (an item without a string name is none). */
function namesOf(items: readonly Definition[]): string[] {
  return items.flatMap((item) => (typeof item.name === 'string' ? [item.name] : []));
}
