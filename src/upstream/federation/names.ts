/**
 * Names on a federated route (DESIGN.md "Upstreams" → Federation, Names): each server's tools
 * and prompts are exposed as `<prefix><name>`. Prefixes are prefix-free — none begins another —
 * so an exposed name belongs to exactly one server, and no server can publish a name that falls
 * under another's prefix and so inherits its grants. The policy's `tools:` and `prompts:` name
 * exposed names (`github__*: repo:read` works with the existing matcher).
 */

/** A server's name in `servers:`. */
export const SERVER_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/** The specification's tool-name rule: an exposed name outside it is hidden and refused. */
export const EXPOSED_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

/** Where an exposed name comes from: the server and the name that server knows it by. */
export interface UpstreamName {
  readonly server: string;
  readonly name: string;
}

/** Each server's prefix: the configured one, else `<server>__`. */
export function prefixesOf(
  servers: Readonly<Record<string, { readonly prefix?: string | undefined }>>,
): ReadonlyMap<string, string> {
  return new Map(Object.entries(servers).map(([server, spec]) => [server, spec.prefix ?? `${server}__`]));
}

/**
 * What makes a set of prefixes unusable, as load errors: an empty prefix beside another server
 * (its names would overlap every other server's), and a prefix that begins another's (its
 * server's names could shadow the other's).
 */
export function prefixProblems(prefixes: ReadonlyMap<string, string>): string[] {
  const problems: string[] = [];
  const entries = [...prefixes];
  for (const [server, prefix] of entries) {
    if (prefix === '' && entries.length > 1)
      problems.push(`servers.${server}.prefix: must not be empty on a route with more than one server`);
    if (prefix !== '' && !/^[A-Za-z0-9_.-]+$/.test(prefix))
      problems.push(
        `servers.${server}.prefix: must use only the characters of a tool name (A-Z a-z 0-9 _ . -)`,
      );
  }
  for (const [server, prefix] of entries)
    for (const [other, otherPrefix] of entries)
      if (server < other && (prefix.startsWith(otherPrefix) || otherPrefix.startsWith(prefix)))
        problems.push(
          `servers.${server}.prefix and servers.${other}.prefix: ${JSON.stringify(prefix)} and ${JSON.stringify(otherPrefix)} — one begins the other, so a name of one server could fall under the other's`,
        );
  return problems;
}

/** The exposed names of a route's servers, both ways. */
export class ExposedNames {
  constructor(private readonly prefixes: ReadonlyMap<string, string>) {}

  /** The name a server's tool or prompt is exposed as; undefined when that name is hidden (outside the tool-name rule). */
  expose(server: string, name: string): string | undefined {
    const prefix = this.prefixes.get(server);
    if (prefix === undefined) return undefined;
    const exposed = `${prefix}${name}`;
    return EXPOSED_NAME.test(exposed) ? exposed : undefined;
  }

  /**
   * The server and upstream name an exposed name stands for; undefined for a name no server can
   * have exposed (it answers as a name no policy entry grants: `method_denied`).
   */
  resolve(exposed: string): UpstreamName | undefined {
    if (!EXPOSED_NAME.test(exposed)) return undefined;
    // Prefix-free: at most one prefix begins the name.
    for (const [server, prefix] of this.prefixes)
      if (exposed.startsWith(prefix) && exposed.length > prefix.length)
        return { server, name: exposed.slice(prefix.length) };
    return undefined;
  }
}
