import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAst } from 'vite';
import { describe, expect, it } from 'vitest';
import {
  clientMaySend,
  countsForRateLimits,
  type Generation,
  isNotificationMethod,
  LISTEN_FILTER,
  MCP_METHODS,
  type McpMethod,
  METHOD_LABELS,
  metricLabelOf,
  mirroredNameOf,
  opensSession,
  POLICY_NESTED,
  type PolicyTarget,
  STREAM_METHODS,
  toolNameOf,
} from '../../../src/jsonrpc/methods.js';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));
const TABLE_FILE = join(SRC, 'jsonrpc', 'methods.ts');

const L: readonly Generation[] = ['legacy'];
const M: readonly Generation[] = ['modern'];
const LM: readonly Generation[] = ['legacy', 'modern'];
const NO: readonly Generation[] = [];

/**
 * The method table as the era report (MCP 2025-11-25 and 2026-07-28 schemas, SEP-2663) lists it,
 * written out independently of `methods.ts`: name, kind, client sends it in, server sends it in,
 * policy target. Section 1a (requests) and 1b (notifications) of the report.
 */
const EXPECTED: readonly (readonly [
  string,
  'request' | 'notification',
  readonly Generation[],
  readonly Generation[],
  PolicyTarget,
])[] = [
  ['initialize', 'request', L, NO, 'identity'],
  ['ping', 'request', L, L, 'identity'],
  ['server/discover', 'request', M, NO, 'identity'],
  ['tools/list', 'request', LM, NO, 'identity'],
  ['tools/call', 'request', LM, NO, 'tool'],
  ['prompts/list', 'request', LM, NO, 'identity'],
  ['prompts/get', 'request', LM, NO, 'prompt'],
  ['resources/list', 'request', LM, NO, 'identity'],
  ['resources/templates/list', 'request', LM, NO, 'identity'],
  ['resources/read', 'request', LM, NO, 'resource'],
  ['resources/subscribe', 'request', L, NO, 'resource'],
  ['resources/unsubscribe', 'request', L, NO, 'resource'],
  ['subscriptions/listen', 'request', M, NO, 'subscriptions'],
  ['completion/complete', 'request', LM, NO, 'completion-ref'],
  ['logging/setLevel', 'request', L, NO, 'identity'],
  ['sampling/createMessage', 'request', NO, L, 'closed'],
  ['roots/list', 'request', NO, L, 'closed'],
  ['elicitation/create', 'request', NO, L, 'closed'],
  ['tasks/get', 'request', LM, L, 'closed'],
  ['tasks/result', 'request', L, L, 'closed'],
  ['tasks/list', 'request', L, L, 'closed'],
  ['tasks/cancel', 'request', LM, L, 'closed'],
  ['tasks/update', 'request', M, NO, 'closed'],
  ['notifications/initialized', 'notification', L, NO, 'identity'],
  ['notifications/cancelled', 'notification', LM, LM, 'identity'],
  ['notifications/progress', 'notification', L, LM, 'identity'],
  ['notifications/roots/list_changed', 'notification', L, NO, 'identity'],
  ['notifications/message', 'notification', NO, LM, 'closed'],
  ['notifications/resources/updated', 'notification', NO, LM, 'closed'],
  ['notifications/resources/list_changed', 'notification', NO, LM, 'closed'],
  ['notifications/tools/list_changed', 'notification', NO, LM, 'closed'],
  ['notifications/prompts/list_changed', 'notification', NO, LM, 'closed'],
  ['notifications/elicitation/complete', 'notification', NO, L, 'closed'],
  ['notifications/tasks/status', 'notification', L, L, 'closed'],
  ['notifications/subscriptions/acknowledged', 'notification', NO, M, 'closed'],
  ['notifications/tasks', 'notification', NO, M, 'closed'],
];

function row(name: string): McpMethod {
  const found = MCP_METHODS.get(name);
  if (found === undefined) throw new Error(`${name} is not in the table`);
  return found;
}

function clientSends(kind: 'request' | 'notification', generation: Generation): string[] {
  return [...MCP_METHODS.values()]
    .filter((r) => clientMaySend(r, kind, generation))
    .map((r) => r.name)
    .sort();
}

