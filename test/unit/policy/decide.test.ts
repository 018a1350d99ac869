import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/auth/identity.js';
import type { RpcMessage, RpcParams } from '../../../src/jsonrpc/parse.js';
import { type CompiledPolicy, compileTable } from '../../../src/policy/compile.js';
import { decide } from '../../../src/policy/decide.js';

type Table = Record<string, string | string[]>;

function makePolicy(
  tables: { tools?: Table; resources?: Table; prompts?: Table; methods?: Table } = {},
  defaultEffect: 'deny' | 'allow' = 'deny',
): CompiledPolicy {
  return {
    tools: compileTable('tools', tables.tools ?? {}),
    resources: compileTable('resources', tables.resources ?? {}),
    prompts: compileTable('prompts', tables.prompts ?? {}),
    methods: compileTable('methods', tables.methods ?? {}),
    defaultEffect,
    mode: 'enforce',
  };
}

function identity(...scopes: string[]): Identity {
  return { key: 'apiKey:ci-bot', subject: 'ci-bot', methods: ['apiKey'], scopes: new Set(scopes) };
}

function request(method: string, params?: RpcParams): RpcMessage {
  return { kind: 'request', id: 7, method, ...(params === undefined ? {} : { params }) };
}

function notification(method: string, params?: RpcParams): RpcMessage {
  return { kind: 'notification', method, ...(params === undefined ? {} : { params }) };
}

const LEGACY = false;
const MODERN = true;

/** The example route of DESIGN.md, default deny. */
const policy = makePolicy({
  tools: {
    read_file: 'files:read',
    'list_*': 'files:read',
    write_file: 'files:write',
    delete_file: ['files:write', 'files:admin'],
  },
  resources: { 'file:///public/**': 'files:read', 'file:///secret/**': 'files:admin' },
  prompts: { summarize: 'files:read', 'draft_*': 'files:write' },
  methods: { 'tasks/get': 'files:read', 'tasks/list': ['files:read', 'tasks:admin'] },
});
const nobody = identity();
const reader = identity('files:read');

