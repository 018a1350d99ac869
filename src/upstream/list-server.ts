import type { Identity } from '../auth/identity.js';
import { Cancellation } from '../cancellation.js';
import type { RouteConfig, ServerConfig } from '../config/schema.js';
import type { UpstreamTarget } from '../config/upstreams.js';
import type { Definition } from '../integrity/definitions.js';
import { INITIALIZE, LIST_METHODS } from '../jsonrpc/methods.js';
import { LEGACY_VERSION } from '../jsonrpc/protocol-version.js';
import { type Failed, type Link, Member, type MemberDeps } from './federation/member.js';
import { GATEWAY_CLIENT_INFO } from './gateway-client.js';
import type { Upstream, UpstreamRequest } from './upstream.js';

/** Pages followed per list at most (a server whose cursor never ends is cut off). */
const MAX_PAGES = 100;

/** A server's tools and prompts, every page, as it lists them to a client of its own. */
export interface Listed {
  /** The prefix its names take on a federated route ('' on a single-server route). */
  readonly prefix: string;
  readonly items: ReadonlyMap<'tools' | 'prompts', Definition[]>;
}

/**
 * Lists one server of a route as a client of its own (the 2025-era handshake, or 2026-07-28 for a
 * server that speaks only that; every page; the session ended after): what `check --connect`
 * prints, `pin` pins, and the gateway compares with the pins while it runs. A list still paging
 * after 100 pages is no list (a failure): pinning part of it would unpin the rest.
 */
export async function listServer(
  route: RouteConfig,
  target: UpstreamTarget,
  upstream: Upstream,
  deps: MemberDeps,
  identity: Identity,
): Promise<Listed | Failed> {
  const member = new Member(target, serverSpec(route, target), upstream, deps);
  const request: UpstreamRequest = {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: undefined,
    text: undefined,
    cancellation: new Cancellation(),
    version: LEGACY_VERSION,
    identity,
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
  if (link.id !== undefined) await member.end(link.id, link.version, identity);
  return { prefix: member.prefix, items: lists };
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
