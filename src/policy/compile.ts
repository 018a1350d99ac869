import type { RouteConfig } from '../config/schema.js';

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
  readonly regex: RegExp;
  /** Characters before the first wildcard: the longest literal prefix wins. */
  readonly prefixLength: number;
  readonly requirement: Requirement;
}

/**
 * Compiles one table once, at load: exact names go into a map; glob patterns (`*` any characters
 * but `/`, `**` any characters) into regular expressions ordered so that the longest literal
 * prefix wins (ties: the one written first). Exact names always win over patterns. Nothing is
 * built per request.
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
    else patterns.push({ regex: globToRegExp(name), prefixLength: wildcard, requirement });
  }
  // Stable sort: equal prefixes keep the order of the file.
  patterns.sort((a, b) => b.prefixLength - a.prefixLength);
  return {
    lookup(name) {
      const found = exact.get(name);
      if (found !== undefined) return found;
      for (const pattern of patterns) if (pattern.regex.test(name)) return pattern.requirement;
      return undefined;
    },
  };
}

function globToRegExp(glob: string): RegExp {
  let source = '^';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] as string;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        source += '[\\s\\S]*';
        i++;
      } else source += '[^/]*';
    } else source += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`${source}$`, 'u');
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