describe('decide: methods that need only an identity', () => {
  const EXPECT_ALLOW = { effect: 'allow', rule: 'method-table', required: [], missing: [] };

  it.each(['tools/list', 'resources/list', 'resources/templates/list', 'prompts/list'])(
    'allows %s to an identity with no scopes under default deny, both protocols',
    (method) => {
      for (const modern of [LEGACY, MODERN]) {
        const decision = decide(policy, request(method, { cursor: 'x' }), nobody, modern);
        expect(decision).toEqual(EXPECT_ALLOW);
      }
    },
  );

  // 2026-07-28 removed initialize, ping and logging/setLevel (changelog, Major 2 and 5).
  it.each(['initialize', 'ping', 'logging/setLevel'])(
    'allows %s to an identity with no scopes on the legacy protocol; on the modern one it is unknown (404)',
    (method) => {
      expect(decide(policy, request(method), nobody, LEGACY)).toEqual(EXPECT_ALLOW);
      expect(decide(policy, request(method), identity('files:read', 'files:admin'), MODERN)).toEqual({
        effect: 'deny',
        rule: 'method-table',
        required: [],
        missing: [],
        reason: 'method_not_found',
        target: method,
      });
    },
  );

  it('allows server/discover on the modern protocol; on the legacy one it is unknown (403)', () => {
    expect(decide(policy, request('server/discover'), nobody, MODERN)).toEqual(EXPECT_ALLOW);
    expect(decide(policy, request('server/discover'), nobody, LEGACY)).toMatchObject({
      effect: 'deny',
      reason: 'method_denied',
      target: 'server/discover',
    });
  });

  it.each([
    'notifications/initialized',
    'notifications/cancelled',
    'notifications/progress',
    'notifications/roots/list_changed',
  ])('allows the client notification %s on the legacy protocol', (method) => {
    expect(decide(policy, notification(method), nobody, LEGACY).effect).toBe('allow');
  });

  it('allows notifications/cancelled, the one 2026-07-28 client notification, on the modern protocol', () => {
    expect(decide(policy, notification('notifications/cancelled', { requestId: 1 }), nobody, MODERN)).toEqual(
      EXPECT_ALLOW,
    );
  });

  it.each([
    'notifications/initialized',
    'notifications/progress',
    'notifications/roots/list_changed',
    'notifications/tasks/status',
    'notifications/message',
    'notifications/x-vendor/thing',
  ])('refuses %s from a modern client as an unknown method', (method) => {
    expect(decide(policy, notification(method), reader, MODERN)).toMatchObject({
      effect: 'deny',
      reason: 'method_not_found',
    });
  });

  it.each([
    'notifications/tasks/status',
    'notifications/message',
    'notifications/tools/list_changed',
    'notifications/subscriptions/acknowledged',
    'notifications/x-vendor/thing',
  ])('refuses %s from a legacy client (server-only, tasks, or unknown)', (method) => {
    expect(decide(policy, notification(method), reader, LEGACY)).toMatchObject({
      effect: 'deny',
      reason: 'method_denied',
    });
  });

  it('lets the methods map admit a notification the table does not give the client', () => {
    const listed = makePolicy({ methods: { 'notifications/x-vendor/*': 'vendor' } });
    const vendor = notification('notifications/x-vendor/thing');
    expect(decide(listed, vendor, identity('vendor'), MODERN).effect).toBe('allow');
    expect(decide(listed, vendor, nobody, MODERN).reason).toBe('insufficient_scope');
  });

  it('allows a client response to a server request', () => {
    const response: RpcMessage = { kind: 'response', id: 'server-1' };
    expect(decide(policy, response, nobody, LEGACY)).toMatchObject({ effect: 'allow', rule: 'method-table' });
    expect(decide(policy, response, nobody, MODERN).effect).toBe('allow');
  });

  it('does not let a notification that is not notifications/* skip the table', () => {
    // tools/call needs an id: without one the table does not give it to the client at all.
    const sneaky = notification('tools/call', { name: 'read_file' });
    expect(decide(policy, sneaky, reader, LEGACY)).toMatchObject({ effect: 'deny', reason: 'method_denied' });
    expect(decide(policy, sneaky, reader, MODERN)).toMatchObject({
      effect: 'deny',
      reason: 'method_not_found',
    });
    expect(decide(policy, notification('tasks/cancel'), reader, LEGACY).reason).toBe('method_denied');
  });

  it('does not treat a request named notifications/* as a notification', () => {
    expect(decide(policy, request('notifications/initialized'), nobody, LEGACY).reason).toBe('method_denied');
  });
});

