/**
 * `confirm: caller` on legacy sessions (2025-11-25): the gateway asks the calling user through
 * their own client's elicitation handler — an `elicitation/create` on the call's SSE answer — and
 * forwards only after an explicit `confirm: true`. Real SDK v1 and v2 clients, real SDK v1
 * upstreams (JSON and SSE answers); the upstream is proven to see nothing until the yes.
 */
import {
  Client as V2Client,
  StreamableHTTPClientTransport as V2ClientTransport,
} from '@modelcontextprotocol/client';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as V1ClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ElicitRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { everythingStdio } from '../fixtures/everything.js';
import { startV1Server, type V1Peer } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { callsOf, echoCall, rawSession, sseReader, yes } from '../support/legacy-session.js';
import { type RedisServer, startRedis } from '../support/redis.js';
import { sleep } from '../support/wait.js';

const alice = newApiKey('pk_alice_');
const bob = newApiKey('pk_bob_');

type Answer = {
  action: 'accept' | 'decline' | 'cancel';
  content?: Record<string, string | number | boolean | string[]>;
};

const sessionKey = Buffer.alloc(32, 7).toString('base64');

const policyFor = (upstream: string, top = '') => `${top}sessions: { keys: ["${sessionKey}"] }
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [notes:write] }
    - { id: bob, hash: "${bob.hash}", scopes: [notes:write] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream}
    authentication: { methods: [apiKey] }
    tools:
      echo: { scopes: notes:write, confirm: caller }
      ask_name: { scopes: notes:write, confirm: caller }
      add: notes:write
      slow_progress: notes:write
`;

/**
 * An SDK v1 client on `url` as `key` that answers the gateway's question with `answer` (undefined:
 * declares no elicitation). `onAsk` runs when asked, before the answer goes back.
 */
async function v1Client(
  url: string,
  key: string,
  answer: Answer | ((message: string) => Promise<Answer>) | undefined,
  fetchVia?: typeof fetch,
) {
  const client = new V1Client(
    { name: 'confirming-v1', version: '1.0.0' },
    answer === undefined ? {} : { capabilities: { elicitation: {} } },
  );
  const asked: string[] = [];
  if (answer !== undefined)
    client.setRequestHandler(ElicitRequestSchema, async (request) => {
      const message = String(request.params.message);
      asked.push(message);
      return typeof answer === 'function' ? answer(message) : answer;
    });
  await client.connect(
    new V1ClientTransport(new URL(url), {
      requestInit: { headers: { authorization: `Bearer ${key}` } },
      ...(fetchVia === undefined ? {} : { fetch: fetchVia }),
    }),
  );
  return { client, asked };
}

