/**
 * Argument-level policy (issue 18): a tool entry's `when` CEL rule, through a real gateway in
 * front of the SDK v2 server fixture, called by the SDK v2 client and raw requests. A call its
 * scopes allow is forwarded only when the rule holds for its arguments and its caller; otherwise
 * 403 `argument_denied` naming the rule, and the server never hears of it. A rule that does not
 * compile stops the policy from loading, naming the file position.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { ConfigError, parseConfig } from '../../src/config/load.js';
import { connectV2Client, type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { firstText, rpcMethod } from '../support/inspect.js';
import { toolCall } from '../support/modern-call.js';

const alice = newApiKey();
const bob = newApiKey();
let upstream: Peer;
let gateway: TestGateway;
let url: string;

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
    upstream: "${upstream.url}"
    authentication: { methods: [apiKey] }
    tools:
      echo:
        scopes: notes:write
        when: 'args.text.startsWith("ok:") && !args.text.contains("..")'
      add: { scopes: notes:write, when: 'identity.subject == "alice" && args.a <= 100.0' }
`,
  });
  url = `${gateway.url}/mcp`;
});

afterAll(async () => {
  await gateway?.close();
  await upstream?.close();
});

const callsTo = (from: number) =>
  upstream.requests
    .slice(from)
    .filter((r) => rpcMethod(r) === 'tools/call')
    .map((r) => (r.body as { params: { name: string } }).params.name);

describe('when rules', () => {
  it('forward a call whose arguments satisfy the rule (SDK v2 client)', async () => {
    const client = await connectV2Client(url, { headers: { authorization: `Bearer ${alice.key}` } });
    try {
      expect(firstText(await client.callTool({ name: 'echo', arguments: { text: 'ok:hello' } }))).toBe(
        'ok:hello',
      );
      expect(firstText(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }))).toBe('5');
    } finally {
      await client.close();
    }
  });

  it('refuse one whose arguments break it, naming the rule, before the server hears of it', async () => {
    const before = upstream.requests.length;
    for (const text of ['nope', 'ok:../../etc/passwd']) {
      const answer = await toolCall(url, 'echo', { text }, { key: alice.key, id: 4 });
      expect(answer.status).toBe(403);
      expect(answer.body).toMatchObject({
        id: 4,
        error: { code: -31092, data: { reason: 'argument_denied', rule: 'tools.echo' } },
      });
      expect(JSON.stringify(answer.body)).not.toContain('passwd');
    }
    expect(callsTo(before)).toEqual([]);
  });

  it('decide on the caller: the same call is allowed to one identity and refused to another', async () => {
    const before = upstream.requests.length;
    expect((await toolCall(url, 'add', { a: 1, b: 1 }, { key: alice.key })).status).toBe(200);
    const refused = await toolCall(url, 'add', { a: 1, b: 1 }, { key: bob.key });
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ error: { data: { reason: 'argument_denied', rule: 'tools.add' } } });
    expect(callsTo(before)).toEqual(['add']);
  });

  it('deny when the rule cannot be evaluated (a missing argument), saying so', async () => {
    const before = upstream.requests.length;
    const answer = await toolCall(url, 'echo', {}, { key: alice.key });
    expect(answer.status).toBe(403);
    expect(answer.body).toMatchObject({
      error: { data: { reason: 'argument_denied', detail: 'evaluation_error' } },
    });
    expect(callsTo(before)).toEqual([]);
    const records = await gateway.auditRecords();
    expect(records.at(-1)).toMatchObject({
      decision: 'deny',
      reason: 'argument_denied',
      rule: 'tools.echo',
      tool: 'echo',
      evaluationError: 'a field the rule reads is missing',
    });
  });

  it('stop the policy from loading when a rule does not compile, naming file, line and column', () => {
    const policy = `identities: { anonymous: { scopes: [] } }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: http://127.0.0.1:1/mcp
    authentication: { methods: [anonymous] }
    tools:
      echo: { scopes: notes:write, when: 'argz.text == "x"' }
`;
    let error: unknown;
    try {
      parseConfig(policy, { file: 'p.yaml', env: {} });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const [problem] = (error as ConfigError).problems;
    expect(problem).toMatchObject({ file: 'p.yaml', line: 8, path: 'routes[0].tools.echo.when' });
    expect(problem?.message).toContain("unknown variable 'argz'");
  });
});
