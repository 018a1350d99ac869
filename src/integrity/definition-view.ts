import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { isRefusal } from '../errors.js';
import { LIST_METHODS } from '../jsonrpc/methods.js';
import { isModern } from '../jsonrpc/protocol-version.js';
import { readMemberMessages } from '../upstream/federation/answers.js';
import type { Failed } from '../upstream/federation/member.js';
import { modernMeta } from '../upstream/gateway-client.js';
import type { Listed } from '../upstream/list-server.js';
import type { Upstream, UpstreamRequest } from '../upstream/upstream.js';
import { type Definition, type DefinitionKind, definitionHash } from './definitions.js';
import { renderDiff } from './pin-diff.js';
import { describe, type PinSet } from './pins.js';

/** What a definition is, against its pin: trusted, changed, or unpinned (no pin, or unhashable). */
export type Verdict = 'pinned' | 'changed' | 'unpinned';

/** A definition seen to differ from its pin, or to have none: reported once per definition hash. */
export interface DefinitionChange {
  readonly kind: DefinitionKind;
  readonly name: string;
  /** The SHA-256 of the definition seen (`unhashable`: too large, or not valid Unicode JSON). */
  readonly hash: string;
  /** Its pin's hash (undefined: no pin). */
  readonly pinned: string | undefined;
  readonly verdict: Exclude<Verdict, 'pinned'>;
}

/**
 * The gateway listing a server as a client of its own — at start, every `pinRefreshSec`, and when
 * the server says its list changed — so a change is reported even when no caller lists.
 */
export interface OwnListing {
  readonly list: () => Promise<Listed | Failed>;
  /**
   * Whether what it lists is what every caller sees (an HTTP server: callers share one view), so
   * callers take it as the server's latest; a stdio server is listed through a process of its own,
   * whose listing is reported but never stands in for the callers' processes.
   */
  readonly shared: boolean;
}

/** What the view of a server needs to know. */
export interface ViewDeps {
  readonly route: string;
  /** The server of a federated route (undefined: the route's one upstream). */
  readonly server: string | undefined;
  /** The route's pins now (the pin file is reloaded while running). */
  readonly pins: () => PinSet;
  readonly volatileMeta: ReadonlySet<string>;
  /** `block`: changed and unpinned definitions are hidden and refused; `warn`: served, reported. */
  readonly onToolChange: 'block' | 'warn';
  /** How long a definition seen is trusted as the server's current one before it is listed again. */
  readonly refreshMs: number;
  /**
   * Whose definitions a request sees: a stdio server run per identity or per session may list
   * differently per process (its key), every other server the same for all ('').
   */
  readonly scopeOf: (request: UpstreamRequest) => string;
  readonly maxResponseBytes: number;
  readonly maxJsonDepth: number;
  /** A definition found to differ from its pin, or to have none (once per hash): counted and audited. */
  readonly onChange?: (change: DefinitionChange) => void;
  readonly ownListing?: OwnListing | undefined;
}

/** The definitions one scope of a server was last seen with, by kind and name. */
export interface Seen {
  /** When the server was last listed whole (0: only pieces seen in relayed lists). */
  listedAt: number;
  /** Bumped when the server says its list changed: a listing started before is stale when it ends. */
  generation: number;
  /** The generation the last whole listing started in. */
  listedGeneration: number;
  readonly hashes: Map<string, string | undefined>;
  /**
   * When each name was last seen differ from its pin: a server that shows one definition to the
   * gateway's own listing and another to clients is not trusted on the listing's word.
   */
  readonly differed: Map<string, { readonly hash: string | undefined; readonly at: number }>;
  listing: Promise<void> | undefined;
}

