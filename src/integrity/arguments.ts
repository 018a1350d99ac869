import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { Ajv2019 } from 'ajv/dist/2019.js';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { RE2JS } from 're2js';
import type { Definition } from './definitions.js';

/**
 * Arguments checked against the **pinned** definition (DESIGN.md step 7): a tool's `inputSchema`
 * with Ajv — JSON Schema 2020-12 unless the schema names draft-07 or 2019-09 — and a prompt's
 * declared arguments. Upstream-written schemas are hostile input: their `pattern`s run on re2js (a
 * linear-time engine: no catastrophic backtracking), nothing is fetched (a `$ref` that does not
 * resolve inside the schema makes it unusable), and a schema that cannot be compiled is unusable —
 * its tool's calls are refused, never forwarded unchecked. Validators are compiled once per pinned
 * definition.
 */

/** Problems named to a caller at most. */
const MAX_PROBLEMS = 20;

/** What an invalid call is told: instance paths and keywords, never the caller's values. */
export type ArgumentProblems = readonly string[];

/** A linear-time engine for `pattern` and `patternProperties` (RE2 syntax: no backreferences or lookaround). */
const linear = Object.assign(
  (pattern: string, flags: string) => {
    const compiled = RE2JS.compile(pattern, flags.includes('i') ? RE2JS.CASE_INSENSITIVE : 0);
    return {
      test: (text: string) => compiled.matcher(text).find(),
      // Ajv keeps one compiled pattern per `toString()`: without its own, every pattern would be
      // "[object Object]" and all of a schema's patterns would share the first one compiled.
      toString: () => `/${pattern}/${flags}`,
    };
  },
  { code: 'linearRegExp' },
);

// The first error only: every error of a 200 000-element array would make the answer (and the
// log line) megabytes long, and Ajv's own collection of them can exhaust the stack.
const OPTIONS = {
  allErrors: false,
  strict: false,
  validateFormats: false,
  code: { regExp: linear },
} as const;
const engines = {
  draft7: new Ajv(OPTIONS),
  draft2019: new Ajv2019(OPTIONS),
  draft2020: new Ajv2020(OPTIONS),
};

/** A compiled pinned schema, or why it cannot be used. */
type Compiled =
  | { readonly validate: ValidateFunction; readonly declared: ReadonlySet<string> | undefined }
  | { readonly unusable: string };

/** Compiled schemas, by the pinned schema object (a reload reads new objects: nothing accumulates). */
const compiled = new WeakMap<object, Compiled>();

function compile(schema: unknown, field: 'inputSchema' | 'outputSchema'): Compiled {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
    return { unusable: `no ${field}` };
  let entry = compiled.get(schema);
  if (entry !== undefined) return entry;
  const dialect = String((schema as { $schema?: unknown }).$schema ?? '');
  const engine =
    dialect.includes('draft-07') || dialect.includes('draft-06')
      ? engines.draft7
      : dialect.includes('2019-09')
        ? engines.draft2019
        : engines.draft2020;
  const recursive = recursiveAlternative(schema, '#', false);
  if (recursive !== undefined)
    entry = {
      unusable: `the pinned ${field} refers back to itself (${recursive}) inside anyOf/oneOf: its validation can take exponential time`,
    };
  else
    try {
      // Each pinned schema stands alone: without its `$id` none clashes with another's, and it
      // leaves Ajv's cache once compiled (a reload compiles the pins again; nothing accumulates).
      const { $id: _, ...standalone } = schema as Record<string, unknown>;
      const validate = engine.compile(standalone);
      engine.removeSchema(standalone);
      const properties = (schema as { properties?: unknown }).properties;
      const closed = (schema as { additionalProperties?: unknown }).additionalProperties !== undefined;
      entry = {
        validate,
        declared:
          typeof properties === 'object' && properties !== null && !closed
            ? new Set(Object.keys(properties))
            : undefined,
      };
    } catch (err) {
      entry = { unusable: `the pinned ${field} cannot be used (${(err as Error).message.slice(0, 200)})` };
    }
  compiled.set(schema, entry);
  return entry;
}

/** Why a tool definition's schema cannot be used to validate calls (they are refused); undefined when it can. */
export function schemaProblem(definition: Definition): string | undefined {
  const entry = compile(definition.inputSchema, 'inputSchema');
  return 'unusable' in entry ? entry.unusable : undefined;
}

/**
 * The problems of a tool call's `arguments` against the pinned definition; empty when valid.
 * `strict`: top-level arguments the schema does not declare are invalid (where it says nothing of
 * `additionalProperties`).
 */