describe.each(['sse', 'json'] as const)(
  'confirm: caller on a legacy session, upstream answering %s',
  (shape) => {
    let upstream: V1Peer;
    let gateway: TestGateway;

    beforeAll(async () => {
      upstream = await startV1Server({ response: shape, elicits: true });
      gateway = await startTestGateway({ policy: policyFor(upstream.url) });
    });
    afterAll(async () => {
      await gateway?.close();
      await upstream?.close();
    });

    it('asks through the client, showing the tool and the arguments, and forwards on confirm: true', async () => {
      const before = callsOf(upstream, 'echo');
      let heardWhenAsked = -1;
      const { client, asked } = await v1Client(`${gateway.url}/mcp`, alice.key, async () => {
        heardWhenAsked = callsOf(upstream, 'echo');
        return { action: 'accept', content: { confirm: true } };
      });
      try {
        const result = await client.callTool({
          name: 'echo',
          arguments: { text: 'drop table', token: 's3cret' },
        });
        expect((result.content as { text: string }[])[0]?.text).toBe('drop table');
        expect(asked).toHaveLength(1);
        expect(asked[0]).toContain('"echo"');
        expect(asked[0]).toContain('"text"="drop table"');
        expect(asked[0]).toContain('"token"=•••');
        expect(asked[0]).not.toContain('s3cret');
        // A call without confirm is not asked.
        expect((await client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).content).toBeDefined();
        expect(asked).toHaveLength(1);
      } finally {
        await client.close();
      }
      // Nothing reached the upstream while the person was being asked; the call once, after the yes.
      expect(heardWhenAsked).toBe(before);
      expect(callsOf(upstream, 'echo')).toBe(before + 1);
      // The gateway's question and its answer never reach the upstream.
      expect(JSON.stringify(upstream.requests)).not.toContain('io.portcullis/');
    });

    it.each<[string, Answer]>([
      ['a decline', { action: 'decline' }],
      ['a cancel', { action: 'cancel' }],
      ['a bare accept without confirm: true', { action: 'accept', content: {} }],
      ['confirm: false', { action: 'accept', content: { confirm: false } }],
    ])('%s is confirmation_declined, never forwarded', async (_, answer) => {
      const before = callsOf(upstream, 'echo');
      const { client } = await v1Client(`${gateway.url}/mcp`, alice.key, answer);
      try {
        const refused = await client
          .callTool({ name: 'echo', arguments: { text: 'x' } })
          .catch((e: unknown) => e);
        expect(refused).toMatchObject({ code: -31098, data: { reason: 'confirmation_declined' } });
      } finally {
        await client.close();
      }
      expect(callsOf(upstream, 'echo')).toBe(before);
    });

    it('a client that did not declare elicitation cannot be asked: confirmation_unavailable, never forwarded', async () => {
      const before = callsOf(upstream, 'echo');
      const { client } = await v1Client(`${gateway.url}/mcp`, alice.key, undefined);
      try {
        const refused = await client
          .callTool({ name: 'echo', arguments: { text: 'x' } })
          .catch((e: unknown) => e);
        // Refused before any stream opened: HTTP 400 with the JSON-RPC error (the SDK reports the status).
        expect(refused).toMatchObject({ code: 400 });
        expect(String(refused)).toContain('confirmation_unavailable');
        expect(String(refused)).toContain('no_elicitation');
      } finally {
        await client.close();
      }
      expect(callsOf(upstream, 'echo')).toBe(before);
    });

    // Registered for the SSE upstream only (not skipped for JSON): an SDK v1 server answering JSON
    // sends its own requests on the GET stream, not on the call's answer.
    if (shape === 'sse')
      it('an upstream that itself asks (its own elicitation on the call) behind a confirm tool: both questions reach the client', async () => {
        const { client, asked } = await v1Client(`${gateway.url}/mcp`, alice.key, async (message) =>
          message.startsWith('Confirm this call')
            ? { action: 'accept', content: { confirm: true } }
            : { action: 'accept', content: { name: 'Ada' } },
        );
        try {
          const result = await client.callTool({ name: 'ask_name', arguments: {} });
          expect(JSON.stringify(result.content)).toContain('Ada');
          expect(asked).toHaveLength(2);
          expect(asked[0]).toContain('"ask_name"');
        } finally {
          await client.close();
        }
      });

    it('an SDK v2 client on the 2025-11-25 protocol is asked the same way', async () => {
      const before = callsOf(upstream, 'echo');
      const client = new V2Client(
        { name: 'confirming-v2-legacy', version: '1.0.0' },
        { capabilities: { elicitation: {} }, versionNegotiation: { mode: 'legacy' } },
      );
      const asked: string[] = [];
      client.setRequestHandler('elicitation/create', async (request) => {
        asked.push(String((request.params as { message?: unknown }).message));
        return { action: 'accept', content: { confirm: true } };
      });
      await client.connect(
        new V2ClientTransport(new URL(`${gateway.url}/mcp`), {
          requestInit: { headers: { authorization: `Bearer ${alice.key}` } },
        }),
      );
      try {
        const result = await client.callTool({ name: 'echo', arguments: { text: 'v2 legacy' } });
        expect((result.content as { text: string }[])[0]?.text).toBe('v2 legacy');
        expect(asked).toHaveLength(1);
      } finally {
        await client.close();
      }
      expect(callsOf(upstream, 'echo')).toBe(before + 1);
    });
  },
);

