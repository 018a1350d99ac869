import { decodeHeaderValue } from '../jsonrpc/mirrored-headers.js';

/** One argument a tool mirrors into a header (`x-mcp-header` in its input schema). */
export interface ParamDeclaration {
  /** The `properties` keys from the schema's root to the argument. */
  readonly path: readonly string[];
  /** The header, lower-cased as Node delivers it: `mcp-param-<name>`. */
  readonly header: string;
  /** The name as the schema spells it (for messages). */
  readonly name: string;
  readonly type: 'string' | 'integer' | 'boolean';
}

/** A schema's declarations, or why they are unusable (a conforming client then lists no such tool). */
export type ParamDeclarations = readonly ParamDeclaration[] | { readonly invalid: string };

/** RFC 9110 `token`: the characters a header name may hold. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Keywords whose values are subschemas an annotation must not hide in (the spec: only a chain of `properties`). */
const SUBSCHEMA_KEYWORDS: ReadonlySet<string> = new Set([
  'items',
  'prefixItems',
  'contains',
  'additionalProperties',
  'unevaluatedProperties',
  'unevaluatedItems',
  'propertyNames',
  'patternProperties',
  'dependentSchemas',
  'oneOf',
  'anyOf',
  'allOf',
  'not',
  'if',
  'then',
  'else',
  '$defs',
  'definitions',
]);
/** Deeper schemas are not walked (pinned definitions come from depth-limited answers anyway). */
const MAX_DEPTH = 64;
/** Safe integers only: a larger one has no exact header spelling (the spec's range). */
const MAX_SAFE = Number.MAX_SAFE_INTEGER;

const cache = new WeakMap<object, ParamDeclarations>();

/**
 * The arguments a pinned input schema mirrors into `Mcp-Param-*` headers (2026-07-28, "Custom
 * Headers from Tool Parameters"): each `x-mcp-header` on a property reached from the root through
 * `properties` alone, of type string, integer or boolean, its name an HTTP token unique without
 * regard to case. An annotation anywhere else — on the root, under `items`, a composition, `$ref`
 * targets — or breaking those rules makes the declarations unusable, as it makes the tool invalid
 * for clients. Computed once per pinned schema.
 */
export function paramDeclarations(inputSchema: unknown): ParamDeclarations {
  if (typeof inputSchema !== 'object' || inputSchema === null) return [];
  const known = cache.get(inputSchema);
  if (known !== undefined) return known;
  const found: ParamDeclaration[] = [];
  const problem = walk(inputSchema, [], true, 0, found);
  const names = new Set<string>();
  let result: ParamDeclarations = found;
  if (problem !== undefined) result = { invalid: problem };
  else
    for (const declaration of found) {
      if (names.has(declaration.header)) {
        result = { invalid: `x-mcp-header ${declaration.name} is declared twice (case-insensitively)` };
        break;
      }
      names.add(declaration.header);
    }
  cache.set(inputSchema, result);
  return result;
}

/** Collects the declarations under `schema`; a problem ends the walk. */
function walk(
  schema: unknown,
  path: readonly string[],
  reachable: boolean,
  depth: number,
  found: ParamDeclaration[],
): string | undefined {
  if (typeof schema !== 'object' || schema === null) return undefined;
  if (depth > MAX_DEPTH) return 'the schema nests too deep to be read';
  if (Array.isArray(schema)) {
    for (const item of schema) {
      const problem = walk(item, path, false, depth + 1, found);
      if (problem !== undefined) return problem;
    }
    return undefined;
  }
  const node = schema as Record<string, unknown>;
  const annotation = node['x-mcp-header'];
  if (annotation !== undefined) {
    const where = path.length === 0 ? 'the root' : `/${path.join('/')}`;
    if (!reachable || path.length === 0)
      return `x-mcp-header at ${where} is not on a property reached through properties alone`;
    if (typeof annotation !== 'string' || !TOKEN.test(annotation))
      return `x-mcp-header at ${where} is not an HTTP token`;
    const type = node.type;
    if (type !== 'string' && type !== 'integer' && type !== 'boolean')
      return `x-mcp-header at ${where} is on a ${JSON.stringify(type)}, not a string, integer or boolean`;
    found.push({ path, header: `mcp-param-${annotation.toLowerCase()}`, name: annotation, type });
  }
  for (const [key, value] of Object.entries(node)) {
    if (key === 'properties' && typeof value === 'object' && value !== null && !Array.isArray(value)) {
      for (const [property, sub] of Object.entries(value as Record<string, unknown>)) {
        const problem = walk(sub, [...path, property], reachable, depth + 1, found);
        if (problem !== undefined) return problem;
      }
    } else if (SUBSCHEMA_KEYWORDS.has(key)) {
      // `patternProperties`, `$defs`, … hold schemas by name: their values are walked, unreachable.
      const subs =
        key === 'patternProperties' || key === 'dependentSchemas' || key === '$defs' || key === 'definitions'
          ? typeof value === 'object' && value !== null
            ? Object.values(value as Record<string, unknown>)
            : []
          : [value];
      for (const sub of subs) {
        const problem = walk(sub, path, false, depth + 1, found);
        if (problem !== undefined) return problem;
      }
    }
  }
  return undefined;
}

/**
 * Where a call's `Mcp-Param-*` headers disagree with its arguments under the pinned declarations:
 * the header names at fault (never a value), empty when they agree. A declared argument present in
 * the body must be mirrored (`required`: the modern protocol, where clients must send it; else only
 * a header sent is checked) with the same value — base64 sentinel decoded, integers compared as
 * numbers; a declared header whose argument is absent or null is refused too, since a router
 * reading it would see a value the body does not hold. Undeclared `Mcp-Param-*` headers are not
 * the gateway's to judge (the spec: intermediaries forward them).
 */
export function paramMismatches(
  declarations: readonly ParamDeclaration[],
  args: unknown,
  headers: Readonly<Record<string, string>>,
  required: boolean,
): string[] {
  const wrong: string[] = [];
  for (const declaration of declarations) {
    const value = valueAt(args, declaration.path);
    const sent = headers[declaration.header];
    const label = `Mcp-Param-${declaration.name}`;
    if (value === undefined || value === null) {
      if (sent !== undefined) wrong.push(`${label} (no such argument)`);
      continue;
    }
    if (sent === undefined) {
      if (required) wrong.push(`${label} (missing)`);
      continue;
    }
    if (!agrees(decodeHeaderValue(sent), value)) wrong.push(label);
  }
  return wrong;
}

/** The instance value at a `properties` path of the arguments (undefined when any step is missing). */
function valueAt(args: unknown, path: readonly string[]): unknown {
  let at: unknown = args;
  for (const key of path) {
    if (typeof at !== 'object' || at === null || Array.isArray(at)) return undefined;
    if (!Object.hasOwn(at, key)) return undefined;
    at = (at as Record<string, unknown>)[key];
  }
  return at;
}

/** Whether a decoded header spells the argument: strings exactly, booleans lower-case, integers numerically. */
function agrees(header: string | undefined, value: unknown): boolean {
  if (header === undefined) return false;
  if (typeof value === 'string') return header === value;
  if (typeof value === 'boolean') return header === String(value);
  if (typeof value === 'number')
    return (
      Number.isInteger(value) &&
      Math.abs(value) <= MAX_SAFE &&
      /^-?\d{1,16}(\.0+)?$/.test(header) &&
      Number(header) === value
    );
  return false;
}
