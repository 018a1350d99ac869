/**
 * The request-body side of the parse stage through a real gateway and a real SDK v2 upstream
 * (issue 13, classes 2, 3, 4, 5, 8, 10): nesting, long numbers, case-folded keys, repeated batch
 * ids, request methods without an id, mirrored headers on every protocol version. For each
 * refusal: the status, the JSON-RPC error and reason, the audit record — and that the upstream
 * saw nothing and the next normal request still succeeds.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { toolCall } from '../support/modern-call.js';
import { META, MODERN } from '../support/wire.js';

let upstream: Peer;
let gateway: TestGateway;
let url: string;

beforeAll(async () => {
  // 'stateless': 2025-era requests are served too, so allowed legacy calls get real answers.
  upstream = await startV2Server({ response: 'json', legacy: 'stateless' });
  // `arguments: redact` walks arguments recursively when auditing: the depth limit bounds it.
  gateway = await startTestGateway({ routes: [{ upstream: upstream.url }], audit: 'arguments: redact' });
  url = `${gateway.url}/mcp`;
});
afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});

function headers(version: string | undefined, extra: Record<string, string> = {}): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    ...(version === undefined ? {} : { 'mcp-protocol-version': version }),
    ...extra,
  };
}

const modernHeaders = (extra: Record<string, string> = {}) =>
  headers(MODERN, { 'mcp-method': 'tools/call', 'mcp-name': 'echo', ...extra });

/** A modern `tools/call` of echo whose arguments hold `inner` (raw JSON text). */
function echoWith(inner: string, id: number | string = 1): string {
  return `{"jsonrpc":"2.0","id":${JSON.stringify(id)},"method":"tools/call","params":{"name":"echo","arguments":{"text":"x","extra":${inner}},"_meta":${JSON.stringify(META)}}}`;
}

/**
 * Sends `body`, expects the refusal, proves the upstream saw nothing and that the very next normal
 * call is served. Returns the answer's JSON.
 */
async function expectRefused(
  body: string,
  sent: Record<string, string>,
  expected: { status: number; code: number; reason: string; id?: string | number | null },
): Promise<unknown> {
  const before = upstream.requests.length;
  const answer = await fetch(url, { method: 'POST', headers: sent, body });
  expect(answer.status).toBe(expected.status);
  const json = (await answer.json()) as unknown;
  expect(json).toMatchObject({
    jsonrpc: '2.0',
    ...('id' in expected ? { id: expected.id } : {}),
    error: { code: expected.code, data: { reason: expected.reason } },
  });
  expect(upstream.requests.length, 'the upstream must see nothing').toBe(before);
  const next = await toolCall(url, 'echo', { text: 'still serving' });
  expect(next.status).toBe(200);
  expect(next.body).toMatchObject({ result: { content: [{ type: 'text', text: 'still serving' }] } });
  expect(upstream.requests.length).toBe(before + 1);
  return json;
}

describe('class 2: nesting depth', () => {
  it.each([65, 5000, 100_000])('refuses a %i-deep request with 400 too_deep and audits it', async (depth) => {
    // The envelope, params and arguments are three levels of the depth.
    const deep = `${'['.repeat(depth - 3)}${']'.repeat(depth - 3)}`;
    await expectRefused(echoWith(deep, `deep-${depth}`), modernHeaders(), {
      status: 400,
      code: -32600,
      reason: 'too_deep',
      id: null,
    });
    const records = await gateway.auditRecords();
    expect(records.filter((r) => r.reason === 'too_deep' && r.status === 400).length).toBeGreaterThan(0);
  });

  it('refuses a 5000-deep object nest in arguments (the redacting audit view would recurse)', async () => {
    const deep = `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`;
    await expectRefused(echoWith(deep), modernHeaders(), { status: 400, code: -32600, reason: 'too_deep' });
  });

  it('forwards a request nested exactly to the limit (64)', async () => {
    const atLimit = `${'['.repeat(61)}${']'.repeat(61)}`;
    const answer = await fetch(url, {
      method: 'POST',
      headers: modernHeaders(),
      body: echoWith(atLimit, 'at-limit'),
    });
    expect(answer.status).toBe(200);
    expect(upstream.requests.at(-1)?.body).toMatchObject({ id: 'at-limit' });
  });
});