describe('decide: tools/call by params.name', () => {
  it('allows a listed tool to a caller with its scope, naming rule, scopes and target', () => {
    expect(decide(policy, request('tools/call', { name: 'read_file' }), reader, LEGACY)).toEqual({
      effect: 'allow',
      rule: 'tools.read_file',
      required: ['files:read'],
      missing: [],
      target: 'read_file',
    });
  });

  it('denies a listed tool to a caller without its scope, listing what is missing', () => {
    expect(decide(policy, request('tools/call', { name: 'write_file' }), reader, MODERN)).toEqual({
      effect: 'deny',
      rule: 'tools.write_file',
      required: ['files:write'],
      missing: ['files:write'],
      reason: 'insufficient_scope',
      target: 'write_file',
    });
  });

  it('requires every scope of a list', () => {
    const call = request('tools/call', { name: 'delete_file' });
    expect(decide(policy, call, identity('files:write'), LEGACY)).toMatchObject({
      effect: 'deny',
      required: ['files:write', 'files:admin'],
      missing: ['files:admin'],
    });
    expect(decide(policy, call, identity('files:admin'), LEGACY).missing).toEqual(['files:write']);
    expect(decide(policy, call, identity('files:write', 'files:admin', 'x'), LEGACY).effect).toBe('allow');
  });

  it('matches glob entries', () => {
    expect(decide(policy, request('tools/call', { name: 'list_dirs' }), reader, LEGACY)).toMatchObject({
      effect: 'allow',
      rule: 'tools."list_*"',
    });
  });

  it('denies a tool no entry lists under default deny as method_denied (no scope grants it), even to a caller with every scope', () => {
    const everything = identity('files:read', 'files:write', 'files:admin', 'tasks:admin');
    expect(decide(policy, request('tools/call', { name: 'format_disk' }), everything, LEGACY)).toEqual({
      effect: 'deny',
      rule: 'default: deny',
      required: [],
      missing: [],
      reason: 'method_denied',
      target: 'format_disk',
    });
  });

  it('allows a tool no entry lists under default allow, but still enforces listed entries', () => {
    const open = makePolicy({ tools: { write_file: 'files:write' } }, 'allow');
    expect(decide(open, request('tools/call', { name: 'format_disk' }), nobody, LEGACY)).toEqual({
      effect: 'allow',
      rule: 'default: allow',
      required: [],
      missing: [],
      target: 'format_disk',
    });
    expect(decide(open, request('tools/call', { name: 'write_file' }), nobody, LEGACY).effect).toBe('deny');
  });

  it.each([
    ['a number', { name: 42 }],
    ['null', { name: null }],
    ['an object', { name: { toString: 'read_file' } }],
    ['a list', { name: ['read_file'] }],
    ['absent', { arguments: {} }],
  ])('answers invalid_request when params.name is %s', (_, params) => {
    const decision = decide(policy, request('tools/call', params), reader, LEGACY);
    expect(decision).toMatchObject({ effect: 'deny', reason: 'invalid_request' });
  });

  it('answers invalid_request when tools/call has no params', () => {
    expect(decide(policy, request('tools/call'), reader, MODERN).reason).toBe('invalid_request');
  });

  it.each([
    ['upper case', 'READ_FILE'],
    ['mixed case', 'Read_file'],
    ['a trailing space', 'read_file '],
    ['a leading space', ' read_file'],
    ['a trailing NUL', 'read_file\0'],
    ['a trailing newline', 'read_file\n'],
    ['a zero-width space', 'read\u200b_file'],
    ['a Cyrillic е', 'r\u0435ad_file'],
    ['a Cyrillic а', 're\u0430d_file'],
    ['fullwidth letters', '\uff52\uff45\uff41\uff44_\uff46\uff49\uff4c\uff45'],
    ['the ﬁ ligature', 'read_\ufb01le'],
    ['a fullwidth low line', 'read\uff3ffile'],
  ])('does not match the exact entry for a name with %s', (_, name) => {
    const exact = makePolicy({ tools: { read_file: 'files:read' } });
    const decision = decide(exact, request('tools/call', { name }), reader, LEGACY);
    expect(decision).toMatchObject({ effect: 'deny', rule: 'default: deny', target: name });
  });

  it('does not equate the composed and decomposed forms of a name', () => {
    const composed = makePolicy({ tools: { 'r\u00e9sum\u00e9': 'docs:read' } }, 'allow');
    const decision = decide(composed, request('tools/call', { name: 're\u0301sume\u0301' }), nobody, LEGACY);
    expect(decision.rule).toBe('default: allow');
  });
});

describe('decide: prompts/get', () => {
  it('checks the prompt name against prompts', () => {
    expect(decide(policy, request('prompts/get', { name: 'summarize' }), reader, LEGACY)).toMatchObject({
      effect: 'allow',
      rule: 'prompts.summarize',
      target: 'summarize',
    });
    expect(decide(policy, request('prompts/get', { name: 'draft_mail' }), reader, MODERN)).toMatchObject({
      effect: 'deny',
      reason: 'insufficient_scope',
      missing: ['files:write'],
    });
  });

  it('does not look prompt names up in tools', () => {
    expect(decide(policy, request('prompts/get', { name: 'read_file' }), reader, LEGACY).rule).toBe(
      'default: deny',
    );
  });

  it('answers invalid_request for a name that is not a string', () => {
    expect(decide(policy, request('prompts/get', { name: 1 }), reader, LEGACY).reason).toBe(
      'invalid_request',
    );
  });
});

