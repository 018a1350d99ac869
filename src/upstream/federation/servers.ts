import { globsOverlap } from '../../policy/glob.js';
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
 * beside others or begin one another, and resource patterns of two servers that overlap (a URI
 * both match would have two owners).
 */
export function serversProblems(servers: Readonly<Record<string, ServerEntry>>): string[] {
  const names = Object.keys(servers);
  if (names.length === 0) return ['servers: must name at least one server'];
  const problems: string[] = [];
  for (const name of names)
    if (!SERVER_NAME.test(name))
      problems.push(`servers.${name}: a server name must match ^[a-z][a-z0-9-]{0,31}$`);
  problems.push(...prefixProblems(prefixesOf(servers)));
  const declared = Object.entries(servers).flatMap(([name, entry]) =>
    (entry.resources ?? []).map((pattern) => ({ name, pattern })),
  );
  for (let i = 0; i < declared.length; i++)
    for (let j = i + 1; j < declared.length; j++) {
      const a = declared[i] as { name: string; pattern: string };
      const b = declared[j] as { name: string; pattern: string };
      if (a.name !== b.name && globsOverlap(a.pattern, b.pattern))
        problems.push(
          `servers.${b.name}.resources: ${JSON.stringify(b.pattern)} overlaps servers.${a.name}'s ${JSON.stringify(a.pattern)} (a URI both match would have two owners)`,
        );
    }
  return problems;
}