export function toolArgumentProblems(
  definition: Definition,
  args: unknown,
  strict: boolean,
): ArgumentProblems {
  const entry = compile(definition.inputSchema, 'inputSchema');
  if ('unusable' in entry) return [entry.unusable];
  const value = args ?? {};
  const problems: string[] = [];
  if (
    strict &&
    entry.declared !== undefined &&
    typeof value === 'object' &&
    value !== null &&
    !Array.isArray(value)
  )
    for (const key of Object.keys(value))
      if (!entry.declared.has(key))
        problems.push(`/${escapePointer(key)}: not declared by the tool (additionalProperties)`);
  problems.push(...validated(entry.validate, value, 'inputSchema'));
  return problems.slice(0, MAX_PROBLEMS);
}

/**
 * The problems of a tool result's `structuredContent` against the pinned `outputSchema`
 * (`validateResults`); undefined when the pinned tool declares none (nothing to hold it to). A
 * result without `structuredContent` breaks a declared schema too: the specification asks servers
 * that declare one to provide it. Named by path and keyword, never by the server's values.
 */
export function resultProblems(
  definition: Definition,
  structuredContent: unknown,
): ArgumentProblems | undefined {
  if (definition.outputSchema === undefined) return undefined;
  const entry = compile(definition.outputSchema, 'outputSchema');
  if ('unusable' in entry) return [entry.unusable];
  if (structuredContent === undefined)
    return ['/: structuredContent missing (the tool declares an outputSchema)'];
  return validated(entry.validate, structuredContent, 'outputSchema');
}

/** One validation, its errors described (at most MAX_PROBLEMS); never a throw. */
function validated(validate: ValidateFunction, value: unknown, field: string): string[] {
  let valid: boolean;
  try {
    valid = validate(value) === true;
  } catch {
    // A hostile schema (recursion through anyOf) can exhaust the stack: nothing passes unchecked.
    return [`the pinned ${field} could not be evaluated for this value`];
  }
  if (valid) return [];
  return (validate.errors ?? []).slice(0, MAX_PROBLEMS).map(describeError);
}

/** A prompt's arguments: declared names only, the required ones present, every value a string. */
export function promptArgumentProblems(definition: Definition, args: unknown): ArgumentProblems {
  const declared = Array.isArray(definition.arguments) ? definition.arguments : [];
  const names = new Map<string, boolean>();
  for (const argument of declared) {
    const { name, required } = (argument ?? {}) as { name?: unknown; required?: unknown };
    if (typeof name === 'string') names.set(name, required === true);
  }
  const value = (args ?? {}) as Record<string, unknown>;
  if (typeof value !== 'object' || Array.isArray(value)) return ['arguments: must be an object'];
  const problems: string[] = [];
  for (const [name, given] of Object.entries(value)) {
    if (!names.has(name)) problems.push(`${name}: not declared by the prompt`);
    else if (typeof given !== 'string') problems.push(`${name}: must be a string`);
  }
  for (const [name, required] of names)
    if (required && value[name] === undefined) problems.push(`${name}: required`);
  return problems;
}

/** One Ajv error as the caller may read it: where and which rule, never the value. */
function describeError(error: ErrorObject): string {
  const where = error.instancePath === '' ? '/' : error.instancePath;
  const params = error.params as Record<string, unknown>;
  const named =
    typeof params.missingProperty === 'string'
      ? ` (${params.missingProperty})`
      : typeof params.additionalProperty === 'string'
        ? ` (${params.additionalProperty})`
        : '';
  return `${where}: ${error.keyword}${named}`;
}

function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/**
 * A `$ref` inside an `anyOf` or `oneOf` that points back to the schema holding it (itself or an
 * ancestor): each level of a nested argument then tries every alternative again, and a hostile
 * schema makes validation exponential in the arguments' depth. Undefined when there is none. (A
 * cycle through named `$defs` is not found here: the arguments' depth, `limits.maxJsonDepth`, and
 * the review at pin time bound it.)
 */
function recursiveAlternative(schema: unknown, at: string, inAlternative: boolean): string | undefined {
  if (typeof schema !== 'object' || schema === null) return undefined;
  if (Array.isArray(schema)) {
    for (const [i, item] of schema.entries()) {
      const found = recursiveAlternative(item, `${at}/${i}`, inAlternative);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const [key, value] of Object.entries(schema)) {
    if (
      (key === '$ref' || key === '$dynamicRef' || key === '$recursiveRef') &&
      typeof value === 'string' &&
      inAlternative
    ) {
      const target = value.startsWith('#') ? value : undefined;
      if (target === undefined) continue;
      // `#`, or a pointer to a schema this one sits inside.
      if (target === '#' || at === target || at.startsWith(`${target}/`)) return value;
    }
    const found = recursiveAlternative(
      value,
      `${at}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`,
      inAlternative || key === 'anyOf' || key === 'oneOf',
    );
    if (found !== undefined) return found;
  }
  return undefined;
}
