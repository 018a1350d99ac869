import { prefixesOf, prefixProblems, SERVER_NAME } from './names.js';

/** What a federated route's `servers:` entry says, as far as names and routing go. */
export interface ServerEntry {
  readonly prefix?: string | undefined;
  /** Resource URI patterns this server owns: its URIs route to it whatever others advertise. */
  readonly resources?: readonly string[] | undefined;
}

/**
 * What makes a route's `servers:` unusable, as load errors (DESIGN.md "Upstreams" → Federation):
 * a server name outside `^[a-z][a-z0-9-]{0,31}$`, no server at all, prefixes that are empty
 * beside others or begin one another, and one resource pattern declared by two servers (a URI it
 * matches would have two owners).
 */
export function serversProblems(servers: Readonly<Record<string, ServerEntry>>): string[] {
  const names = Object.keys(servers);
  if (names.length === 0) return ['servers: must name at least one server'];
  const problems: string[] = [];
  for (const name of names)
    if (!SERVER_NAME.test(name))
      problems.push(`servers.${name}: a server name must match ^[a-z][a-z0-9-]{0,31}$`);
  problems.push(...prefixProblems(prefixesOf(servers)));
  const owners = new Map<string, string>();
  for (const [name, entry] of Object.entries(servers))
    for (const pattern of entry.resources ?? []) {
      const owner = owners.get(pattern);
      if (owner !== undefined && owner !== name)
        problems.push(
          `servers.${name}.resources: ${JSON.stringify(pattern)} is declared by servers.${owner} too`,
        );
      owners.set(pattern, name);
    }
  return problems;
}