describe('confirm: caller on a legacy session, on the wire', () => {
  let upstream: V1Peer;
  let gateway: TestGateway;

  beforeAll(async () => {
    upstream = await startV1Server({ response: 'json' });
    gateway = await startTestGateway({
      policy: policyFor(
        upstream.url,
        'limits: { maxConcurrentPerIdentity: 1, maxStreamsPerIdentity: 1, drainTimeoutMs: 2000 }\n',
      ),
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('only the asked identity and session can answer, once; a waiting call holds no concurrency slot', async () => {
    const url = `${gateway.url}/mcp`;
    const mine = await rawSession(url, alice.key);
    const before = callsOf(upstream, 'echo');
    const call = await mine.post(echoCall(1));
    expect(call.status).toBe(200);
    expect(call.headers.get('content-type')).toBe('text/event-stream');
    const events = sseReader(call.body);
    const [question] = (await events.messages(1)) as [
      { id: string; method: string; params: { mode: string } },
    ];
    expect(question.method).toBe('elicitation/create');
    // No `mode` on a legacy session: a form is the default in 2025-11-25, and 2025-06-18 has none.
    expect(question.params.mode).toBeUndefined();
    expect(question.id.startsWith('io.portcullis/')).toBe(true);

    // With maxConcurrentPerIdentity 1, alice's other calls run while the first waits for her.
    const other = await mine.post({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'add', arguments: { a: 1, b: 2 } },
    });
    expect(other.status).toBe(200);
    expect(await other.text()).toContain('"3"');

    // A waiting call is an open stream: alice's second one is refused by her stream cap (1 here),
    // so no caller can hold every question a replica keeps open.
    const second = await mine.post(echoCall(4));
    expect(second.status).toBe(429);
    expect(await second.json()).toMatchObject({ error: { data: { reason: 'concurrency_limited' } } });

    // Bob, in his own session, cannot answer alice's question; in hers he is not even in a session.
    const his = await rawSession(url, bob.key);
    const bobs = await his.post(yes(question.id));
    expect(bobs.status).toBe(403);
    expect(await bobs.json()).toMatchObject({
      error: { data: { reason: 'confirmation_expired', detail: 'unknown' } },
    });
    expect((await mine.post(yes(question.id), url, bob.key)).status).toBe(404);
    // Another session of alice's cannot either (the question was asked in this one).
    const another = await rawSession(url, alice.key);
    expect((await another.post(yes(question.id))).status).toBe(403);
    expect(callsOf(upstream, 'echo')).toBe(before);

    // Her answer, in her session: 202, and the call's answer follows in its stream.
    const answered = await mine.post(yes(question.id));
    expect(answered.status).toBe(202);
    expect((await events.messages(1))[0]).toMatchObject({
      id: 1,
      result: { content: [{ text: 'drop table' }] },
    });
    expect(callsOf(upstream, 'echo')).toBe(before + 1);
    // Used: the same answer again is refused, nothing more forwarded.
    expect((await mine.post(yes(question.id))).status).toBe(403);
    expect(callsOf(upstream, 'echo')).toBe(before + 1);

    const records = await gateway.auditRecords();
    const call1 = records.find(
      (r) =>
        r.method === 'tools/call' &&
        r.id === 1 &&
        r.session !== undefined &&
        (r.confirmation as { step?: string } | undefined)?.step === 'accepted',
    );
    const answer = records.find(
      (r) => (r.confirmation as { step?: string } | undefined)?.step === 'answered' && r.status === 202,
    );
    expect(call1).toBeDefined();
    expect(answer).toBeDefined();
    const linked = (record: Record<string, unknown> | undefined) =>
      (record?.confirmation as { id?: string } | undefined)?.id;
    expect(linked(answer)).toBe(linked(call1));
    expect(linked(answer)).toMatch(/^[0-9a-f]{16}$/);
  });

  it('a caller who leaves while asked: recorded as asked (499), never sent upstream; the stream and the question closed, nothing forwarded', async () => {
    const url = `${gateway.url}/mcp`;
    const mine = await rawSession(url, alice.key);
    const before = callsOf(upstream, 'echo');
    const streams = async () =>
      (await gateway.metrics.activeStreams.get()).values.reduce((sum, v) => sum + v.value, 0);
    const abort = new AbortController();
    const call = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${alice.key}`,
        'mcp-protocol-version': '2025-11-25',
        'mcp-session-id': mine.session,
      },
      body: JSON.stringify(echoCall(11, 'leaving')),
      signal: abort.signal,
    });
    const [question] = (await sseReader(call.body).messages(1)) as [{ id: string }];
    expect(await streams()).toBe(1);
    abort.abort();
    await sleep(200);
    expect(await streams()).toBe(0);
    // Its question is gone with it: the answer finds nothing, the call is never sent.
    expect((await mine.post(yes(question.id))).status).toBe(403);
    expect(callsOf(upstream, 'echo')).toBe(before);
    const records = await gateway.auditRecords();
    const left = records.find((r) => r.id === 11 && r.tool === 'echo');
    // Gone before any answer to its call began (the question is not one): 499, never let through.
    expect(left).toMatchObject({
      status: 499,
      decision: 'error',
      upstreamStatus: null,
      confirmation: { step: 'asked' },
    });
  });

  it('a response to the gateway outside a session, or in a batch of more, is never forwarded', async () => {
    const url = `${gateway.url}/mcp`;
    const mine = await rawSession(url, alice.key);
    const count = upstream.requests.length;
    const batch = await mine.post([
      yes('io.portcullis/confirm/x'),
      { jsonrpc: '2.0', method: 'notifications/initialized' },
    ]);
    expect(batch.status).toBeGreaterThanOrEqual(400);
    const bare = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${alice.key}`,
        'mcp-protocol-version': '2025-11-25',
      },
      body: JSON.stringify(yes('io.portcullis/confirm/x')),
    });
    expect(bare.status).toBe(403);
    expect(upstream.requests.length).toBe(count);
  });

  it('a client that does not take an SSE answer cannot be asked', async () => {
    const url = `${gateway.url}/mcp`;
    const mine = await rawSession(url, alice.key);
    const before = callsOf(upstream, 'echo');
    const refused = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json',
        authorization: `Bearer ${alice.key}`,
        'mcp-protocol-version': '2025-11-25',
        'mcp-session-id': mine.session,
      },
      body: JSON.stringify(echoCall(3)),
    });
    expect(refused.status).toBe(400);
    expect(await refused.json()).toMatchObject({
      error: { data: { reason: 'confirmation_unavailable', detail: 'no_event_stream' } },
    });
    expect(callsOf(upstream, 'echo')).toBe(before);
  });
});

