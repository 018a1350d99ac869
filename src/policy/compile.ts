import { entryScopes, type RouteConfig, type ToolEntry } from '../config/schema.js';
import { type Condition, compileCondition, isConditionProblem } from './conditions.js';
import { compileGlob, type Glob } from './glob.js';

/** What one name requires: all of `scopes`, because of `rule` (as written in the policy file). */
export interface Requirement {
  readonly scopes: readonly string[];
  /** The policy entry that matched, e.g. `tools.write_file`, `resources."file:///public/**"`. */
  readonly rule: string;
  /** A tool entry's `when` rule: the call's arguments must satisfy it too. */
  readonly when?: Condition;
  /** A tool entry's `confirm`: who must say yes to each call before it is forwarded. */
  readonly confirm?: ConfirmBy;
}

/** Who says yes to a `confirm` tool's calls: the caller, or an approver (another person). */
export type ConfirmBy = 'caller' | 'approver';

/** A compiled `tools` / `resources` / `prompts` / `methods` table. */
export interface NameTable {
  /** The requirement for `name`, or `undefined` when the table does not list it. */
  lookup(name: string): Requirement | undefined;
  /** Whether any entry has a `when` rule (a call is looked up again only then). */
  readonly conditional: boolean;
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
export function compileTable(section: Section, table: Readonly<Record<string, ToolEntry>>): NameTable {
  const exact = new Map<string, Requirement>();
  const patterns: Pattern[] = [];
  for (const [name, entry] of Object.entries(table)) {
    const object =
      typeof entry === 'object' && !Array.isArray(entry)
        ? (entry as { when?: string; confirm?: ConfirmBy })
        : undefined;
    const source = object?.when;
    // Validated at load (`config/schema.ts`): a rule that does not compile never gets here.
    const when = source === undefined ? undefined : compileCondition(source);
    if (when !== undefined && isConditionProblem(when))
      throw new Error(`tools.${name}.when: ${when.message}`);
    const requirement: Requirement = {
      scopes: Object.freeze([...entryScopes(entry)]),
      rule: `${section}.${/^[A-Za-z0-9_./-]+$/.test(name) ? name : JSON.stringify(name)}`,
      ...(when === undefined ? {} : { when }),
      ...(object?.confirm === undefined ? {} : { confirm: object.confirm }),
    };
    const wildcard = name.indexOf('*');
    if (wildcard === -1) exact.set(name, requirement);
    else patterns.push({ glob: compileGlob(name), prefixLength: wildcard, requirement });
  }
  // Stable sort: equal prefixes keep the order of the file.
  patterns.sort((a, b) => b.prefixLength - a.prefixLength);
  return {
    conditional: [...exact.values(), ...patterns.map((p) => p.requirement)].some((r) => r.when !== undefined),
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
  /** The route's path (what a `when` rule reads as `route`). */
  readonly route?: string;
}

export function compilePolicy(route: RouteConfig): CompiledPolicy {
  return {
    tools: compileTable('tools', route.tools),
    resources: compileTable('resources', route.resources),
    prompts: compileTable('prompts', route.prompts),
    methods: compileTable('methods', route.methods),
    defaultEffect: route.default,
    mode: route.mode,
    route: route.route,
  };
}