/** What the gateway knows of one server's definitions, and how it learns more. */
export interface DefinitionView {
  /** The definitions seen in a scope (a caller's process, or '' for all). */
  seenFor(scope: string): Seen;
  /** Records one listed definition as the scope's latest; its verdict against the pins now. */
  observe(entry: Seen, kind: DefinitionKind, item: unknown): Verdict | undefined;
  /** Whether `name`'s latest definition in this scope is trusted (see below). */
  accepted(entry: Seen, kind: DefinitionKind, name: string): boolean;
  /** Whether a call of `name` may go, listing the server first when what was seen is stale. */
  trusted(request: UpstreamRequest, kind: DefinitionKind, name: string): boolean | Promise<boolean>;
  /** The server said its list changed (a `list_changed` relayed in this scope). */
  announced(scope: string): void;
  /** Stops the scheduled listing. */
  close(): void;
}

/** The list methods whose items are definitions, and the kind of their items. */
export const LISTS: ReadonlyMap<string, { readonly kind: DefinitionKind; readonly field: string }> = new Map(
  [...LIST_METHODS].flatMap(([method, list]) =>
    list.field === 'tools' || list.field === 'prompts'
      ? [[method, { kind: list.field === 'tools' ? 'tool' : 'prompt', field: list.field }] as const]
      : [],
  ),
);
/** Callers (identities, sessions) whose view of a server is kept at once. */
const MAX_SCOPES = 10_000;
/** Changed definitions remembered as reported. */
const MAX_REPORTED = 10_000;
/** Pages the gateway follows when it lists a server itself. */
const MAX_PAGES = 100;
/** The scope of the gateway's own listing of a stdio server (its own process): never a caller's. */
const OWN_PROCESS = '\u0000own';

/**
 * The gateway's view of one server's tool and prompt definitions (DESIGN.md step 7, Inspect): per
 * scope (a stdio caller's process, or everyone's), the hash each name was last seen with — from the
 * lists relayed, from the gateway listing the server as a client of its own (at start, every
 * `pinRefreshSec`, and when the server announces a change), or in the caller's context when what
 * was seen is stale. Each definition that differs from its pin, or has none, is reported once per
 * hash: a log line with a diff, and `onChange` (the metric and the audit record).
 */
