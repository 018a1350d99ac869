import { CelScalar, celEnv, isCelError, mapType, parse, plan } from '@bufbuild/cel';
import { RE2JS } from 're2js';

/**
 * A tool's `when` rule (DESIGN.md step 7): a CEL expression over `args` (the call's arguments),
 * `identity` (`subject`, `key`, `scopes`, `claims`, `methods`) and `route`, compiled at load and
 * evaluated per call, failing closed. The library is `@bufbuild/cel` (chosen by measurement,
 * README "Development"): errors are values, and `matches()` runs on re2js, a linear-time engine.
 * CEL has no cost limit here, so the gateway sets its own: comprehensions may not nest more than
 * {@link MAX_NESTING} deep (checked at load), and every read of an argument or identity field
 * during an evaluation is charged against {@link BUDGET}; an evaluation that exhausts it is an
 * error, whatever it returned.
 */

/** Comprehension macros (`all`, `exists`, `map`, `filter`) nested at most this deep. */
export const MAX_NESTING = 2;
/** Field and element reads one evaluation may make. */
export const BUDGET = 100_000;
/** The longest rule accepted. */
export const MAX_RULE_LENGTH = 2_048;
/** Characters of a string that cost one unit of the budget when it is read. */
const STRING_UNIT = 32;
/** Compiled `matches()` patterns kept (patterns may come from arguments: the cache is bounded). */
const MAX_PATTERNS = 256;

/** What a rule is evaluated over. */
export interface ConditionInput {
  readonly args: unknown;
  readonly identity: Readonly<Record<string, unknown>>;
  readonly route: string;
}

/** True: allowed; false: the rule said no; `{ error }`: it could not be evaluated (denied too). */
export type ConditionResult = boolean | { readonly error: string };

export interface Condition {
  readonly source: string;
  evaluate(input: ConditionInput): ConditionResult;
}

/** A rule that does not compile: why, and where in its text (0-based offset). */
export interface ConditionProblem {
  readonly message: string;
  readonly offset: number;
}

const patterns = new Map<string, RE2JS>();
const DYN_MAP = mapType(CelScalar.STRING, CelScalar.DYN);
const ENV = celEnv({
  variables: { args: DYN_MAP, identity: DYN_MAP, route: CelScalar.STRING },
  re2: {
    compile(pattern: string) {
      let compiled = patterns.get(pattern);
      if (compiled === undefined) {
        compiled = RE2JS.compile(pattern);
        if (patterns.size >= MAX_PATTERNS) patterns.clear();
        patterns.set(pattern, compiled);
      }
      const found = compiled;
      return { test: (text: string) => found.matcher(text).find() };
    },
  },
});
const VARIABLES: ReadonlySet<string> = new Set(['args', 'identity', 'route']);

type Ast = ReturnType<typeof parse>;
type Expr = NonNullable<Ast['expr']>;

/** The rule compiled, or why not (unknown variables and nesting are checked here: the library does not). */
export function compileCondition(source: string): Condition | ConditionProblem {
  if (source.length > MAX_RULE_LENGTH)
    return { message: `longer than ${MAX_RULE_LENGTH} characters`, offset: 0 };
  let ast: Ast;
  try {
    ast = parse(source);
  } catch (err) {
    const located = err as {
      rawMessage?: unknown;
      message?: unknown;
      location?: { start?: { offset?: unknown } };
    };
    const offset = located.location?.start?.offset;
    return {
      message: String(located.rawMessage ?? located.message).replace(/^<input>:\d+:\d+: /, ''),
      offset: typeof offset === 'number' ? offset : 0,
    };
  }
  const facts: Facts = { fields: new Set(), variables: new Set(), loops: false };
  const problem = walk(ast.expr, positionsOf(ast), VARIABLES, 0, facts);
  if (problem !== undefined) return problem;
  const { fields } = facts;
  const folded = new Map([...fields].map((field) => [field.toLowerCase(), field]));
  const readsIdentity = facts.variables.has('identity');
  const run = plan(ENV, ast);
  return {
    source,
    evaluate(input) {
      // `Recursive` where the rule reads `recursive`: the rule would not see it, and a
      // case-insensitive decoder upstream (Go's encoding/json) would take it for the field.
      const variant = caseVariant(input.args, fields, folded);
      if (variant !== undefined)
        return { error: 'an argument key differs from a field the rule reads only in case' };
      const budget = { left: BUDGET };
      // Without a comprehension a rule reads a fixed number of fields, each once: only loops need
      // the metering (and its proxies' cost). What the rule never names is not handed to it.
      const meter = (value: unknown) => (facts.loops ? metered(value, budget) : value);
      let result: unknown;
      try {
        result = run({
          args: meter(input.args ?? {}),
          ...(readsIdentity ? { identity: meter(input.identity) } : {}),
          route: input.route,
        } as never);
      } catch (err) {
        return { error: budget.left < 0 ? 'evaluation budget exceeded' : errorKind((err as Error).message) };
      }
      // Exhausted is an error whatever came back: CEL's `||` and `&&` absorb errors.
      if (budget.left < 0) return { error: 'evaluation budget exceeded' };
      if (isCelError(result)) return { error: errorKind((result as { message: string }).message) };
      if (typeof result !== 'boolean') return { error: 'the rule did not evaluate to a boolean' };
      return result;
    },
  };
}