describe('the method table against the 2025-11-25 and 2026-07-28 specifications', () => {
  it('has exactly the methods and notifications of both generations', () => {
    expect([...MCP_METHODS.keys()].sort()).toEqual(EXPECTED.map(([name]) => name).sort());
  });

  it.each(EXPECTED)('%s: %s, client in %j, server in %j, names %s', (name, kind, client, server, target) => {
    const r = row(name);
    expect(r.kind).toBe(kind);
    expect([...r.fromClient].sort()).toEqual([...client].sort());
    expect([...r.fromServer].sort()).toEqual([...server].sort());
    expect(r.policy).toBe(target);
  });

  it('gates by generation: legacy-only and modern-only methods', () => {
    for (const name of [
      'initialize',
      'ping',
      'logging/setLevel',
      'resources/subscribe',
      'resources/unsubscribe',
    ]) {
      expect(clientMaySend(row(name), 'request', 'legacy')).toBe(true);
      expect(clientMaySend(row(name), 'request', 'modern')).toBe(false);
    }
    for (const name of ['server/discover', 'subscriptions/listen']) {
      expect(clientMaySend(row(name), 'request', 'modern')).toBe(true);
      expect(clientMaySend(row(name), 'request', 'legacy')).toBe(false);
    }
  });

  it('lets a modern client send only notifications/cancelled, a legacy one the four of 2025-11-25 (and tasks/status, closed)', () => {
    expect(clientSends('notification', 'modern')).toEqual(['notifications/cancelled']);
    expect(clientSends('notification', 'legacy')).toEqual([
      'notifications/cancelled',
      'notifications/initialized',
      'notifications/progress',
      'notifications/roots/list_changed',
      'notifications/tasks/status',
    ]);
    expect(row('notifications/tasks/status').policy).toBe('closed');
  });

  it('has no server requests in 2026-07-28 (sampling, roots, elicitation travel inside input_required)', () => {
    const modernServerRequests = [...MCP_METHODS.values()].filter(
      (r) => r.kind === 'request' && r.fromServer.includes('modern'),
    );
    expect(modernServerRequests).toEqual([]);
  });

  it('names every notification notifications/… and no request so: the id rule follows the name', () => {
    for (const r of MCP_METHODS.values())
      expect(isNotificationMethod(r.name)).toBe(r.kind === 'notification');
    expect(isNotificationMethod('notifications/x-vendor')).toBe(true);
    expect(isNotificationMethod('tools/call')).toBe(false);
  });

  it('refuses the request kind of a notification and the notification kind of a request', () => {
    expect(clientMaySend(row('tools/call'), 'notification', 'legacy')).toBe(false);
    expect(clientMaySend(row('notifications/cancelled'), 'request', 'legacy')).toBe(false);
  });

  it('closes every tasks method in both generations (task ids are not bound to identities)', () => {
    const tasks = [...MCP_METHODS.keys()].filter((name) => /^(notifications\/)?tasks(\/|$)/.test(name));
    expect(tasks.sort()).toEqual([
      'notifications/tasks',
      'notifications/tasks/status',
      'tasks/cancel',
      'tasks/get',
      'tasks/list',
      'tasks/result',
      'tasks/update',
    ]);
    for (const name of tasks) expect(row(name).policy).toBe('closed');
    for (const name of ['tasks/get', 'tasks/cancel', 'tasks/update', 'notifications/tasks'])
      expect(row(name).extension).toBe('tasks');
  });

  it('mirrors Mcp-Name from params.name, params.uri and params.taskId, and for nothing else', () => {
    expect(mirroredNameOf('tools/call')).toEqual({ field: 'name', required: true });
    expect(mirroredNameOf('prompts/get')).toEqual({ field: 'name', required: true });
    expect(mirroredNameOf('resources/read')).toEqual({ field: 'uri', required: true });
    for (const name of ['tasks/get', 'tasks/update', 'tasks/cancel'])
      expect(mirroredNameOf(name)).toEqual({ field: 'taskId', required: false });
    const mirroring = [...MCP_METHODS.values()]
      .filter((r) => r.mirroredName !== undefined)
      .map((r) => r.name);
    expect(mirroring.sort()).toEqual([
      'prompts/get',
      'resources/read',
      'tasks/cancel',
      'tasks/get',
      'tasks/update',
      'tools/call',
    ]);
    for (const name of ['tools/list', 'server/discover', 'subscriptions/listen', 'completion/complete'])
      expect(mirroredNameOf(name)).toBeUndefined();
  });

  it('filters the four lists by their result field and item key', () => {
    const lists = Object.fromEntries(
      [...MCP_METHODS.values()].filter((r) => r.list !== undefined).map((r) => [r.name, r.list]),
    );
    expect(lists).toEqual({
      'tools/list': { field: 'tools', itemKey: 'name', table: 'tools' },
      'prompts/list': { field: 'prompts', itemKey: 'name', table: 'prompts' },
      'resources/list': { field: 'resources', itemKey: 'uri', table: 'resources' },
      'resources/templates/list': { field: 'resourceTemplates', itemKey: 'uriTemplate', table: 'resources' },
    });
    // 2025-11-25 tasks/list answers a `tasks` list too; it is never relayed (closed), so never filtered.
    expect(row('tasks/list').list).toBeUndefined();
    expect(row('tasks/list').policy).toBe('closed');
  });

  it('reads every subscriptions/listen filter member, and closes taskIds', () => {
    expect(Object.fromEntries(LISTEN_FILTER)).toEqual({
      toolsListChanged: 'identity',
      promptsListChanged: 'identity',
      resourcesListChanged: 'identity',
      resourceSubscriptions: 'resources',
      taskIds: 'closed',
    });
    // A case variant of any of them (TaskIds, ResourceSubscriptions) is refused at parse.
    expect([...(POLICY_NESTED.get('notifications') ?? [])].sort()).toEqual([...LISTEN_FILTER.keys()].sort());
  });

  it('answers only subscriptions/listen with a long-lived stream', () => {
    expect([...STREAM_METHODS]).toEqual(['subscriptions/listen']);
  });

  it('counts every request for rate limits, a method outside the table too, and no notification', () => {
    for (const r of MCP_METHODS.values()) expect(r.rateLimited).toBe(r.kind === 'request');
    expect(countsForRateLimits('tools/call')).toBe(true);
    expect(countsForRateLimits('vendor/reindex')).toBe(true);
    expect(countsForRateLimits('notifications/cancelled')).toBe(false);
  });

  it('labels metrics by the methods a client may send, and everything else other', () => {
    for (const r of MCP_METHODS.values())
      expect(metricLabelOf(r.name)).toBe(r.fromClient.length > 0 ? r.name : 'other');
    expect(metricLabelOf('notifications/message')).toBe('other');
    expect(metricLabelOf('admin/shutdown')).toBe('other');
    expect(METHOD_LABELS).toContain('server/discover');
    expect(METHOD_LABELS).not.toContain('sampling/createMessage');
  });

  it('finds the tool of a tools/call only', () => {
    expect(toolNameOf({ kind: 'request', method: 'tools/call', params: { name: 'echo' } })).toBe('echo');
    expect(toolNameOf({ kind: 'request', method: 'prompts/get', params: { name: 'echo' } })).toBeUndefined();
    expect(
      toolNameOf({ kind: 'notification', method: 'tools/call', params: { name: 'echo' } }),
    ).toBeUndefined();
    expect(toolNameOf({ kind: 'request', method: 'tools/call', params: { name: 7 } })).toBeUndefined();
  });

  it('opens a session with initialize only', () => {
    expect(opensSession('initialize')).toBe(true);
    expect(opensSession('server/discover')).toBe(false);
  });
});

