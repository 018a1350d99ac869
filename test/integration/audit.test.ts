/**
 * The audit trail end to end (DESIGN.md step 10): every decision path — allow, deny, shadow-deny,
 * rate-limited, error, and refused authentication — leaves exactly one record per JSON-RPC request
 * (found by the `X-Request-Id` the client got) with the fields that say who called what, why it was
 * allowed and what really happened: an HTTP 200 carrying `isError: true` or a JSON-RPC error is
 * recorded as such, over JSON and SSE upstreams (SDK v2 servers). No API key, token or
 * `upstreamHeaders` secret ever appears in the audit file or the operational log.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { connectV1Client, type Peer, startV1Server, startV2Server } from '../fixtures/peers.js';
import { freePort, startTestGateway, type TestGateway } from '../support/gateway.js';
import { META, MODERN, modernHeaders } from '../support/wire.js';

const READER = newApiKey('pk_audit_');
const WRITER = newApiKey('pk_audit_');
const UPSTREAM_SECRET = 'upstream-secret-7c1f0d2e9a';
const CHAIN_KEY = 'audit-chain-key-for-tests-0001';
const ARGUMENT_SECRET = 'hunter2-correct-horse';

let json: Peer;
let sse: Peer;
let legacy: Peer;
let gateway: TestGateway;
const log: string[] = [];

beforeAll(async () => {
  json = await startV2Server({ response: 'json' });
  sse = await startV2Server({ response: 'sse' });
  legacy = await startV1Server({ response: 'json' });
  const deadPort = await freePort();
  const route = (path: string, upstream: string, extra = '') => `  - route: ${path}
    resource: http://127.0.0.1${path}
    upstream: ${upstream}
    upstreamHeaders: { authorization: "Bearer ${UPSTREAM_SECRET}" }
    authentication: { methods: [apiKey] }
    default: allow
    tools: { add: [notes:write] }
${extra}`;
  gateway = await startTestGateway({
    audit: `chainKey: "${CHAIN_KEY}", arguments: redact, redactKeys: [password]`,
    log: new Writable({
      write(chunk, _encoding, done) {
        log.push(String(chunk));
        done();
      },
    }),
    policy: `log: { requests: true }
authFailures: { limit: 1000/second }
identities:
  apiKeys:
    - { id: reader, hash: "${READER.hash}", scopes: [notes:read] }
    - { id: writer, hash: "${WRITER.hash}", scopes: [notes:read, notes:write] }
routes:
${route('/json/mcp', json.url)}
${route('/sse/mcp', sse.url)}
${route('/legacy/mcp', legacy.url)}
${route('/shadow/mcp', json.url, '    mode: shadow\n')}
${route('/limited/mcp', json.url, '    rateLimits: [{ per: identity, limit: 1/hour }]\n    failMode: open\n')}
${route('/dead/mcp', `http://127.0.0.1:${deadPort}/mcp`)}`,
  });
});
afterAll(async () => {
  await gateway?.close();
  await Promise.all([json?.close(), sse?.close(), legacy?.close()]);
});

interface Call {
  readonly status: number;
  readonly requestId: string;
  readonly text: string;
}

async function call(
  route: string,
  body: object,
  opts: { key?: string | undefined; headers?: Record<string, string> } = {},
): Promise<Call> {
  const params = (body as { params?: { name?: unknown } }).params;
  const name = typeof params?.name === 'string' ? params.name : undefined;
  const answer = await fetch(`${gateway.url}${route}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      'mcp-protocol-version': MODERN,
      ...('method' in body ? { 'mcp-method': String(body.method) } : {}),
      ...(name === undefined ? {} : { 'mcp-name': name }),
      ...(opts.key === undefined ? {} : { 'x-api-key': opts.key }),
      ...opts.headers,
    },
    body: JSON.stringify(body),
  });
  return {
    status: answer.status,
    requestId: answer.headers.get('x-request-id') ?? '',
    text: await answer.text(),
  };
}

function toolCall(id: number | string, name: string, args: Record<string, unknown> = {}) {
  return { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, _meta: META } };
}

/** The one record the request left: exactly one, or the test fails. */
async function recordOf(requestId: string): Promise<Record<string, unknown>> {
  expect(requestId).not.toBe('');
  const records = (await gateway.auditRecords()).filter((r) => r.requestId === requestId);
  expect(records, `records for request ${requestId}`).toHaveLength(1);
  return records[0] as Record<string, unknown>;
}

const upstreamCalls = (peer: Peer) => peer.requests.filter((r) => r.method === 'POST').length;