describe('class 3: long numbers', () => {
  it.each([50_000, 100_000])(
    'refuses a %i-digit decimal at once (it stalled every route for seconds)',
    async (digits) => {
      const started = performance.now();
      await expectRefused(echoWith(`1.${'0'.repeat(digits)}1`, 3), modernHeaders(), {
        status: 400,
        code: -32600,
        reason: 'unsafe_number',
        id: 3,
      });
      expect(performance.now() - started).toBeLessThan(2000);
    },
  );

  it('keeps /healthz answering while long-number bodies arrive', async () => {
    const body = echoWith(`1.${'0'.repeat(100_000)}1`);
    const flood = Array.from({ length: 8 }, () =>
      fetch(url, { method: 'POST', headers: modernHeaders(), body }),
    );
    const started = performance.now();
    const health = await fetch(`${gateway.adminUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(performance.now() - started).toBeLessThan(1500);
    for (const answer of await Promise.all(flood)) expect(answer.status).toBe(400);
  });
});

describe('class 4: keys equal after case folding (SDK upstream)', () => {
  it.each([
    ['two spellings of one argument', '{"path":"/a","PATH":"/etc"}'],
    ['the long s in a nested key', '[{"keys":1,"key\\u017f":2}]'],
  ])('refuses %s in arguments with 400 invalid_request', async (_, inner) => {
    await expectRefused(echoWith(inner, 4), modernHeaders(), {
      status: 400,
      code: -32600,
      reason: 'invalid_request',
      id: 4,
    });
  });
});

describe('class 4: members policy reads, spelled in another case inside params', () => {
  // Alone (no exact twin to collide with), a variant would be read by a case-insensitive decoder
  // upstream as the member policy never saw: "ResourceSubscriptions" subscribes unchecked.
  const listen = (notifications: string) =>
    `{"jsonrpc":"2.0","id":9,"method":"subscriptions/listen","params":{"notifications":${notifications},"_meta":${JSON.stringify(META)}}}`;
  const complete = (ref: string) =>
    `{"jsonrpc":"2.0","id":9,"method":"completion/complete","params":{"ref":${ref},"argument":{"name":"a","value":"b"},"_meta":${JSON.stringify(META)}}}`;
  it.each([
    [
      'ResourceSubscriptions',
      listen('{"ResourceSubscriptions":["file:///secret/a"]}'),
      'subscriptions/listen',
    ],
    [
      'resourceſubscriptions (U+017F)',
      listen('{"resource\u017fubscriptions":["file:///secret/a"]}'),
      'subscriptions/listen',
    ],
    [
      'a completion ref URI as URI',
      complete('{"type":"ref/resource","URI":"file:///secret/a"}'),
      'completion/complete',
    ],
    ['a completion ref type as TYPE', complete('{"TYPE":"ref/prompt","name":"p"}'), 'completion/complete'],
  ])('refuses %s with 400 invalid_request, the upstream untouched', async (_, body, method) => {
    await expectRefused(body, headers(MODERN, { 'mcp-method': method }), {
      status: 400,
      code: -32600,
      reason: 'invalid_request',
      id: 9,
    });
  });
});

describe('class 5: ids repeated in a 2025-03-26 batch', () => {
  it.each([
    ['one id twice', [1, 1]],
    ['one id as a number and a string', [1, '1']],
  ])('refuses %s with one invalid_request error and a null id', async (_, ids) => {
    const batch = JSON.stringify([
      { jsonrpc: '2.0', id: ids[0], method: 'tools/list' },
      { jsonrpc: '2.0', id: ids[1], method: 'ping' },
    ]);
    const answer = await expectRefused(batch, headers('2025-03-26'), {
      status: 400,
      code: -32600,
      reason: 'invalid_request',
      id: null,
    });
    expect(Array.isArray(answer)).toBe(false);
  });

  it('still forwards a batch with distinct ids', async () => {
    const before = upstream.requests.length;
    const batch = JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'tools/list' },
      { jsonrpc: '2.0', id: 2, method: 'ping' },
    ]);
    const answer = await fetch(url, { method: 'POST', headers: headers('2025-03-26'), body: batch });
    expect(answer.status).toBe(200);
    expect(upstream.requests.length).toBe(before + 1);
  });
});

describe('class 8: request methods without an id', () => {
  it('refuses a modern tools/call without an id with 400 invalid_request', async () => {
    const body = JSON.stringify({
      jsonrpc: '2.0',
      method: 'tools/call',
      params: { name: 'echo', arguments: { text: 'x' }, _meta: META },
    });
    await expectRefused(body, modernHeaders(), {
      status: 400,
      code: -32600,
      reason: 'invalid_request',
      id: null,
    });
  });

  it.each(['2025-06-18', '2025-03-26'])('refuses a %s tools/call without an id', async (version) => {
    const body = JSON.stringify({
      jsonrpc: '2.0',
      method: 'tools/call',
      params: { name: 'echo', arguments: {} },
    });
    await expectRefused(body, headers(version), { status: 400, code: -32600, reason: 'invalid_request' });
  });

  it('still forwards a notification', async () => {
    const before = upstream.requests.length;
    const answer = await fetch(url, {
      method: 'POST',
      headers: headers('2025-06-18'),
      body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
    });
    expect(answer.status).toBe(202);
    expect(upstream.requests.length).toBe(before + 1);
  });
});

describe('class 10: mirrored headers whatever MCP-Protocol-Version says', () => {
  const legacyCall = (name: string) =>
    JSON.stringify({
      jsonrpc: '2.0',
      id: 10,
      method: 'tools/call',
      params: { name, arguments: { text: 'x' } },
    });

  it.each(['2025-06-18', '2025-11-25', '2025-03-26', undefined])(
    'with the version header %s, refuses Mcp-Method and Mcp-Name that disagree with the body',
    async (version) => {
      const refusal = { status: 400, code: -32020, reason: 'header_mismatch', id: 10 };
      await expectRefused(legacyCall('echo'), headers(version, { 'mcp-method': 'tools/list' }), refusal);
      await expectRefused(
        legacyCall('echo'),
        headers(version, { 'mcp-method': 'tools/call', 'mcp-name': 'add' }),
        refusal,
      );
    },
  );

  it.each([
    ['empty', ''],
    ['malformed (a list of versions)', '2025-11-25, 2026-07-28'],
    ['malformed (a space)', '2026-07-28 x'],
  ])('refuses an %s MCP-Protocol-Version with -32020', async (_, value) => {
    await expectRefused(legacyCall('echo'), headers(value), {
      status: 400,
      code: -32020,
      reason: 'header_mismatch',
      id: 10,
    });
  });

  it('refuses a modern body sent with an empty version header (no skipped modern check)', async () => {
    const body = echoWith('1', 11);
    await expectRefused(body, modernHeaders({ 'mcp-protocol-version': '' }), {
      status: 400,
      code: -32020,
      reason: 'header_mismatch',
      id: 11,
    });
  });

  it('forwards a 2025-06-18 call whose mirrored headers agree', async () => {
    const before = upstream.requests.length;
    const answer = await fetch(url, {
      method: 'POST',
      headers: headers('2025-06-18', { 'mcp-method': 'tools/call', 'mcp-name': 'echo' }),
      body: legacyCall('echo'),
    });
    expect(answer.status).toBe(200);
    expect(upstream.requests.length).toBe(before + 1);
  });
});

describe('class 18: a large body is parsed as it arrives, and forwarded exactly as JSON.stringify writes it', () => {
  /** ~300 KB of arguments with the keys and values the built text must order and spell as V8 does. */
  const large = echoWith(
    `{"rows":[${Array.from({ length: 3000 }, (_, i) => `{"b":${i},"10":"\\ud800 ${'é'.repeat(40)}","__proto__":{"x":-0},"2":1E2,"a":"\\ud83d\\ude00"}`).join(',')}],"7":true}`,
    'large',
  );
  const expected = JSON.stringify(JSON.parse(large));

  it.each([
    ['with a Content-Length', () => large],
    [
      'chunked, without a Content-Length',
      () => {
        const bytes = new TextEncoder().encode(large);
        return new ReadableStream<Uint8Array>({
          start(controller) {
            // Cuts inside multi-byte characters and escapes, as a network may.
            for (let at = 0; at < bytes.length; at += 7919) controller.enqueue(bytes.subarray(at, at + 7919));
            controller.close();
          },
        });
      },
    ],
  ])('forwards a 300 KB call sent %s', async (_, body) => {
    const answer = await fetch(url, {
      method: 'POST',
      headers: modernHeaders(),
      body: body(),
      duplex: 'half',
    } as RequestInit);
    expect(answer.status).toBe(200);
    const seen = upstream.requests.at(-1)?.body as { id?: unknown };
    expect(seen.id).toBe('large');
    // The upstream parsed what the gateway sent: the same value (`__proto__` an own key, lone
    // surrogates, -0 as 0). The fixture records the parsed body, not its bytes: the exact text
    // (key order, spelling) is proven by json-builder.test.ts and the jsonrpc-parse fuzz target.
    expect(JSON.stringify(seen)).toBe(expected);
    // And the gateway kept serving.
    const next = await fetch(url, { method: 'POST', headers: modernHeaders(), body: echoWith('1', 'after') });
    expect(next.status).toBe(200);
  });
});
