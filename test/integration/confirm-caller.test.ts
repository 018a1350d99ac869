/**
 * `confirm: caller` on the 2026-07-28 protocol: the gateway asks the calling user, through their
 * own SDK v2 client's elicitation handler, before a dangerous call is forwarded — with an
 * `input_required` result under its reserved key and a sealed, single-use `requestState`. The
 * upstream (SDK v2) is proven to see nothing until the yes, and never the gateway's own keys.
 */
import {
  Client as V2Client,
  StreamableHTTPClientTransport as V2ClientTransport,
} from '@modelcontextprotocol/client';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { acceptedContent, createMcpHandler, inputRequired, McpServer } from '@modelcontextprotocol/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as z from 'zod';
import { newApiKey } from '../../src/auth/api-key.js';
import { listenRecording, type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { type RedisServer, startRedis } from '../support/redis.js';
import { sleep } from '../support/wait.js';
import { META } from '../support/wire.js';

const alice = newApiKey('pk_alice_');
const bob = newApiKey('pk_bob_');
const KEY = 'io.portcullis/confirm';

type Answer = {
  action: 'accept' | 'decline' | 'cancel';
  content?: Record<string, string | number | boolean | string[]>;
};

describe('confirm: caller on the modern protocol', () => {
  let upstream: Peer;
  let gateway: TestGateway;

  /** `echo` calls that reached the upstream. */
  const echoes = () =>
    upstream.requests.filter(
      (r) => (r.body as { params?: { name?: unknown } } | undefined)?.params?.name === 'echo',
    );

  /** A raw 2026-07-28 tools/call of echo, as `key`'s. */
  const raw = (key: string, params: Record<string, unknown>, meta: Record<string, unknown> = META) =>
    fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        authorization: `Bearer ${key}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'drop table' }, ...params, _meta: meta },
      }),
    });
  const withElicitation = {
    ...META,
    'io.modelcontextprotocol/clientCapabilities': { elicitation: {} },
  };
  /** The question the gateway asks (its input_required result). */
  const ask = async (key = alice.key, args: Record<string, unknown> = { text: 'drop table' }) => {
    const answer = await raw(key, { arguments: args }, withElicitation);
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as {
      result: {
        resultType: string;
        inputRequests: Record<string, { method: string; params: { message: string } }>;
        requestState: string;
      };
    };
    return body.result;
  };

  /** An SDK v2 client that answers the gateway's question with `answer`. */
  const client = async (key: string, answer: Answer | undefined) => {
    const c = new V2Client(
      { name: 'confirming-client', version: '1.0.0' },
      {
        ...(answer === undefined ? {} : { capabilities: { elicitation: {} } }),
        versionNegotiation: { mode: { pin: '2026-07-28' } },
      },
    );
    const asked: string[] = [];
    if (answer !== undefined)
      c.setRequestHandler('elicitation/create', async (request) => {
        asked.push(String((request.params as { message?: unknown }).message));
        return answer;
      });
    await c.connect(
      new V2ClientTransport(new URL(`${gateway.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${key}` } },
      }),
    );
    return { client: c, asked };
  };

  beforeAll(async () => {
    upstream = await startV2Server({ response: 'json' });
    gateway = await startTestGateway({
      policy: `identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [notes:write] }
    - { id: bob, hash: "${bob.hash}", scopes: [notes:write] }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    tools:
      echo: { scopes: notes:write, confirm: caller }
      add: notes:write
  - route: /shadow
    resource: http://127.0.0.1/shadow
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    mode: shadow
    tools:
      echo: { scopes: notes:admin, confirm: caller }
`,
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('asks the caller through their client, showing the tool and the arguments, and forwards on confirm: true', async () => {
    const before = echoes().length;
    const { client: c, asked } = await client(alice.key, { action: 'accept', content: { confirm: true } });
    try {
      const result = await c.callTool({
        name: 'echo',
        arguments: { text: 'drop table', password: 'hunter2' },
      });
      expect((result.content as { text: string }[])[0]?.text).toBe('drop table');
      expect(asked).toHaveLength(1);
      expect(asked[0]).toContain('echo');
      expect(asked[0]).toContain('"text"="drop table"');
      expect(asked[0]).toContain('"password"=•••');
      expect(asked[0]).not.toContain('hunter2');
      // A call without confirm goes straight through.
      expect((await c.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).content).toBeDefined();
    } finally {
      await c.close();
    }
    // The upstream heard the call once, after the yes, without the gateway's key or state.
    const heard = echoes().slice(before);
    expect(heard).toHaveLength(1);
    const params = (heard[0]?.body as { params?: Record<string, unknown> } | undefined)?.params ?? {};
    expect(params.requestState).toBeUndefined();
    expect(params.inputResponses).toBeUndefined();
    expect(JSON.stringify(heard[0])).not.toContain(KEY);
  });

  it.each<[string, Answer]>([
    ['a decline', { action: 'decline' }],
    ['a cancel', { action: 'cancel' }],
    ['a bare accept without confirm: true', { action: 'accept', content: {} }],
    ['confirm: false', { action: 'accept', content: { confirm: false } }],
  ])('%s is 403 confirmation_declined, never forwarded', async (_, answer) => {
    const before = echoes().length;
    const { client: c } = await client(alice.key, answer);
    try {
      await expect(c.callTool({ name: 'echo', arguments: { text: 'drop table' } })).rejects.toThrow();
    } finally {
      await c.close();
    }
    expect(echoes().length).toBe(before);
  });

  it('a shadow route forwards denials, but never a confirm call unconfirmed', async () => {
    const before = echoes().length;
    const answer = await fetch(`${gateway.url}/shadow`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        authorization: `Bearer ${alice.key}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: { name: 'echo', arguments: { text: 'drop table' }, _meta: withElicitation },
      }),
    });
    expect(answer.status).toBe(200);
    expect(((await answer.json()) as { result: { resultType: string } }).result.resultType).toBe(
      'input_required',
    );
    expect(echoes().length).toBe(before);
  });

  it('a client without elicitation is 400 -32021 with requiredCapabilities, never forwarded', async () => {
    const before = echoes().length;
    const answer = await raw(alice.key, {});
    expect(answer.status).toBe(400);
    const body = (await answer.json()) as { error: { code: number; data: Record<string, unknown> } };
    expect(body.error.code).toBe(-32021);
    expect(body.error.data).toMatchObject({
      reason: 'confirmation_unavailable',
      requiredCapabilities: { elicitation: {} },
    });
    expect(echoes().length).toBe(before);
  });

  it('a requestState is single use, bound to the caller, the arguments and the gateway’s seal', async () => {
    const before = echoes().length;
    const question = await ask();
    expect(question.resultType).toBe('input_required');
    expect(Object.keys(question.inputRequests)).toEqual([KEY]);
    expect(question.inputRequests[KEY]?.method).toBe('elicitation/create');
    const yes = { [KEY]: { action: 'accept', content: { confirm: true } } };
    const retry = (key: string, state: string, args = { text: 'drop table' }) =>
      raw(key, { arguments: args, requestState: state, inputResponses: yes }, withElicitation);
    const reasonOf = async (answer: Response) => {
      const body = (await answer.json()) as { error?: { data?: { reason?: string; detail?: string } } };
      return `${answer.status} ${body.error?.data?.reason} ${body.error?.data?.detail}`;
    };
    // Another caller, other arguments, an altered state: refused, and the state stays unused…
    expect(await reasonOf(await retry(bob.key, question.requestState))).toBe(
      '403 confirmation_expired mismatch',
    );
    expect(await reasonOf(await retry(alice.key, question.requestState, { text: 'drop database' }))).toBe(
      '403 confirmation_expired mismatch',
    );
    const altered = `${question.requestState.slice(0, -4)}${question.requestState.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    const alteredAnswer = await retry(alice.key, altered);
    expect(alteredAnswer.status).toBe(200); // not the gateway's: asked again, never forwarded
    expect(((await alteredAnswer.json()) as { result: { resultType: string } }).result.resultType).toBe(
      'input_required',
    );
    expect(echoes().length).toBe(before);
    // …so its caller's first yes goes through, and a second is refused.
    const first = await retry(alice.key, question.requestState);
    expect(first.status).toBe(200);
    expect(
      ((await first.json()) as { result: { content: { text: string }[] } }).result.content[0]?.text,
    ).toBe('drop table');
    expect(await reasonOf(await retry(alice.key, question.requestState))).toBe(
      '403 confirmation_expired used',
    );
    expect(echoes().length).toBe(before + 1);
  });

  it('audits the question and the answer as linked records, and counts them', async () => {
    const question = await ask();
    const yes = { [KEY]: { action: 'accept', content: { confirm: true } } };
    const answer = await raw(
      alice.key,
      { requestState: question.requestState, inputResponses: yes },
      withElicitation,
    );
    expect(answer.status).toBe(200);
    await answer.text();
    const records = (await gateway.auditRecords()).filter(
      (r) => r.tool === 'echo' && r.confirmation !== undefined,
    );
    const last = records.slice(-2) as { confirmation: { step: string; id: string }; decision: string }[];
    expect(last.map((r) => r.confirmation.step)).toEqual(['asked', 'accepted']);
    expect(last[0]?.confirmation.id).toBe(last[1]?.confirmation.id);
    const metrics = await (await fetch(`${gateway.adminUrl}/metrics`)).text();
    for (const result of ['asked', 'accepted', 'declined', 'expired', 'unavailable'])
      expect(metrics).toMatch(
        new RegExp(`portcullis_confirmations_total\\{route="/mcp",result="${result}"\\} [1-9]`),
      );
    expect(metrics).toMatch(/portcullis_confirmation_duration_seconds_count\{route="\/mcp"\} [1-9]/);
  });
});

describe('confirm: caller across two gateways sharing Redis', () => {
  let redis: RedisServer;
  let upstream: Peer;
  let one: TestGateway;
  let two: TestGateway;
  const sessionKey = Buffer.alloc(32, 9).toString('base64');

  beforeAll(async () => {
    redis = await startRedis();
    upstream = await startV2Server({ response: 'json' });
    const policy = `redis: { url: "${redis.url}", commandTimeoutMs: 200 }
sessions: { keys: ["${sessionKey}"] }
identities:
  apiKeys: [{ id: alice, hash: "${alice.hash}", scopes: [notes:write] }]
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    tools: { echo: { scopes: notes:write, confirm: caller } }
`;
    one = await startTestGateway({ policy });
    two = await startTestGateway({ policy });
    await sleep(300);
  });

  afterAll(async () => {
    await Promise.all([one?.close(), two?.close()]);
    await upstream?.close();
    await redis?.stop();
  });

  const post = (gateway: TestGateway, params: Record<string, unknown>) =>
    fetch(`${gateway.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
        authorization: `Bearer ${alice.key}`,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/call',
        params: {
          name: 'echo',
          arguments: { text: 'wire money' },
          ...params,
          _meta: { ...META, 'io.modelcontextprotocol/clientCapabilities': { elicitation: {} } },
        },
      }),
    });
  const calls = () =>
    upstream.requests.filter(
      (r) => (r.body as { params?: { name?: unknown } } | undefined)?.params?.name === 'echo',
    ).length;

  it('a yes asked by one replica is taken by the other, once: the nonce is single use across them', async () => {
    const question = (await (await post(one, {})).json()) as { result: { requestState: string } };
    const yes = {
      requestState: question.result.requestState,
      inputResponses: { [KEY]: { action: 'accept', content: { confirm: true } } },
    };
    const before = calls();
    const [a, b] = await Promise.all([post(two, yes), post(one, yes)]);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([200, 403]);
    const refused = (await (a.status === 403 ? a : b).json()) as { error: { data: Record<string, unknown> } };
    expect(refused.error.data).toMatchObject({ reason: 'confirmation_expired', detail: 'used' });
    await (a.status === 200 ? a : b).text();
    expect(calls()).toBe(before + 1);
  });

  it('Redis down: a yes is refused 503 limiter_unavailable (never taken twice), nothing forwarded', async () => {
    const question = (await (await post(one, {})).json()) as { result: { requestState: string } };
    const before = calls();
    await redis.stop();
    try {
      const answer = await post(two, {
        requestState: question.result.requestState,
        inputResponses: { [KEY]: { action: 'accept', content: { confirm: true } } },
      });
      expect(answer.status).toBe(503);
      expect(answer.headers.get('retry-after')).toBe('1');
      await answer.text();
    } finally {
      await redis.start();
    }
    expect(calls()).toBe(before);
  });
});