export function createDefinitionView(inner: Upstream, deps: ViewDeps, logger: Logger): DefinitionView {
  const seen = new Map<string, Seen>();
  const reported = new Set<string>();

  const seenFor = (scope: string): Seen => {
    let entry = seen.get(scope);
    if (entry === undefined) {
      entry = {
        listedAt: 0,
        generation: 0,
        listedGeneration: 0,
        hashes: new Map(),
        differed: new Map(),
        listing: undefined,
      };
      // Scopes are identities or sessions: the oldest is forgotten (it lists again when it calls).
      if (seen.size >= MAX_SCOPES) seen.delete(seen.keys().next().value as string);
      seen.set(scope, entry);
    }
    return entry;
  };

  /** Records one listed definition as the server's latest; its verdict against the pins now. */
  const observe = (entry: Seen, kind: DefinitionKind, item: unknown): Verdict | undefined => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
    const definition = item as Definition;
    const name = definition.name;
    if (typeof name !== 'string') return undefined;
    const hash = definitionHash(definition, deps.volatileMeta);
    const known = typeof hash === 'string' ? hash : undefined;
    entry.hashes.set(`${kind}\u0000${name}`, known);
    const pin = deps.pins().get(kind, deps.server, name);
    const verdict: Verdict =
      pin === undefined || known === undefined ? 'unpinned' : pin.hash === known ? 'pinned' : 'changed';
    if (verdict !== 'pinned') {
      entry.differed.set(`${kind}\u0000${name}`, { hash: known, at: Date.now() });
      report(kind, name, known ?? 'unhashable', verdict, definition);
    }
    return verdict;
  };

  const report = (
    kind: DefinitionKind,
    name: string,
    hash: string,
    verdict: Exclude<Verdict, 'pinned'>,
    definition: Definition,
  ): void => {
    const key = JSON.stringify([kind, name, hash]);
    if (reported.has(key)) return;
    // A server churning its descriptions is reported again after this many, not remembered forever.
    if (reported.size >= MAX_REPORTED) reported.clear();
    reported.add(key);
    const pin = deps.pins().get(kind, deps.server, name);
    // A listing that ends after the router closed reports to the log only: the audit may be closed.
    if (!closed) deps.onChange?.({ kind, name, hash, pinned: pin?.hash, verdict });
    const diff =
      pin === undefined
        ? undefined
        : renderDiff({
            added: [],
            removed: [],
            changed: [{ pinned: pin, listed: { ...pin, hash, definition } }],
          }).slice(0, 4096);
    logger.warn(
      {
        kind,
        name,
        hash,
        pinned: pin?.hash,
        verdict,
        action: deps.onToolChange === 'block' ? 'hidden and refused' : 'served (warn)',
        diff,
      },
      verdict === 'changed'
        ? `${describe(kind, deps.server, name)} differs from its pin`
        : `${describe(kind, deps.server, name)} has no pin`,
    );
  };

  const fresh = (entry: Seen): boolean =>
    entry.listedGeneration === entry.generation && Date.now() - entry.listedAt <= deps.refreshMs;

  /**
   * The server's latest definitions for this request's scope, listed again when unknown, stale or
   * announced changed (a listing that started before the announcement is followed by another).
   */
  const current = async (request: UpstreamRequest): Promise<Seen> => {
    const scope = deps.scopeOf(request);
    const entry = seenFor(scope);
    for (let attempt = 0; attempt < 2 && !fresh(entry); attempt++) {
      entry.listing ??= (
        scope === '' && deps.ownListing?.shared === true
          ? // The gateway's own listing; when it fails (a server that will not list for it), the caller's.
            listOwn(entry).then((listed) => (listed ? undefined : listAll(request, entry)))
          : listAll(request, entry)
      ).finally(() => {
        entry.listing = undefined;
      });
      await entry.listing;
    }
    return entry;
  };

  /** Records a whole listing as the scope's latest: what the server no longer lists is no definition. */
  const replace = (
    entry: Seen,
    items: ReadonlyMap<DefinitionKind, readonly unknown[]>,
    generation: number,
  ) => {
    const latest = new Map<string, string | undefined>();
    for (const [kind, list] of items)
      for (const item of list) {
        observe(entry, kind, item);
        const name = (item as { name?: unknown } | null)?.name;
        if (typeof name === 'string')
          latest.set(`${kind}\u0000${name}`, entry.hashes.get(`${kind}\u0000${name}`));
      }
    entry.hashes.clear();
    for (const [key, hash] of latest) entry.hashes.set(key, hash);
    entry.listedAt = Date.now();
    entry.listedGeneration = generation;
  };

  /** The gateway's own listing (a client of its own); a failure records nothing new (false). */
  const listOwn = async (entry: Seen): Promise<boolean> => {
    const own = deps.ownListing;
    if (own === undefined) return false;
    const generation = entry.generation;
    const listed = await own.list().catch((err: unknown) => ({ failure: 'error' as const, err }));
    if ('failure' in listed) {
      logger.warn(
        { failure: listed.failure },
        'the gateway could not list the server to compare its definitions with the pins: callers list it again',
      );
      return false;
    }
    const items = new Map<DefinitionKind, readonly unknown[]>();
    for (const [field, list] of listed.items) items.set(field === 'tools' ? 'tool' : 'prompt', list);
    replace(entry, items, generation);
    return true;
  };

  /** The scope the own listing stands for: the callers' shared one, or a process of its own. */
  const ownScope = deps.ownListing?.shared === true ? '' : OWN_PROCESS;
  let closed = false;
  let again = false;
  /** Lists the server now (at start, on schedule, on `list_changed`); one at a time, once more if asked meanwhile. */
  const refreshOwn = (): void => {
    if (deps.ownListing === undefined || closed) return;
    const entry = seenFor(ownScope);
    if (entry.listing !== undefined) {
      if (!again) {
        again = true;
        void entry.listing.finally(() => {
          again = false;
          refreshOwn();
        });
      }
      return;
    }
    entry.listing = listOwn(entry)
      .then(() => undefined)
      .finally(() => {
        entry.listing = undefined;
      });
  };
  /** A server that says its list changed: what was seen in that scope is stale at once. */
  const announced = (scope: string): void => {
    const entry = seen.get(scope);
    if (entry !== undefined) entry.generation++;
    if (scope === ownScope || deps.ownListing?.shared !== true) refreshOwn();
  };
  const timer = deps.ownListing === undefined ? undefined : setInterval(refreshOwn, deps.refreshMs);
  timer?.unref();
  if (deps.ownListing !== undefined) setImmediate(refreshOwn);

  /** Lists every tool and prompt of the server, in the caller's context; a failure records nothing new. */
  const listAll = async (request: UpstreamRequest, entry: Seen): Promise<void> => {
    const generation = entry.generation;
    const items = new Map<DefinitionKind, unknown[]>();
    for (const [method, { kind, field }] of LISTS) {
      const found: unknown[] = [];
      items.set(kind, found);
      let cursor: string | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        // An id the server cannot tell from a client's (a number, random), and the protocol fields a modern server needs.
        const message = {
          jsonrpc: '2.0',
          id: randomInt(1, 2 ** 31),
          method,
          params: {
            ...(cursor === undefined ? {} : { cursor }),
            ...(isModern(request.version) ? { _meta: modernMeta() } : {}),
          },
        };
        // The caller's headers, less what mirrors its own request (name, arguments).
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(request.headers))
          if (name !== 'mcp-name' && !name.startsWith('mcp-param-')) headers[name] = value;
        if (headers['mcp-method'] !== undefined) headers['mcp-method'] = method;
        const answer = await inner.send({
          ...request,
          headers,
          body: undefined,
          text: JSON.stringify(message),
        });
        if (isRefusal(answer)) return;
        const read = await readMemberMessages(answer, deps.maxResponseBytes, deps.maxJsonDepth).catch(
          () => 'status' as const,
        );
        if (typeof read === 'string') return;
        const response = read.find((m) => m.id === message.id && m.method === undefined);
        const result = response?.result as Record<string, unknown> | undefined;
        // A server without prompts (or tools) answers an error: it lists none.
        if (result === undefined) break;
        const listed = result[field];
        if (Array.isArray(listed)) found.push(...listed);
        cursor = typeof result.nextCursor === 'string' ? result.nextCursor : undefined;
        if (cursor === undefined) break;
      }
    }
    replace(entry, items, generation);
  };

  /**
   * Whether `name`'s latest definition in this scope is trusted: it matches its pin, and was not
   * seen differ within the refresh window — unless the pins now accept what was seen (a server that
   * flips back, or shows one definition to the gateway and another to clients, is not taken at
   * its word).
   */
  const accepted = (entry: Seen, kind: DefinitionKind, name: string): boolean => {
    const key = `${kind}\u0000${name}`;
    const pin = deps.pins().get(kind, deps.server, name);
    if (pin === undefined || entry.hashes.get(key) !== pin.hash) return false;
    const differed = entry.differed.get(key);
    return differed === undefined || differed.hash === pin.hash || Date.now() - differed.at > deps.refreshMs;
  };

  /**
   * Whether a call of `name` may go: its latest definition is trusted (or `warn`). Answered at once
   * when what was seen is fresh (the common case: no promise to wait for), else after listing.
   */
  const trusted = (
    request: UpstreamRequest,
    kind: DefinitionKind,
    name: string,
  ): boolean | Promise<boolean> => {
    const warn = deps.onToolChange === 'warn';
    const entry = seen.get(deps.scopeOf(request));
    if (entry !== undefined && fresh(entry)) return accepted(entry, kind, name) || warn;
    return current(request).then((listed) => accepted(listed, kind, name) || warn);
  };

  return {
    seenFor,
    observe,
    accepted,
    trusted,
    announced,
    close() {
      closed = true;
      clearInterval(timer);
    },
  };
}
