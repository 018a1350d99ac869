import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument, Scalar, visit } from 'yaml';
import type { z } from 'zod';
import { type Config, configSchema } from './schema.js';

/** One problem in a policy file, positioned for the operator. Never carries a secret's value. */
export interface ConfigProblem {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Field path as written in errors, e.g. `routes[0].upstream`. */
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.file}:${p.line}:${p.column} ${p.path ? `${p.path}: ` : ''}${p.message}`;
}

export interface LoadedConfig {
  readonly config: Config;
  /** The file's text, for content-hash comparison on reload. */
  readonly source: string;
}

/** Reads and validates a policy file; throws `ConfigError` listing every problem. */
export function loadConfigFile(path: string, env: NodeJS.ProcessEnv = process.env): LoadedConfig {
  const source = readFileSync(path, 'utf8');
  return { config: parseConfig(source, { file: basename(path), env }), source };
}

/**
 * Parses policy YAML. `${VAR}` is substituted inside parsed scalar values only, never into YAML
 * syntax, so a variable's value cannot add keys; `$${` writes a literal `${`. A plain (unquoted)
 * scalar that was substituted is then typed as YAML would have typed it (`port: ${PORT}` is a
 * number); a quoted one stays a string.
 */
export function parseConfig(text: string, opts: { file?: string; env?: NodeJS.ProcessEnv } = {}): Config {
  const file = opts.file ?? 'portcullis.yaml';
  const env = opts.env ?? process.env;
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false, strict: true });
  const at = (offset: number, path: string, message: string): ConfigProblem => {
    const { line, col } = lineCounter.linePos(offset);
    return { file, line, column: col, path, message };
  };

  // After a syntax error YAML's recovery reports a cascade of follow-on errors: the first is the one to fix.
  const syntax = doc.errors[0];
  if (syntax) throw new ConfigError([at(syntax.pos[0], '', syntax.message.split('\n')[0] ?? syntax.code)]);
  const problems: ConfigProblem[] = [];

  visit(doc, {
    Scalar(key, node, path) {
      if (key === 'key' || typeof node.value !== 'string' || !node.value.includes('$')) return;
      const result = substitute(node.value, env);
      if (result.missing.length > 0) {
        const field = formatPath(pathOf(path, node));
        for (const name of result.missing) {
          problems.push(at(node.range?.[0] ?? 0, field, `environment variable ${name} is not set`));
        }
        return;
      }
      if (result.value === node.value) return;
      if (node.type === Scalar.PLAIN) {
        const typed = parseDocument(result.value, { schema: 'core' }).contents;
        if (isScalar(typed) && typeof typed.value !== 'string' && typed.value !== null) {
          node.value = typed.value;
          return;
        }
      }
      node.value = result.value;
    },
  });
  if (problems.length > 0) throw new ConfigError(problems);

  const parsed = configSchema.safeParse(doc.toJS() ?? {});
  if (parsed.success) return deepFreeze(parsed.data);
  const found = parsed.error.issues.flatMap((issue) => issueProblems(issue, doc.contents, at));
  throw new ConfigError(found.sort((a, b) => a.line - b.line || a.column - b.column));
}

function substitute(value: string, env: NodeJS.ProcessEnv): { value: string; missing: string[] } {
  const missing: string[] = [];
  const out = value.replace(/\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (match, name: string | undefined) => {
    if (name === undefined) return '${';
    const found = env[name];
    if (found === undefined) {
      missing.push(name);
      return match;
    }
    return found;
  });
  return { value: out, missing };
}

type PathSegment = string | number;

/** Field path from the visitor's ancestry: the keys of the pairs and the indexes in sequences. */
function pathOf(ancestry: readonly unknown[], leaf: unknown): PathSegment[] {
  const out: PathSegment[] = [];
  const chain = [...ancestry, leaf];
  for (let i = 0; i < chain.length - 1; i++) {
    const parent = chain[i];
    const child = chain[i + 1];
    if (isSeq(parent)) out.push(parent.items.indexOf(child as never));
    else if (isMap(parent)) {
      const pair = parent.items.find((p) => p === child);
      if (pair && isScalar(pair.key)) out.push(String(pair.key.value));
    }
  }
  return out;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out;
}

/** The deepest YAML node along `path`, and how far along the path it is. */
function nodeAt(
  root: unknown,
  path: readonly PropertyKey[],
): { node: Node | null; depth: number; keyNode?: Node } {
  let node = root as Node | null;
  let keyNode: Node | undefined;
  let depth = 0;
  for (const seg of path) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && p.key.value === seg);
      if (!pair) break;
      keyNode = pair.key as Node;
      node = (pair.value as Node | null) ?? keyNode;
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
      keyNode = undefined;
      node = node.items[seg] as Node;
    } else break;
    depth++;
  }
  return { node, depth, ...(keyNode ? { keyNode } : {}) };
}

function issueProblems(
  issue: z.core.$ZodIssue,
  root: unknown,
  at: (offset: number, path: string, message: string) => ConfigProblem,
): ConfigProblem[] {
  const { node, depth } = nodeAt(root, issue.path);
  const offset = node?.range?.[0] ?? 0;
  if (issue.code === 'unrecognized_keys') {
    // Point at each unknown key itself, so the operator sees the typo.
    return issue.keys.map((key) => {
      const located = nodeAt(root, [...issue.path, key]);
      return at(located.keyNode?.range?.[0] ?? offset, formatPath([...issue.path, key]), 'unknown key');
    });
  }
  const path = formatPath(issue.path);
  if (depth < issue.path.length) {
    // The field is absent: point at the object that should hold it.
    const message =
      issue.code === 'invalid_type' && depth === issue.path.length - 1 ? 'is required' : issueMessage(issue);
    return [at(offset, path, message)];
  }
  return [at(offset, path, issueMessage(issue))];
}

/** Zod's messages, made to read after a field path. They never include the value received. */
function issueMessage(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return `must be ${article(issue.expected)}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
      return issue.origin === 'array' ? `must have at least ${issue.minimum} item(s)` : issue.message;
    default:
      return issue.message;
  }
}

function article(type: string): string {
  if (type === 'array') return 'a list';
  if (type === 'object') return 'a mapping';
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
