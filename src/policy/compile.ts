import type { RouteConfig } from '../config/schema.js';
import { compileGlob, type Glob } from './glob.js';

/** What one name requires: all of `scopes`, because of `rule` (as written in the policy file). */
export interface Requirement {
  readonly scopes: readonly string[];
  /** The policy entry that matched, e.g. `tools.write_file`, `resources."file:///public/**"`. */
  readonly rule: string;
}

/** A compiled `tools` / `resources` / `prompts` / `methods` table. */
export interface NameTable {
  /** The requirement for `name`, or `undefined` when the table does not list it. */
  lookup(name: string): Requirement | undefined;
}

export type Section = 'tools' | 'resources' | 'prompts' | 'methods';

interface Pattern {
  readonly glob: Glob;
  /** Characters before the first wildcard: the longest literal prefix wins. */
  readonly prefixLength: number;
  readonly requirement: Requirement;
}

/**
 * Compiles one table once, at load: exact names go into a map; glob patterns (`*` any characters
 * but `/`, `**` any characters) into linear-time matchers (`./glob.ts`: no regular
 * expression ever sees a name) ordered so that the longest literal prefix wins (ties: the one
 * written first). Exact names always win over patterns. Nothing is built per request.
 */
export function compileTable(
  section: Section,
  table: Readonly<Record<string, string | readonly string[]>>,
): NameTable {
  const exact = new Map<string, Requirement>();
  const patterns: Pattern[] = [];
  for (const [name, required] of Object.entries(table)) {
    const requirement: Requirement = {
      scopes: Object.freeze(typeof required === 'string' ? [required] : [...required]),
      rule: `${section}.${/^[A-Za-z0-9_./-]+$/.test(name) ? name : JSON.stringify(name)}`,
    };
    const wildcard = name.indexOf('*');
    if (wildcard === -1) exact.set(name, requirement);
    else patterns.push({ glob: compileGlob(name), prefixLength: wildcard, requirement });
  }
  // Stable sort: equal prefixes keep the order of the file.
  patterns.sort((a, b) => b.prefixLength - a.prefixLength);
  return {
    lookup(name) {
      const found = exact.get(name);
      if (found !== undefined) return found;
      for (const pattern of patterns) if (pattern.glob.test(name)) return pattern.requirement;
      return undefined;
    },
  };
}

/** A route's policy, compiled. */
export interface CompiledPolicy {
  readonly tools: NameTable;
  readonly resources: NameTable;
  readonly prompts: NameTable;
  readonly methods: NameTable;
  /** For names a table does not list. */
  readonly defaultEffect: 'deny' | 'allow';
  readonly mode: 'enforce' | 'shadow';
}

export function compilePolicy(route: RouteConfig): CompiledPolicy {
  return {
    tools: compileTable('tools', route.tools),
    resources: compileTable('resources', route.resources),
    prompts: compileTable('prompts', route.prompts),
    methods: compileTable('methods', route.methods),
    defaultEffect: route.default,
    mode: route.mode,
  };
}