describe('confirm: caller on a legacy session: no answer in time', () => {
  let upstream: V1Peer;
  let gateway: TestGateway;

  beforeAll(async () => {
    upstream = await startV1Server({ response: 'sse' });
    gateway = await startTestGateway({
      policy: policyFor(upstream.url, 'approvals: { confirmTimeoutSec: 5 }\n'),
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('is confirmation_expired after confirmTimeoutSec; the late yes is refused and nothing is forwarded', async () => {
    const before = callsOf(upstream, 'echo');
    const { client } = await v1Client(`${gateway.url}/mcp`, alice.key, async () => {
      await sleep(5_500);
      return { action: 'accept', content: { confirm: true } };
    });
    try {
      const refused = await client
        .callTool({ name: 'echo', arguments: { text: 'late' } })
        .catch((e: unknown) => e);
      expect(refused).toMatchObject({ data: { reason: 'confirmation_expired', detail: 'timeout' } });
      await sleep(500); // the late answer arrives, and is refused
    } finally {
      await client.close();
    }
    expect(callsOf(upstream, 'echo')).toBe(before);
    const records = await gateway.auditRecords();
    expect(records.some((r) => (r.confirmation as { step?: string } | undefined)?.step === 'expired')).toBe(
      true,
    );
  });
});

describe('confirm: caller on a legacy session across two gateways sharing Redis', () => {
  let redis: RedisServer;
  let upstream: V1Peer;
  let one: TestGateway;
  let two: TestGateway;

  beforeAll(async () => {
    redis = await startRedis();
    upstream = await startV1Server({ response: 'sse' });
    const policy = policyFor(upstream.url, `redis: { url: "${redis.url}", commandTimeoutMs: 500 }\n`);
    one = await startTestGateway({ policy });
    two = await startTestGateway({ policy });
  });
  afterAll(async () => {
    await one?.close();
    await two?.close();
    await upstream?.close();
    await redis?.stop();
  });

  it('the answer reaching the other replica completes the call; replayed on either, it is refused', async () => {
    const before = callsOf(upstream, 'echo');
    const answers: { status: number; body: string }[] = [];
    let answerBody = '';
    // The client's responses (POSTs without a method) go to gateway two, everything else to one.
    const split: typeof fetch = async (input, init) => {
      const body = typeof init?.body === 'string' ? init.body : '';
      const isResponse =
        init?.method === 'POST' && body !== '' && !('method' in (JSON.parse(body) as object));
      if (!isResponse) return fetch(input, init);
      answerBody = body;
      const there = await fetch(String(input).replace(one.url, two.url), init);
      answers.push({ status: there.status, body: await there.clone().text() });
      return there;
    };
    const { client } = await v1Client(
      `${one.url}/mcp`,
      alice.key,
      { action: 'accept', content: { confirm: true } },
      split,
    );
    let session = '';
    try {
      const result = await client.callTool({ name: 'echo', arguments: { text: 'across' } });
      expect((result.content as { text: string }[])[0]?.text).toBe('across');
      session = (client.transport as V1ClientTransport).sessionId as string;
    } finally {
      await client.close();
    }
    expect(answers).toEqual([{ status: 202, body: '' }]);
    expect(callsOf(upstream, 'echo')).toBe(before + 1);
    // The same answer again, on either gateway: taken once only.
    for (const gateway of [one, two]) {
      const again = await fetch(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${alice.key}`,
          'mcp-protocol-version': '2025-11-25',
          'mcp-session-id': session,
        },
        body: answerBody,
      });
      expect([403, 404]).toContain(again.status);
    }
    expect(callsOf(upstream, 'echo')).toBe(before + 1);
  });
});

describe('confirm: caller on a legacy session in front of a stdio server (server-everything)', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    gateway = await startTestGateway({
      policy: `identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [tools] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${everythingStdio()}
    authentication: { methods: [apiKey] }
    tools:
      echo: { scopes: tools, confirm: caller }
      get-sum: tools
`,
    });
  }, 30_000);
  afterAll(async () => {
    await gateway?.close();
  });

  it('asks, then forwards the confirmed call to the process and relays its answer into the stream', async () => {
    const { client, asked } = await v1Client(`${gateway.url}/mcp`, alice.key, {
      action: 'accept',
      content: { confirm: true },
    });
    try {
      const result = await client.callTool({ name: 'echo', arguments: { message: 'to the process' } });
      expect(JSON.stringify(result.content)).toContain('to the process');
      expect(asked).toHaveLength(1);
      expect(asked[0]).toContain('"message"="to the process"');
    } finally {
      await client.close();
    }
  });

  it('a decline never reaches the process', async () => {
    const { client } = await v1Client(`${gateway.url}/mcp`, alice.key, { action: 'decline' });
    try {
      const refused = await client
        .callTool({ name: 'echo', arguments: { message: 'no' } })
        .catch((e: unknown) => e);
      expect(refused).toMatchObject({ data: { reason: 'confirmation_declined' } });
    } finally {
      await client.close();
    }
    const records = await gateway.auditRecords();
    const calls = records.filter((r) => r.tool === 'echo');
    expect(calls.filter((r) => r.decision === 'deny' && r.upstreamStatus === null).length).toBeGreaterThan(0);
  });
});

describe('confirm: caller on a legacy session of a federated route', () => {
  let json: V1Peer;
  let sse: V1Peer;
  let gateway: TestGateway;

  beforeAll(async () => {
    json = await startV1Server({ response: 'json' });
    sse = await startV1Server({ response: 'sse' });
    gateway = await startTestGateway({
      policy: `identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [notes:write] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    servers:
      plain: { upstream: "${json.url}" }
      streamed: { upstream: "${sse.url}" }
    authentication: { methods: [apiKey] }
    tools:
      "plain__echo": { scopes: notes:write, confirm: caller }
      "streamed__echo": { scopes: notes:write, confirm: caller }
      "plain__add": notes:write
`,
    });
  });
  afterAll(async () => {
    await gateway?.close();
    await json?.close();
    await sse?.close();
  });

  it('asks before the call reaches the server that serves it, JSON or SSE, and relays its answer', async () => {
    const { client, asked } = await v1Client(`${gateway.url}/mcp`, alice.key, {
      action: 'accept',
      content: { confirm: true },
    });
    try {
      for (const [name, server] of [
        ['plain__echo', json],
        ['streamed__echo', sse],
      ] as const) {
        const before = callsOf(server, 'echo');
        const result = await client.callTool({ name, arguments: { text: `via ${name}` } });
        expect((result.content as { text: string }[])[0]?.text).toBe(`via ${name}`);
        expect(callsOf(server, 'echo')).toBe(before + 1);
      }
      expect(asked).toHaveLength(2);
      expect(asked[1]).toContain('"streamed__echo"');
    } finally {
      await client.close();
    }
  });

  it('a decline reaches neither server', async () => {
    const before = callsOf(json, 'echo') + callsOf(sse, 'echo');
    const { client } = await v1Client(`${gateway.url}/mcp`, alice.key, { action: 'decline' });
    try {
      const refused = await client
        .callTool({ name: 'plain__echo', arguments: { text: 'no' } })
        .catch((e: unknown) => e);
      expect(refused).toMatchObject({ data: { reason: 'confirmation_declined' } });
    } finally {
      await client.close();
    }
    expect(callsOf(json, 'echo') + callsOf(sse, 'echo')).toBe(before);
  });
});
