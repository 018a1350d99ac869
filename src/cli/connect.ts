import pino from 'pino';
import type { Identity } from '../auth/identity.js';
import { Cancellation } from '../cancellation.js';
import type { Config, RouteConfig, ServerConfig } from '../config/schema.js';
import { isStdioTarget, type UpstreamTarget, upstreamTargets } from '../config/upstreams.js';
import type { Definition } from '../integrity/definitions.js';
import { INITIALIZE, LIST_METHODS } from '../jsonrpc/methods.js';
import { LEGACY_VERSION } from '../jsonrpc/protocol-version.js';
import { type CompiledPolicy, compilePolicy, type NameTable } from '../policy/compile.js';
import { createSealer } from '../proxy/seal.js';
import { type Failed, type Link, Member } from '../upstream/federation/member.js';
import { EXPOSED_NAME } from '../upstream/federation/names.js';
import { GATEWAY_CLIENT_INFO } from '../upstream/gateway-client.js';
import { createHttpUpstream } from '../upstream/http.js';
import { createStdioUpstream } from '../upstream/stdio/upstream.js';
import type { Upstream, UpstreamRequest } from '../upstream/upstream.js';

/** Names longer than this break some LLM providers' function-name rules. */
const PROVIDER_NAME_LIMIT = 64;
/** Pages followed per list at most (a server whose cursor never ends is cut off). */
const MAX_PAGES = 100;

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
): Promise<
  { readonly prefix: string; readonly items: ReadonlyMap<'tools' | 'prompts', Definition[]> } | Failed
> {
  const logger = pino({ level: 'silent' });
  const upstream = build(config, target, logger);
  try {
    const member = new Member(target, serverSpec(route, target), upstream, {
      logger,
      maxResponseBytes: config.limits.maxResponseBytes,
      maxJsonDepth: config.limits.maxJsonDepth,
    });
    const found = await listServer(member);
    return 'failure' in found ? found : { prefix: member.prefix, items: found.items };
  } finally {
    await upstream.close();
  }
}

/** What a single-server route's upstream is, as a server of its own: no prefix, owning nothing declared. */
function serverSpec(route: RouteConfig, target: UpstreamTarget): ServerConfig {
  const declared = target.server === undefined ? undefined : route.servers?.[target.server];
  return (
    declared ?? {
      upstream: target.upstream,
      upstreamHeaders: {},
      prefix: '',
      resources: [],
      required: true,
    }
  );
}

function build(config: Config, target: UpstreamTarget, logger: pino.Logger): Upstream {
  if (!isStdioTarget(target)) return createHttpUpstream(target.upstream as string, target);
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

/**
 * Every tool and prompt a server lists (every page), after the handshake: as `check --connect`
 * prints them and `pin` pins them.
 */
async function listServer(
  member: Member,
): Promise<{ readonly items: ReadonlyMap<'tools' | 'prompts', Definition[]> } | Failed> {
  const request: UpstreamRequest = {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: undefined,
    text: undefined,
    cancellation: new Cancellation(),
    version: LEGACY_VERSION,
    identity: CHECK,
    session: undefined,
  };
  const opened = await member.initialize(request, {
    jsonrpc: '2.0',
    id: 0,
    method: INITIALIZE,
    params: { protocolVersion: LEGACY_VERSION, capabilities: {}, clientInfo: GATEWAY_CLIENT_INFO },
  });
  if ('failure' in opened) return opened;
  const link: Link = opened.link;
  const lists = new Map<'tools' | 'prompts', Definition[]>();
  for (const [method, list] of LIST_METHODS) {
    if (list.field !== 'tools' && list.field !== 'prompts') continue;
    const capabilities = opened.result.capabilities as Record<string, unknown> | undefined;
    if (capabilities?.[list.field] === undefined) continue;
    const found: Definition[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const asked = await member.ask(
        { ...request, headers: { ...request.headers, 'mcp-protocol-version': link.version } },
        { jsonrpc: '2.0', id: page + 1, method, params: cursor === undefined ? {} : { cursor } },
        link,
      );
      if ('failure' in asked) return asked;
      const result = asked.message.result as Record<string, unknown> | undefined;
      const items = result?.[list.field];
      if (Array.isArray(items))
        for (const item of items)
          if (typeof item === 'object' && item !== null && !Array.isArray(item))
            found.push(item as Definition);
      cursor = typeof result?.nextCursor === 'string' ? result.nextCursor : undefined;
      if (cursor === undefined) break;
    }
    // Still a cursor after the last page followed: the list is not whole, and is no list to pin.
    if (cursor !== undefined) return { failure: 'error' };
    lists.set(list.field, found);
  }
  if (link.id !== undefined) await member.end(link.id, link.version, CHECK);
  return { items: lists };
}