/**
 * What kind of evaluation error a CEL message names, as a fixed phrase: the messages themselves
 * can quote the caller's values (`int(args.x)` says "Cannot convert <value> to a BigInt"), and
 * the audit record says why a rule failed without ever carrying an argument.
 */
function errorKind(message: string): string {
  for (const [pattern, kind] of ERROR_KINDS) if (pattern.test(message)) return kind;
  return 'evaluation error';
}

const ERROR_KINDS: readonly (readonly [RegExp, string])[] = [
  [/^field not found|no such key|no such field/i, 'a field the rule reads is missing'],
  [/no matching overload/i, 'an operation applied to the wrong types'],
  [/out of bounds|index/i, 'an index out of range'],
  [/convert|overflow|parse|invalid syntax/i, 'a conversion failed'],
  [/divi(de|sion) by zero|modulus by zero/i, 'division by zero'],
];

export function isConditionProblem(value: Condition | ConditionProblem): value is ConditionProblem {
  return 'offset' in value;
}

class BudgetExceeded extends Error {}

/** The value with every object and array read through a proxy charging one unit per field read. */
function metered(value: unknown, budget: { left: number }): unknown {
  const proxies = new WeakMap<object, unknown>();
  const wrap = (inner: unknown): unknown => {
    if (inner === null || typeof inner !== 'object') return inner;
    const known = proxies.get(inner);
    if (known !== undefined) return known;
    const proxy = new Proxy(inner, {
      get(target, key, receiver) {
        const value = Reflect.get(target, key, receiver);
        // A string costs by its length too: a rule reading a megabyte over and over is stopped.
        budget.left -= typeof value === 'string' ? 1 + Math.ceil(value.length / STRING_UNIT) : 1;
        if (budget.left < 0) throw new BudgetExceeded('evaluation budget exceeded');
        return wrap(value);
      },
    });
    proxies.set(inner, proxy);
    return proxy;
  };
  return wrap(value);
}

function positionsOf(ast: Ast): Readonly<Record<string, number>> {
  const positions = (ast as { sourceInfo?: { positions?: Record<string, number> } }).sourceInfo?.positions;
  return positions ?? {};
}

/** What a rule reads: the fields it selects, the variables it names, whether it loops. */
interface Facts {
  readonly fields: Set<string>;
  readonly variables: Set<string>;
  loops: boolean;
}

/** Unknown identifiers and nesting too deep, with the offset of the node that has them; `facts` gathered. */
function walk(
  expr: Expr | undefined,
  positions: Readonly<Record<string, number>>,
  scope: ReadonlySet<string>,
  depth: number,
  facts: Facts,
): ConditionProblem | undefined {
  if (expr === undefined) return undefined;
  const kind = expr.exprKind;
  const at = positions[String(expr.id)] ?? 0;
  const all = (
    items: readonly (Expr | undefined)[],
    inner = scope,
    nested = depth,
  ): ConditionProblem | undefined => {
    for (const item of items) {
      const problem = walk(item, positions, inner, nested, facts);
      if (problem !== undefined) return problem;
    }
    return undefined;
  };
  switch (kind.case) {
    case 'identExpr':
      // A comprehension's own variable may shadow one: counting it as read costs only a conversion.
      if (VARIABLES.has(kind.value.name)) facts.variables.add(kind.value.name);
      return scope.has(kind.value.name)
        ? undefined
        : {
            message: `unknown variable '${kind.value.name}' (rules read args, identity and route)`,
            offset: at,
          };
    case 'selectExpr':
      facts.fields.add(kind.value.field);
      return walk(kind.value.operand, positions, scope, depth, facts);
    case 'callExpr':
      return all([kind.value.target, ...kind.value.args]);
    case 'listExpr':
      return all(kind.value.elements);
    case 'structExpr':
      return all(
        kind.value.entries.flatMap((entry) => [
          entry.keyKind.case === 'mapKey' ? entry.keyKind.value : undefined,
          entry.value,
        ]),
      );
    case 'comprehensionExpr': {
      const comprehension = kind.value;
      facts.loops = true;
      if (depth + 1 > MAX_NESTING)
        return { message: `comprehensions nested deeper than ${MAX_NESTING}`, offset: at };
      const outer = all([comprehension.iterRange, comprehension.accuInit]);
      if (outer !== undefined) return outer;
      const inner = new Set(
        [...scope, comprehension.iterVar, comprehension.iterVar2, comprehension.accuVar].filter(
          (name): name is string => typeof name === 'string' && name !== '',
        ),
      );
      return all(
        [comprehension.loopCondition, comprehension.loopStep, comprehension.result],
        inner,
        depth + 1,
      );
    }
    default:
      return undefined;
  }
}

/**
 * A key of the arguments (at any depth) that equals, after case folding, a field the rule reads
 * but is not spelled as it; undefined when none. Bounded by the request body's size.
 */
function caseVariant(
  value: unknown,
  fields: ReadonlySet<string>,
  folded: ReadonlyMap<string, string>,
): string | undefined {
  if (folded.size === 0) return undefined;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const next = stack.pop();
    if (typeof next !== 'object' || next === null) continue;
    if (Array.isArray(next)) {
      for (const item of next) stack.push(item);
      continue;
    }
    for (const [key, inner] of Object.entries(next)) {
      if (!fields.has(key) && folded.has(key.toLowerCase())) return key;
      stack.push(inner);
    }
  }
  return undefined;
}