describe('confirm: caller in front of an upstream that itself asks for input', () => {
  let upstream: Peer;
  let gateway: TestGateway;
  const UPSTREAM_STATE = 'upstream-state-42';

  beforeAll(async () => {
    const handler = createMcpHandler(
      () => {
        const server = new McpServer({ name: 'asking', version: '1.0.0' }, { capabilities: { tools: {} } });
        server.registerTool(
          'transfer',
          { description: 'Sends money, asking why first', inputSchema: z.object({ amount: z.number() }) },
          async ({ amount }, ctx) => {
            const reason = acceptedContent<{ why?: string }>(ctx.mcpReq.inputResponses, 'reason');
            if (reason?.why === undefined)
              return inputRequired({
                inputRequests: {
                  reason: inputRequired.elicit({
                    message: 'Why?',
                    requestedSchema: z.object({ why: z.string() }),
                  }),
                },
                requestState: UPSTREAM_STATE,
              });
            return { content: [{ type: 'text', text: `sent ${amount} for ${reason.why}` }] };
          },
        );
        return server;
      },
      { responseMode: 'json', legacy: 'reject', keepAliveMs: 0 },
    );
    const node = toNodeHandler(handler);
    upstream = await listenRecording(
      (req, res, body) => node(req as never, res, body),
      () => handler.close(),
    );
    gateway = await startTestGateway({
      policy: `identities:
  apiKeys: [{ id: alice, hash: "${alice.hash}", scopes: [money:send] }]
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: ${upstream.url}
    authentication: { methods: [apiKey] }
    tools: { transfer: { scopes: money:send, confirm: caller } }
`,
    });
  });

  afterAll(async () => {
    await gateway?.close();
    await upstream?.close();
  });

  it('asks once; the upstream’s own question and state travel through, its state sealed inside the gateway’s', async () => {
    const c = new V2Client(
      { name: 'confirming-client', version: '1.0.0' },
      { capabilities: { elicitation: {} }, versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    const asked: string[] = [];
    c.setRequestHandler('elicitation/create', async (request) => {
      const message = String((request.params as { message?: unknown }).message);
      asked.push(message);
      return message === 'Why?'
        ? { action: 'accept', content: { why: 'rent' } }
        : { action: 'accept', content: { confirm: true } };
    });
    await c.connect(
      new V2ClientTransport(new URL(`${gateway.url}/mcp`), {
        requestInit: { headers: { authorization: `Bearer ${alice.key}` } },
      }),
    );
    try {
      const result = await c.callTool({ name: 'transfer', arguments: { amount: 100 } });
      expect((result.content as { text: string }[])[0]?.text).toBe('sent 100 for rent');
    } finally {
      await c.close();
    }
    // The gateway asked once, the upstream once.
    expect(asked.filter((m) => m === 'Why?')).toHaveLength(1);
    expect(asked.filter((m) => m.includes('transfer'))).toHaveLength(1);
    const calls = upstream.requests
      .map((r) => r.body as { method?: string; params?: Record<string, unknown> })
      .filter((b) => b?.method === 'tools/call');
    // The upstream: first the confirmed call without any state, then its own state back with the answer.
    expect(calls).toHaveLength(2);
    expect(calls[0]?.params?.requestState).toBeUndefined();
    expect(calls[1]?.params?.requestState).toBe(UPSTREAM_STATE);
    expect(calls[1]?.params?.inputResponses).toEqual({
      reason: { action: 'accept', content: { why: 'rent' } },
    });
    expect(JSON.stringify(upstream.requests)).not.toContain(KEY);
  });
});