describe('decide: resources by decoded URI', () => {
  it('allows a URI under a listed pattern and denies one under another entry', () => {
    expect(
      decide(policy, request('resources/read', { uri: 'file:///public/a/b.txt' }), reader, LEGACY),
    ).toMatchObject({
      effect: 'allow',
      rule: 'resources."file:///public/**"',
      target: 'file:///public/a/b.txt',
    });
    expect(
      decide(policy, request('resources/read', { uri: 'file:///secret/key' }), reader, MODERN),
    ).toMatchObject({ effect: 'deny', reason: 'insufficient_scope', missing: ['files:admin'] });
  });

  it('matches the decoded URI, so percent-encoding cannot dodge an entry', () => {
    const open = makePolicy({ resources: { 'file:///secret/**': 'files:admin' } }, 'allow');
    const decision = decide(open, request('resources/read', { uri: 'file:///%73ecret/key' }), reader, LEGACY);
    expect(decision).toMatchObject({
      effect: 'deny',
      rule: 'resources."file:///secret/**"',
      target: 'file:///secret/key',
    });
  });

  it('reports the canonical URI as the target and records where it replaces the client’s spelling', () => {
    const decision = decide(
      policy,
      request('resources/read', { uri: 'FILE://localhost/public/%7e%61%20b.txt' }),
      reader,
      LEGACY,
    );
    expect(decision).toMatchObject({
      effect: 'allow',
      target: 'file:///public/~a%20b.txt',
      rewrites: [{ path: ['uri'], canonical: 'file:///public/~a%20b.txt' }],
    });
  });

  it('records no rewrite when the client wrote the canonical URI', () => {
    const decision = decide(policy, request('resources/read', { uri: 'file:///public/a' }), reader, LEGACY);
    expect(decision.effect).toBe('allow');
    expect(decision).not.toHaveProperty('rewrites');
  });

  it.each(['FILE:///secret/a', 'file:/secret/a', 'file:secret/a', 'file://localhost/secret/a'])(
    'denies %s by the file:///secret/** pattern under default: allow',
    (uri) => {
      const open = makePolicy({ resources: { 'file:///secret/**': 'files:admin' } }, 'allow');
      expect(decide(open, request('resources/read', { uri }), reader, LEGACY)).toMatchObject({
        effect: 'deny',
        rule: 'resources."file:///secret/**"',
        target: 'file:///secret/a',
      });
    },
  );

  it('refuses a URI with a dot-segment as bad_uri, not as a scope problem', () => {
    const decision = decide(
      policy,
      request('resources/read', { uri: 'file:///public/../secret/key' }),
      identity('files:read', 'files:admin'),
      LEGACY,
    );
    expect(decision).toMatchObject({ effect: 'deny', reason: 'bad_uri' });
    // A refused URI is no target: it may hold controls, and it names nothing.
    expect(decision).not.toHaveProperty('target');
  });

  it('refuses a .. that ends at a query instead of matching it under a pattern', () => {
    // `file:///public/..?x` is `file:///?x` to a URL-normalizing upstream: outside `file:///public/**`.
    const decision = decide(
      policy,
      request('resources/read', { uri: 'file:///public/..?x' }),
      reader,
      LEGACY,
    );
    expect(decision).toMatchObject({ effect: 'deny', reason: 'bad_uri' });
  });

  it.each([
    ['a number', { uri: 1 }],
    ['absent', {}],
  ])('answers invalid_request when params.uri is %s', (_, params) => {
    expect(decide(policy, request('resources/read', params), reader, LEGACY).reason).toBe('invalid_request');
  });

  it.each(['resources/subscribe', 'resources/unsubscribe'])(
    'checks %s by URI on the legacy protocol',
    (method) => {
      expect(decide(policy, request(method, { uri: 'file:///public/a' }), reader, LEGACY)).toMatchObject({
        effect: 'allow',
        rule: 'resources."file:///public/**"',
      });
      expect(decide(policy, request(method, { uri: 'file:///secret/a' }), reader, LEGACY)).toMatchObject({
        effect: 'deny',
        reason: 'insufficient_scope',
      });
      expect(decide(policy, request(method, { uri: 'file:///public/%2e%2e/x' }), reader, LEGACY).reason).toBe(
        'bad_uri',
      );
    },
  );

  it.each(['resources/subscribe', 'resources/unsubscribe'])(
    'answers %s with method_not_found on the modern protocol',
    (method) => {
      expect(decide(policy, request(method, { uri: 'file:///public/a' }), reader, MODERN)).toEqual({
        effect: 'deny',
        rule: 'method-table',
        required: [],
        missing: [],
        reason: 'method_not_found',
        target: method,
      });
    },
  );

  it('lets the methods map admit resources/subscribe on the modern protocol', () => {
    const listed = makePolicy({ methods: { 'resources/subscribe': 'subs' } });
    const call = request('resources/subscribe', { uri: 'file:///anything' });
    expect(decide(listed, call, identity('subs'), MODERN)).toMatchObject({
      effect: 'allow',
      rule: 'methods.resources/subscribe',
    });
    expect(decide(listed, call, reader, MODERN).reason).toBe('insufficient_scope');
  });
});