describe.each([
  ['json', '/json/mcp'],
  ['sse', '/sse/mcp'],
] as const)('an allowed tools/call over a %s upstream', (_shape, route) => {
  it('records who called which tool with what, the rule, the statuses and outcome ok', async () => {
    const answer = await call(route, toolCall(1, 'echo', { text: 'hi', password: ARGUMENT_SECRET }), {
      key: READER.key,
    });
    expect(answer.status).toBe(200);
    const record = await recordOf(answer.requestId);
    expect(record).toMatchObject({
      route,
      clientAddress: '127.0.0.1',
      identity: { key: 'apiKey:reader', subject: 'reader', methods: ['apiKey'], keyId: 'reader' },
      httpMethod: 'POST',
      method: 'tools/call',
      id: 1,
      tool: 'echo',
      arguments: { text: 'hi', password: '[redacted]' },
      decision: 'allow',
      rule: 'default: allow',
      status: 200,
      upstreamStatus: 200,
      outcome: { isError: false },
    });
    expect(record.time).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(record.durationMs).toBeGreaterThan(0);
    expect(record.seq).toEqual(expect.any(Number));
    expect(record.mac).toMatch(/^[0-9a-f]{64}$/);
  });

  it('records a tool answering isError: true as such, though the HTTP status is 200', async () => {
    const answer = await call(route, toolCall('f-1', 'fail'), { key: READER.key });
    expect(answer.status).toBe(200);
    expect(answer.text).toContain('"isError":true');
    expect(await recordOf(answer.requestId)).toMatchObject({
      tool: 'fail',
      decision: 'allow',
      status: 200,
      outcome: { isError: true },
    });
  });

  it('records a JSON-RPC error answer with its code', async () => {
    // `add` with text where numbers belong: the server answers a JSON-RPC error or an isError result.
    const answer = await call(
      route,
      { jsonrpc: '2.0', id: 9, method: 'prompts/get', params: { name: 'nope', _meta: META } },
      {
        key: READER.key,
      },
    );
    expect(answer.status).toBe(200);
    const code = (
      JSON.parse(answer.text.replace(/^[\s\S]*?data: /, '').split('\n')[0] ?? '{}') as {
        error?: { code?: number };
      }
    ).error?.code;
    expect(code).toEqual(expect.any(Number));
    expect(await recordOf(answer.requestId)).toMatchObject({
      method: 'prompts/get',
      prompt: 'nope',
      decision: 'allow',
      status: 200,
      outcome: { isError: true, errorCode: code },
    });
  });
});

describe('refusals: one record each, and the upstream saw nothing', () => {
  it('deny: the missing scope and the rule that required it', async () => {
    const before = upstreamCalls(json);
    const answer = await call('/json/mcp', toolCall(2, 'add', { a: 1, b: 2 }), { key: READER.key });
    expect(answer.status).toBe(403);
    expect(upstreamCalls(json)).toBe(before);
    const record = await recordOf(answer.requestId);
    expect(record).toMatchObject({
      identity: { key: 'apiKey:reader' },
      tool: 'add',
      arguments: { a: 1, b: 2 },
      decision: 'deny',
      reason: 'insufficient_scope',
      rule: 'tools.add',
      missingScopes: ['notes:write'],
      status: 403,
      upstreamStatus: null,
    });
    expect(record.outcome).toBeUndefined();
  });

  it('shadow-deny: forwarded, recorded with the rule it would have failed', async () => {
    const before = upstreamCalls(json);
    const answer = await call('/shadow/mcp', toolCall(3, 'add', { a: 1, b: 2 }), { key: READER.key });
    expect(answer.status).toBe(200);
    expect(upstreamCalls(json)).toBe(before + 1);
    expect(await recordOf(answer.requestId)).toMatchObject({
      decision: 'shadow-deny',
      reason: 'insufficient_scope',
      rule: 'tools.add',
      missingScopes: ['notes:write'],
      status: 200,
      outcome: { isError: false },
    });
  });

  it('rate-limited: the second call of 1/hour', async () => {
    const first = await call('/limited/mcp', toolCall(4, 'echo', { text: 'a' }), { key: WRITER.key });
    expect(first.status).toBe(200);
    const before = upstreamCalls(json);
    const second = await call('/limited/mcp', toolCall(5, 'echo', { text: 'b' }), { key: WRITER.key });
    expect(second.status).toBe(429);
    expect(upstreamCalls(json)).toBe(before);
    expect(await recordOf(second.requestId)).toMatchObject({
      identity: { key: 'apiKey:writer' },
      tool: 'echo',
      decision: 'rate-limited',
      reason: 'rate_limited',
      status: 429,
      upstreamStatus: null,
    });
  });

  it('error: the upstream unreachable', async () => {
    const answer = await call('/dead/mcp', toolCall(6, 'echo', { text: 'x' }), { key: READER.key });
    expect(answer.status).toBe(502);
    expect(await recordOf(answer.requestId)).toMatchObject({
      decision: 'error',
      reason: 'upstream_unreachable',
      status: 502,
      upstreamStatus: null,
    });
  });

  it('authentication failures: who tried (the method and why), never the credential', async () => {
    const before = upstreamCalls(json);
    const wrong = await call('/json/mcp', toolCall(7, 'echo', { text: 'x' }), {
      key: 'pk_audit_not-a-real-key',
    });
    const missing = await call('/json/mcp', toolCall(8, 'echo', { text: 'x' }));
    expect([wrong.status, missing.status]).toEqual([401, 401]);
    expect(upstreamCalls(json)).toBe(before);
    expect(await recordOf(wrong.requestId)).toMatchObject({
      identity: null,
      authentication: { method: 'apiKey' },
      decision: 'deny',
      reason: 'invalid_credential',
      status: 401,
    });
    expect(await recordOf(missing.requestId)).toMatchObject({
      identity: null,
      decision: 'deny',
      reason: 'missing_credential',
      status: 401,
    });
  });

  it('an unrouted request: route null', async () => {
    const answer = await call('/nowhere', toolCall(9, 'echo'), { key: READER.key });
    expect(answer.status).toBe(404);
    expect(await recordOf(answer.requestId)).toMatchObject({
      route: null,
      decision: 'deny',
      reason: 'not_found',
    });
  });
});

