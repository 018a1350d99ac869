import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../../src/config/schema.js';
import { REFUSALS } from '../../src/errors.js';
import { readme, readmeMarked, readmeSection, tableRows } from '../support/readme.js';

const README = readme();

describe('README', () => {
  it("error table lists exactly the catalogue's refusals with their status and code", () => {
    const rows = readmeMarked('refusals')
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .map((line) => line.split('|').map((cell) => cell.trim()));
    const table = Object.fromEntries(
      rows.map(([, reason, status, code]) => [
        reason?.replaceAll('`', ''),
        { status: Number(status), rpc: code === '—' ? null : Number(code) },
      ]),
    );
    const catalogue = Object.fromEntries(
      Object.entries(REFUSALS).map(([reason, spec]) => [reason, { status: spec.status, rpc: spec.rpc }]),
    );
    expect(table).toEqual(catalogue);
  });

  it('shows the two commands a new user runs', () => {
    expect(README).toContain('npm install');
    expect(README).toContain('npm start');
    expect(README).toContain('npm test');
  });

  it('keeps its sections in the order its readers need them', () => {
    const headings = README.split('\n').filter((line) => /^## /.test(line));
    expect(headings).toEqual([
      '## Quick start',
      '## Kubernetes',
      '## Configuration reference',
      '## Authentication',
      '## Authorization policy',
      '## stdio servers',
      '## Federated routes',
      '## Identity to the upstream',
      '## Rate and concurrency limits',
      '## Security model',
      '## Operations',
      '## Command line',
      '## Errors',
      '## Troubleshooting',
      '## Conformance',
      '## Benchmark',
      '## Development',
      '## Glossary',
    ]);
  });

  it('links only to headings it has', () => {
    const anchors = new Set(
      README.split('\n')
        .filter((line) => /^#+ /.test(line))
        .map((line) =>
          line
            .replace(/^#+ /, '')
            .toLowerCase()
            .replace(/[^a-z0-9 -]/g, '')
            .replaceAll(' ', '-'),
        ),
    );
    const links = [...README.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1] as string);
    expect(links.length).toBeGreaterThan(5);
    expect(links.filter((link) => !anchors.has(link))).toEqual([]);
  });

  it('defines every glossary word once', () => {
    const words = [...readmeSection('## Glossary').matchAll(/^- \*\*([a-z]+)\*\*/gm)].map((m) => m[1]);
    expect(words).toEqual([
      'route',
      'upstream',
      'server',
      'identity',
      'decision',
      'outcome',
      'session',
      'exchange',
      'pin',
    ]);
  });
});

/** A JSON Schema node as `z.toJSONSchema` writes the policy's: objects, arrays, unions, records. */
interface SchemaNode {
  readonly properties?: Record<string, SchemaNode>;
  readonly items?: SchemaNode;
  readonly anyOf?: readonly SchemaNode[];
  /** A discriminated union (`upstreamIdentity`'s modes). */
  readonly oneOf?: readonly SchemaNode[];
  readonly default?: unknown;
}

/**
 * Every field path of the policy schema (`routes[].tools`, `identities.jwt[].issuer`) with its
 * default: its own, else the one its parent object's default gives it (`listen.port`).
 */
function schemaFields(): Map<string, unknown> {
  const fields = new Map<string, unknown>();
  const walk = (node: SchemaNode, path: string, inherited: unknown) => {
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const childPath = path === '' ? key : `${path}.${key}`;
      const fromParent =
        inherited !== null && typeof inherited === 'object' && !Array.isArray(inherited)
          ? (inherited as Record<string, unknown>)[key]
          : undefined;
      const value = child.default ?? fromParent;
      fields.set(childPath, value);
      walk(child, childPath, value);
    }
    if (node.items) walk(node.items, `${path}[]`, undefined);
    for (const alternative of [...(node.anyOf ?? []), ...(node.oneOf ?? [])])
      walk(alternative, path, inherited);
  };
  walk(configJsonSchema() as SchemaNode, '', undefined);
  return fields;
}

/**
 * The reference table's rows: the field paths of the first cell (a name without a dot continues
 * the path of the one before it: `routes[].tools`, `resources` → `routes[].resources`) and the
 * default cell split into one item per field (a single item stands for every field).
 */
function referenceRows(): { fields: string[]; defaults: string[]; row: string }[] {
  return tableRows(readmeMarked('config')).map(([fieldCell = '', defaultCell = '']) => {
    let parent = '';
    const fields = [...fieldCell.matchAll(/`([^`]+)`/g)].map((m) => {
      const name = m[1] as string;
      const dot = name.lastIndexOf('.');
      if (dot === -1) return parent === '' ? name : `${parent}.${name}`;
      parent = name.slice(0, dot);
      return name;
    });
    const items: string[] = [];
    let item = '';
    let inCode = false;
    for (const c of defaultCell) {
      if (c === '`') inCode = !inCode;
      if (c === ',' && !inCode) {
        items.push(item.trim());
        item = '';
      } else item += c;
    }
    items.push(item.trim());
    return {
      fields,
      defaults: items.length === 1 ? fields.map(() => items[0] as string) : items,
      row: fieldCell,
    };
  });
}

/** How the table writes a schema default: `8443`, `info`, `[RS256, ES256]`, `{}`. */
function written(value: unknown): string | undefined {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean')
    return `\`${value}\``;
  if (Array.isArray(value) && value.every((v) => typeof v !== 'object')) return `\`[${value.join(', ')}]\``;
  if (value !== null && typeof value === 'object' && Object.keys(value).length === 0) return '`{}`';
  return undefined;
}

describe('README configuration reference', () => {
  const schema = schemaFields();
  const rows = referenceRows();
  const named = rows.flatMap((r) => r.fields);

  it('reads a table of many fields', () => {
    expect(rows.length).toBeGreaterThan(30);
    expect(new Set(named).size).toBe(named.length);
  });

  it('names only fields the schema has', () => {
    expect(named.filter((field) => !schema.has(field))).toEqual([]);
  });

  it('names every field of the schema, top level, route level and below', () => {
    const covered = (path: string) =>
      named.some((field) => field === path || field.startsWith(`${path}.`) || field.startsWith(`${path}[]`));
    expect([...schema.keys()].filter((path) => !covered(path))).toEqual([]);
  });

  it('gives each field one default, and the schema default where the schema has one', () => {
    const wrong: string[] = [];
    for (const { fields, defaults, row } of rows) {
      expect(defaults, row).toHaveLength(fields.length);
      fields.forEach((field, i) => {
        const expected = written(schema.get(field));
        if (expected !== undefined && defaults[i] !== expected)
          wrong.push(`${field}: README ${defaults[i]}, schema ${expected}`);
      });
    }
    expect(wrong).toEqual([]);
  });
});