describe('decide: completion/complete by its ref', () => {
  it('checks a ref/prompt by the prompt name', () => {
    const call = (name: string) => request('completion/complete', { ref: { type: 'ref/prompt', name } });
    expect(decide(policy, call('summarize'), reader, LEGACY)).toMatchObject({
      effect: 'allow',
      rule: 'prompts.summarize',
    });
    expect(decide(policy, call('draft_x'), reader, LEGACY)).toMatchObject({
      effect: 'deny',
      missing: ['files:write'],
    });
  });

  it('checks a ref/resource by its canonical URI, template expressions as written', () => {
    const call = (uri: string) => request('completion/complete', { ref: { type: 'ref/resource', uri } });
    expect(decide(policy, call('file:///public/{path}'), reader, MODERN)).toMatchObject({
      effect: 'allow',
      rule: 'resources."file:///public/**"',
    });
    expect(decide(policy, call('file:///secret/{path}'), reader, MODERN).effect).toBe('deny');
    expect(decide(policy, call('file:///public/%2E%2E/secret'), reader, MODERN).reason).toBe('bad_uri');
    expect(decide(policy, call('FILE:///public/{+path}'), reader, MODERN)).toMatchObject({
      effect: 'allow',
      target: 'file:///public/{+path}',
      rewrites: [{ path: ['ref', 'uri'], canonical: 'file:///public/{+path}' }],
    });
  });

  it.each([
    ['no ref', {}],
    ['a null ref', { ref: null }],
    ['a string ref', { ref: 'ref/prompt' }],
    ['an unknown ref type', { ref: { type: 'ref/tool', name: 'read_file' } }],
    ['a ref without a type', { ref: { name: 'summarize' } }],
    ['a prompt ref without a string name', { ref: { type: 'ref/prompt', name: 3 } }],
    ['a resource ref without a string uri', { ref: { type: 'ref/resource', name: 'file:///public/a' } }],
  ])('answers invalid_request for %s', (_, params) => {
    expect(decide(policy, request('completion/complete', params), reader, LEGACY)).toMatchObject({
      effect: 'deny',
      reason: 'invalid_request',
    });
  });
});