// A recursive argument view overflowed the stack inside the exchange's close listener: the
// process died, and the denied call left no record. The view is now iterative and depth-bounded.
describe('a denied call with arguments nested 3000 deep (audit.arguments: redact)', () => {
  const DEPTH = 3_000;
  /** Built as text: the client's bytes, not a value JSON.stringify would have to walk. */
  const body = (id: number) =>
    `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":{"name":"add","_meta":${JSON.stringify(META)},` +
    `"arguments":{"password":"${ARGUMENT_SECRET}","deep":${'['.repeat(DEPTH)}{"password":"${ARGUMENT_SECRET}"}${']'.repeat(DEPTH)}}}}`;

  it('leaves its record, the upstream sees nothing, and the gateway keeps serving', async () => {
    const before = upstreamCalls(json);
    const answer = await fetch(`${gateway.url}/json/mcp`, {
      method: 'POST',
      headers: { ...modernHeaders('tools/call', 'add'), 'x-api-key': READER.key },
      body: body(30),
    });
    const requestId = answer.headers.get('x-request-id') ?? '';
    await answer.text();
    expect(upstreamCalls(json)).toBe(before);
    const record = await recordOf(requestId);
    expect(record).toMatchObject({
      identity: { key: 'apiKey:reader' },
      decision: 'deny',
      status: answer.status,
    });
    expect(JSON.stringify(record)).not.toContain(ARGUMENT_SECRET);
    if (answer.status === 403) {
      // Parsed and denied by policy: the record shows the arguments to the view's bound.
      expect(record).toMatchObject({ tool: 'add', reason: 'insufficient_scope', rule: 'tools.add' });
      expect(JSON.stringify(record.arguments)).toContain('"[too deep]"');
      expect((record.arguments as { password: string }).password).toBe('[redacted]');
    } else {
      // With a request depth limit (`limits.maxJsonDepth`) the parser refuses it first.
      expect(answer.status).toBe(400);
      expect(record).toMatchObject({ reason: 'too_deep' });
    }
    // The same process answers the next call.
    const next = await call('/json/mcp', toolCall(31, 'echo', { text: 'still here' }), { key: READER.key });
    expect(next.status).toBe(200);
    expect(next.text).toContain('still here');
  });
});

describe('sessions (legacy protocol)', () => {
  it('names the session by a hash of the sealed id, the same for every call in it', async () => {
    const client = await connectV1Client(`${gateway.url}/legacy/mcp`, {
      headers: { 'x-api-key': WRITER.key },
    });
    let sealed: string | undefined;
    try {
      await client.callTool({ name: 'echo', arguments: { text: 'in a session' } });
      sealed = (client.transport as { sessionId?: string } | undefined)?.sessionId;
    } finally {
      await client.close();
    }
    const records = (await gateway.auditRecords()).filter(
      (r) => r.route === '/legacy/mcp' && r.method !== null,
    );
    const initialize = records.find((r) => r.method === 'initialize');
    const echo = records.find((r) => r.tool === 'echo');
    expect(initialize?.session).toMatch(/^[0-9a-f]{32}$/);
    expect(echo?.session).toBe(initialize?.session);
    expect(echo?.outcome).toEqual({ isError: false });
    if (sealed !== undefined) expect(JSON.stringify(records)).not.toContain(sealed);
  });
});

describe('secrets', () => {
  it('no API key, upstream secret or redacted argument appears in the audit file or the operational log', async () => {
    const audit = JSON.stringify(await gateway.auditRecords());
    const operational = log.join('');
    // The log is not empty: log.requests writes a line per request.
    expect(operational).toContain('"msg":"request"');
    for (const secret of [READER.key, WRITER.key, UPSTREAM_SECRET, ARGUMENT_SECRET, CHAIN_KEY]) {
      expect(audit).not.toContain(secret);
      expect(operational).not.toContain(secret);
    }
    expect(json.requests.some((r) => r.headers.authorization === `Bearer ${UPSTREAM_SECRET}`)).toBe(true);
  });
});