/** The namespaces of the table's method names (`tools`, `notifications`, …). */
const NAMESPACES = [
  ...new Set([...MCP_METHODS.keys()].filter((n) => n.includes('/')).map((n) => n.slice(0, n.indexOf('/')))),
];
const literal = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
/**
 * A method name, or a namespace prefix (`resources/`, `tasks/`), as a token of a string: not
 * inside a path (`../server/x.js`) or a longer word.
 */
const METHOD_TOKEN = new RegExp(
  `(?<![A-Za-z0-9_./-])(?:${[...MCP_METHODS.keys()].map(literal).join('|')}|(?:${NAMESPACES.map(literal).join('|')})/)(?![A-Za-z0-9_-])`,
);

/** The text of every string literal and template chunk of a TypeScript source (comments excluded). */
function stringsOf(source: string, file: string): string[] {
  const strings: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const child of node) walk(child);
      return;
    }
    if (typeof node !== 'object' || node === null) return;
    const n = node as { type?: string; value?: unknown };
    if (n.type === 'Literal' && typeof n.value === 'string') strings.push(n.value);
    if (n.type === 'TemplateElement') strings.push((n.value as { raw: string }).raw);
    for (const child of Object.values(node)) if (typeof child === 'object') walk(child);
  };
  walk(parseAst(source, { lang: 'ts' }, file));
  return strings;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith('.ts') ? [path] : [];
  });
}

describe('no module but methods.ts spells a method name', () => {
  it('finds method names in strings, never in comments (the scan can fail)', () => {
    const sample = [
      "// 'tools/call' in a comment is prose",
      '/** `resources/read` in TSDoc too */',
      "const a = 'tools/call';",
      'const b = `${x} ping`;',
      "const c = m.startsWith('resources/');",
      "const d = '../server/gateway.js';",
      "const e = 'initialize';",
      "const f = 'pinging';",
      "const g = 'notifications/tasks/status';",
    ].join('\n');
    expect(stringsOf(sample, 'sample.ts').filter((s) => METHOD_TOKEN.test(s))).toEqual([
      'tools/call',
      ' ping',
      'resources/',
      'initialize',
      'notifications/tasks/status',
    ]);
  });

  it('finds none in src/ outside jsonrpc/methods.ts', () => {
    const files = sourceFiles(SRC).filter((file) => file !== TABLE_FILE);
    expect(files.length).toBeGreaterThan(50);
    const found = files.flatMap((file) =>
      stringsOf(readFileSync(file, 'utf8'), file)
        .filter((text) => METHOD_TOKEN.test(text))
        .map((text) => `${relative(SRC, file)}: ${JSON.stringify(text)}`),
    );
    expect(found).toEqual([]);
  });
});