describe('decide: subscriptions/listen', () => {
  const listen = (notifications?: unknown) =>
    request('subscriptions/listen', notifications === undefined ? {} : { notifications });

  it('needs only an identity when it subscribes to no resources', () => {
    expect(decide(policy, listen(), nobody, MODERN)).toMatchObject({ effect: 'allow', rule: 'method-table' });
    expect(decide(policy, listen({ toolsListChanged: true }), nobody, MODERN).effect).toBe('allow');
    expect(decide(policy, listen({ resourceSubscriptions: [] }), nobody, MODERN).effect).toBe('allow');
  });

  it('allows when every subscribed URI is allowed', () => {
    const decision = decide(
      policy,
      listen({ resourceSubscriptions: ['file:///public/a', 'file:///public/b/c'] }),
      reader,
      MODERN,
    );
    expect(decision.effect).toBe('allow');
  });

  it('denies when any subscribed URI is denied, naming that URI', () => {
    const decision = decide(
      policy,
      listen({ resourceSubscriptions: ['file:///public/a', 'file:///secret/b', 'file:///public/c'] }),
      reader,
      MODERN,
    );
    expect(decision).toMatchObject({
      effect: 'deny',
      reason: 'insufficient_scope',
      target: 'file:///secret/b',
      missing: ['files:admin'],
    });
    expect(
      decide(
        policy,
        listen({ resourceSubscriptions: ['file:///public/a', 'file:///other'] }),
        reader,
        MODERN,
      ),
    ).toMatchObject({ effect: 'deny', rule: 'default: deny', target: 'file:///other' });
  });

  it('records the canonical form of every subscribed URI, by its index', () => {
    const decision = decide(
      policy,
      listen({ resourceSubscriptions: ['FILE:///public/a', 'file:///public/b', 'file:/public/c'] }),
      reader,
      MODERN,
    );
    expect(decision).toMatchObject({
      effect: 'allow',
      rewrites: [
        { path: ['notifications', 'resourceSubscriptions', 0], canonical: 'file:///public/a' },
        { path: ['notifications', 'resourceSubscriptions', 2], canonical: 'file:///public/c' },
      ],
    });
  });

  it('refuses a subscribed URI with a dot-segment as bad_uri', () => {
    const decision = decide(
      policy,
      listen({ resourceSubscriptions: ['file:///public/a', 'file:///public/../secret/b'] }),
      reader,
      MODERN,
    );
    expect(decision.reason).toBe('bad_uri');
  });

  it.each([
    ['a string', 'file:///public/a'],
    ['an object', { uri: 'file:///public/a' }],
  ])('answers invalid_request when resourceSubscriptions is %s', (_, subscriptions) => {
    expect(decide(policy, listen({ resourceSubscriptions: subscriptions }), reader, MODERN).reason).toBe(
      'invalid_request',
    );
  });

  it('is a 2026-07-28 method: on the legacy protocol it is unknown (403), resources or not', () => {
    expect(decide(policy, listen({ toolsListChanged: true }), reader, LEGACY)).toMatchObject({
      effect: 'deny',
      reason: 'method_denied',
      target: 'subscriptions/listen',
    });
  });

  it('needs only an identity for the list-changed flags, all three at once', () => {
    const flags = { toolsListChanged: true, promptsListChanged: true, resourcesListChanged: false };
    expect(decide(policy, listen(flags), nobody, MODERN)).toMatchObject({ effect: 'allow' });
  });

  // Task ids are not bound to identities, and notifications/tasks carries a task's full result.
  it('refuses taskIds (tasks extension) as method_denied, whatever the caller holds', () => {
    const everyone = identity('files:read', 'files:write', 'files:admin');
    const open = makePolicy({ resources: { '**': [] } }, 'allow');
    for (const taskIds of [['t1'], [], 'x']) {
      expect(decide(open, listen({ taskIds }), everyone, MODERN)).toEqual({
        effect: 'deny',
        rule: 'subscriptions filter: taskIds',
        required: [],
        missing: [],
        reason: 'method_denied',
      });
    }
    expect(decide(open, listen({ toolsListChanged: true, taskIds: ['t1'] }), everyone, MODERN).reason).toBe(
      'method_denied',
    );
  });

  it('refuses a filter member it does not know, without echoing it', () => {
    for (const filter of [{ fooChanged: true }, { __proto__x: 1 }, JSON.parse('{"__proto__":{"a":1}}')]) {
      const decision = decide(policy, listen(filter), reader, MODERN);
      expect(decision).toMatchObject({ effect: 'deny', reason: 'method_denied' });
      expect(JSON.stringify(decision)).not.toContain('foo');
    }
  });

  it('answers invalid_request when notifications is not an object', () => {
    for (const notifications of [null, 'all', ['resourceSubscriptions'], 7])
      expect(decide(policy, listen(notifications), reader, MODERN).reason).toBe('invalid_request');
  });

  it('refuses a bad URI before a closed member, and keeps canonical URIs on the denial (shadow forwards it)', () => {
    const bad = listen({ taskIds: ['t1'], resourceSubscriptions: ['file:///public/../secret/x'] });
    expect(decide(policy, bad, reader, MODERN).reason).toBe('bad_uri');
    const spelled = listen({ taskIds: ['t1'], resourceSubscriptions: ['FILE:///public/a'] });
    expect(decide(policy, spelled, reader, MODERN)).toMatchObject({
      effect: 'deny',
      reason: 'method_denied',
      rewrites: [{ path: ['notifications', 'resourceSubscriptions', 0], canonical: 'file:///public/a' }],
    });
  });

  it('answers invalid_request when a subscription is not a string', () => {
    expect(
      decide(policy, listen({ resourceSubscriptions: ['file:///public/a', 42] }), reader, MODERN).reason,
    ).toBe('invalid_request');
  });
});

