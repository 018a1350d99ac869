import { compileGlob, type Glob } from '../../policy/glob.js';
import { canonicalResourceTemplate, canonicalResourceUri } from '../../policy/uri.js';

/** Where a resource URI (or a completion's URI template) goes. */
export type Owner =
  | { readonly server: string }
  /** Advertised by two servers (or matched by two servers' templates): refused as not found, logged. */
  | { readonly conflict: readonly string[] }
  | undefined;

/**
 * URIs remembered per server (what it advertised): beyond, that server's own least recently
 * advertised are forgotten — never another server's. One budget for the route would let a server
 * that advertises more than it push another's URIs out, then advertise them as its own: the sole
 * advertiser, it would own them.
 */
const MAX_ADVERTISED_PER_SERVER = 100_000;
/** Templates remembered per server. */
const MAX_TEMPLATES = 1_000;

interface Template {
  readonly template: string;
  readonly glob: Glob;
}

/**
 * Who owns a resource URI on a federated route (DESIGN.md "Upstreams" → Federation, Resources).
 * URIs are never renamed (tool results embed them), so a read routes on the canonical URI:
 * 1. a server's declared `resources` patterns win (they cannot overlap: a load error);
 * 2. else the server that advertised the URI in `resources/list` — two that did are a conflict;
 * 3. else the server whose advertised template matches it — two are a conflict;
 * 4. else no one: resource not found.
 * What servers advertise is learned from every list answer the route merges (any caller's: the
 * policy, not ownership, decides who may read).
 */
export class ResourceOwners {
  /** By canonical URI: the servers that advertised it. */
  private readonly advertised = new Map<string, Set<string>>();
  /** By server: the URIs it advertised, least recently advertised first. */
  private readonly learned = new Map<string, Set<string>>();
  private readonly templates = new Map<string, Template[]>();

  constructor(private readonly declared: ReadonlyMap<string, readonly Glob[]>) {}

  /** Remembers the URIs of one server's `resources/list` page. */
  learnResources(server: string, items: readonly unknown[]): void {
    let mine = this.learned.get(server);
    if (mine === undefined) {
      mine = new Set();
      this.learned.set(server, mine);
    }
    for (const item of items) {
      const uri = canonicalOf(item, 'uri', canonicalResourceUri);
      if (uri === undefined) continue;
      // Advertised again: now its most recent.
      if (mine.delete(uri)) {
        mine.add(uri);
        continue;
      }
      if (mine.size >= MAX_ADVERTISED_PER_SERVER) {
        const [oldest] = mine;
        if (oldest !== undefined) this.forget(server, oldest, mine);
      }
      mine.add(uri);
      let servers = this.advertised.get(uri);
      if (servers === undefined) {
        servers = new Set();
        this.advertised.set(uri, servers);
      }
      servers.add(server);
    }
  }

  /** Forgets that `server` advertised `uri` (its budget is full). */
  private forget(server: string, uri: string, mine: Set<string>): void {
    mine.delete(uri);
    const servers = this.advertised.get(uri);
    servers?.delete(server);
    if (servers?.size === 0) this.advertised.delete(uri);
  }

  /** Remembers the templates of one server's `resources/templates/list` page (a first page replaces). */
  learnTemplates(server: string, items: readonly unknown[], firstPage: boolean): void {
    const known = firstPage ? [] : [...(this.templates.get(server) ?? [])];
    for (const item of items) {
      const template = canonicalOf(item, 'uriTemplate', canonicalResourceTemplate);
      if (template === undefined || known.length >= MAX_TEMPLATES) continue;
      if (!known.some((t) => t.template === template))
        known.push({ template, glob: compileGlob(templateGlob(template)) });
    }
    this.templates.set(server, known);
  }

  /** The owner of a canonical resource URI. */
  ownerOf(uri: string): Owner {
    for (const [server, patterns] of this.declared) if (patterns.some((p) => p.test(uri))) return { server };
    const advertised = this.advertised.get(uri);
    if (advertised !== undefined) return decide([...advertised]);
    const matching: string[] = [];
    for (const [server, templates] of this.templates)
      if (templates.some((t) => t.glob.test(uri))) matching.push(server);
    return matching.length === 0 ? undefined : decide(matching);
  }

  /** The owner of a URI template a `completion/complete` names: the server that advertised it. */
  ownerOfTemplate(template: string): Owner {
    for (const [server, patterns] of this.declared)
      if (patterns.some((p) => p.test(template))) return { server };
    const servers: string[] = [];
    for (const [server, templates] of this.templates)
      if (templates.some((t) => t.template === template)) servers.push(server);
    return servers.length === 0 ? this.ownerOf(template) : decide(servers);
  }
}

function decide(servers: readonly string[]): Owner {
  return servers.length === 1 ? { server: servers[0] as string } : { conflict: servers };
}

function canonicalOf(
  item: unknown,
  key: 'uri' | 'uriTemplate',
  canonical: (value: string) => string | undefined,
): string | undefined {
  if (typeof item !== 'object' || item === null) return undefined;
  const value = (item as Record<string, unknown>)[key];
  return typeof value === 'string' ? canonical(value) : undefined;
}

/**
 * An RFC 6570 template as a policy glob: each expression stands for what it can expand to — `*`
 * (no `/`) for simple and most operators, `**` for reserved (`{+…}`, `{#…}`), path (`{/…}`) and
 * exploded ones, which can carry `/`. Literal `*` in a template is a wildcard too: matching too much only makes
 * a URI's owner ambiguous (refused), never another server's.
 */
export function templateGlob(template: string): string {
  return template.replace(/\{([^}]*)\}/g, (_whole, expression: string) =>
    /^[+#/]/.test(expression) || expression.includes('*') ? '**' : '*',
  );
}