describe('decide: methods outside the table', () => {
  it.each([
    'tasks/get',
    'tasks/list',
    'tasks/cancel',
    'tasks/result',
    'sampling/createMessage',
    'roots/list',
    'tools/delete',
    'admin/shutdown',
    'Tools/call',
    'tools/call ',
  ])('refuses %s: method_denied on the legacy protocol, method_not_found on the modern one', (method) => {
    const bare = makePolicy({ tools: { '**': [] } }, 'allow');
    const everyone = identity('files:read', 'files:write', 'files:admin');
    expect(decide(bare, request(method, { name: 'x' }), everyone, LEGACY)).toEqual({
      effect: 'deny',
      rule: 'method-table',
      required: [],
      missing: [],
      reason: 'method_denied',
      target: method,
    });
    expect(decide(bare, request(method, { name: 'x' }), everyone, MODERN).reason).toBe('method_not_found');
  });

  it('admits a method the route’s methods map names, with its scopes', () => {
    expect(decide(policy, request('tasks/get', { taskId: 't1' }), reader, MODERN)).toEqual({
      effect: 'allow',
      rule: 'methods.tasks/get',
      required: ['files:read'],
      missing: [],
      target: 'tasks/get',
    });
    expect(decide(policy, request('tasks/get', { taskId: 't1' }), nobody, LEGACY)).toMatchObject({
      effect: 'deny',
      reason: 'insufficient_scope',
      required: ['files:read'],
    });
    expect(decide(policy, request('tasks/list'), reader, LEGACY)).toMatchObject({
      effect: 'deny',
      reason: 'insufficient_scope',
      missing: ['tasks:admin'],
    });
  });

  it('admits methods by a pattern in the methods map', () => {
    const tasks = makePolicy({ methods: { 'tasks/*': 'tasks' } });
    expect(decide(tasks, request('tasks/cancel'), identity('tasks'), MODERN).effect).toBe('allow');
    expect(decide(tasks, request('tasks/a/b'), identity('tasks'), MODERN).reason).toBe('method_not_found');
  });

  it('does not let the methods map replace the check of a named tool', () => {
    const both = makePolicy({ methods: { 'tools/call': 'basic' }, tools: { write_file: 'files:write' } });
    const decision = decide(both, request('tools/call', { name: 'write_file' }), identity('basic'), LEGACY);
    expect(decision).toMatchObject({ effect: 'deny', rule: 'tools.write_file' });
  });

  it('does not apply the route default to methods: default allow still refuses unknown methods', () => {
    const open = makePolicy({}, 'allow');
    expect(decide(open, request('tasks/get'), reader, LEGACY).reason).toBe('method_denied');
    expect(decide(open, request('tasks/get'), reader, MODERN).reason).toBe('method_not_found');
  });
});

/** An independent reading of the spec's glob: `*` any run without `/`, `**` any run at all. */
function globMatches(glob: string, name: string): boolean {
  if (glob === '') return name === '';
  if (glob.startsWith('**')) {
    for (let i = 0; i <= name.length; i++) if (globMatches(glob.slice(2), name.slice(i))) return true;
    return false;
  }
  if (glob.startsWith('*')) {
    for (let i = 0; i <= name.length; i++) {
      if (globMatches(glob.slice(1), name.slice(i))) return true;
      if (name[i] === '/') return false;
    }
    return false;
  }
  return name.length > 0 && name[0] === glob[0] && globMatches(glob.slice(1), name.slice(1));
}

/** The spec: the exact entry, else the matching pattern with the longest literal prefix (first written on a tie). */
function referenceEntry(
  entries: readonly (readonly [string, readonly string[]])[],
  name: string,
): readonly string[] | undefined {
  const exact = entries.find(([entry]) => !entry.includes('*') && entry === name);
  if (exact !== undefined) return exact[1];
  let best: { prefix: number; scopes: readonly string[] } | undefined;
  for (const [entry, scopes] of entries) {
    if (!entry.includes('*') || !globMatches(entry, name)) continue;
    const prefix = entry.indexOf('*');
    if (best === undefined || prefix > best.prefix) best = { prefix, scopes };
  }
  return best?.scopes;
}

describe('decide: property against a reference implementation', () => {
  const scope = fc.constantFrom<string>('s1', 's2', 's3', 's4');
  const plainName = fc.string({ unit: fc.constantFrom('a', 'b', '/', '.'), minLength: 1, maxLength: 5 });
  const pattern = fc
    .string({ unit: fc.constantFrom('a', 'b', '/', '*'), minLength: 1, maxLength: 6 })
    .filter((s) => s.includes('*'));
  const entries = fc.uniqueArray(
    fc.tuple(fc.oneof(plainName, pattern), fc.uniqueArray(scope, { maxLength: 3 })),
    { selector: ([entry]) => entry, maxLength: 8 },
  );

  it('allows a tools/call iff the entry that applies has scopes within the identity’s', () => {
    fc.assert(
      fc.property(
        entries,
        fc.constantFrom<'deny' | 'allow'>('deny', 'allow'),
        fc.uniqueArray(scope, { maxLength: 4 }),
        fc.oneof(fc.string({ unit: fc.constantFrom('a', 'b', '/', '.'), maxLength: 6 }), fc.nat()),
        fc.boolean(),
        (written, defaultEffect, held, query, modern) => {
          // Half the time ask for a name the policy writes, so exact entries are hit often.
          const name =
            typeof query === 'string' || written.length === 0
              ? String(query)
              : written[query % written.length]![0].replaceAll('*', 'a');
          const table = Object.fromEntries(written.map(([entry, scopes]) => [entry, [...scopes]]));
          const compiled = makePolicy({ tools: table }, defaultEffect);
          const decision = decide(compiled, request('tools/call', { name }), identity(...held), modern);

          const applies = referenceEntry(written, name);
          const allowed =
            applies === undefined ? defaultEffect === 'allow' : applies.every((s) => held.includes(s));
          expect(decision.effect).toBe(allowed ? 'allow' : 'deny');
          expect(decision.required).toEqual(applies ?? []);
          expect(decision.missing).toEqual((applies ?? []).filter((s) => !held.includes(s)));
        },
      ),
      { numRuns: 1000 },
    );
  });
});
