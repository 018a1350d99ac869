import { describe, expect, it } from 'vitest';
import { argumentsHashOf, sealContinued } from '../../../src/confirm/confirmation.js';
import { createOpenQuestions } from '../../../src/confirm/questions.js';
import { createUsedNonces } from '../../../src/confirm/used-nonces.js';
import { isRefusal, type Refusal } from '../../../src/errors.js';
import type { Authorized } from '../../../src/exchange.js';
import { createSealer } from '../../../src/proxy/seal.js';
import { createConcurrency } from '../../../src/ratelimit/concurrency.js';
import { createConfirmation } from '../../../src/server/confirm.js';
import type { UpstreamAnswer } from '../../../src/upstream/upstream.js';

const KEY = 'io.portcullis/confirm';
const META = {
  'io.modelcontextprotocol/protocolVersion': '2026-07-28',
  'io.modelcontextprotocol/clientCapabilities': { elicitation: {} },
};

/** The parts of an authorized exchange the confirm stage reads (a unit test's stand-in). */
function exchangeOf(params: Record<string, unknown>, pin: () => string | null, version = '2026-07-28') {
  const message = {
    jsonrpc: '2.0',
    id: 7,
    method: 'tools/call',
    params: { name: 'drop', ...params, _meta: META },
  };
  return {
    identity: { key: 'apiKey:alice', subject: 'alice', methods: ['apiKey'], scopes: new Set() },
    route: { path: '/mcp', pinnedToolHash: pin },
    version,
    body: {
      batch: false,
      forward: JSON.stringify(message),
      messages: [{ kind: 'request', id: 7, method: 'tools/call', params: message.params }],
    },
    decisions: [{ effect: 'allow', rule: 'tools.drop', required: [], missing: [], confirm: 'caller' }],
    confirmation: undefined,
  } as unknown as Authorized;
}

const LIMITS = { maxConcurrentPerIdentity: 8, maxStreamsPerIdentity: 8, maxConcurrentTotal: 64 };

describe('the confirm stage', () => {
  let now = 1_800_000_000_000;
  const sealer = createSealer(undefined);
  const used = createUsedNonces();
  const confirm = createConfirmation({
    sealer,
    used,
    questions: createOpenQuestions(),
    concurrency: createConcurrency(LIMITS),
    timeoutMs: 60_000,
    now: () => now,
  });
  const question = (pin: () => string | null, args: unknown = { table: 'users' }) => {
    const asked = confirm(exchangeOf({ arguments: args }, pin));
    if (isRefusal(asked) || asked instanceof Promise || !('status' in asked)) throw new Error('not asked');
    return asked as UpstreamAnswer;
  };
  const stateOf = async (answer: UpstreamAnswer) => {
    let text = '';
    for await (const chunk of answer.body) text += String(chunk);
    return (JSON.parse(text) as { result: { requestState: string } }).result.requestState;
  };
  const yes = (state: string, extra: Record<string, unknown> = {}) => ({
    arguments: { table: 'users' },
    requestState: state,
    inputResponses: { [KEY]: { action: 'accept', content: { confirm: true } }, ...extra },
  });

  it('is bound to the pinned definition: a pin that changed since the question makes it another call', async () => {
    let pin = 'sha256:aaa';
    const state = await stateOf(question(() => pin));
    pin = 'sha256:bbb';
    const refused = confirm(exchangeOf(yes(state), () => pin)) as Refusal;
    expect(refused.reason).toBe('confirmation_expired');
    expect(refused.data).toMatchObject({ detail: 'mismatch' });
    pin = 'sha256:aaa';
    expect(isRefusal(confirm(exchangeOf(yes(state), () => pin)))).toBe(false);
  });

  it('a no is final: the same question cannot bring a yes afterwards', async () => {
    const state = await stateOf(question(() => null));
    const no = { ...yes(state), inputResponses: { [KEY]: { action: 'decline' } } };
    expect((confirm(exchangeOf(no, () => null)) as Refusal).reason).toBe('confirmation_declined');
    expect((confirm(exchangeOf(yes(state), () => null)) as Refusal).data).toMatchObject({ detail: 'used' });
  });

  it('opens only where its nonce is remembered: another process (a restart) refuses it', async () => {
    const state = await stateOf(question(() => null));
    const restarted = createConfirmation({
      sealer,
      used: createUsedNonces(),
      questions: createOpenQuestions(),
      concurrency: createConcurrency(LIMITS),
      timeoutMs: 60_000,
      now: () => now,
    });
    expect((restarted(exchangeOf(yes(state), () => null)) as Refusal).data).toMatchObject({
      detail: 'mismatch',
    });
  });

  it('expires at the timeout, to the millisecond the used nonce may be forgotten', async () => {
    const state = await stateOf(question(() => null));
    now += 60_000;
    const refused = confirm(exchangeOf(yes(state), () => null)) as Refusal;
    expect(refused.data).toMatchObject({ detail: 'expired' });
  });

  it('forwards the call without its own key and state, keeping the client’s other input responses', async () => {
    const state = await stateOf(question(() => null));
    const confirmed = confirm(
      exchangeOf(yes(state, { 'server/key': { answer: 42 } }), () => null),
    ) as Authorized;
    const forwarded = JSON.parse(confirmed.body.forward) as { params: Record<string, unknown> };
    expect(forwarded.params.requestState).toBeUndefined();
    expect(forwarded.params.inputResponses).toEqual({ 'server/key': { answer: 42 } });
    expect(forwarded.params.arguments).toEqual({ table: 'users' });
    expect(confirmed.confirmation?.step).toBe('accepted');
  });

  it('continues a confirmed call once per upstream state: its own state restored, a replay refused', () => {
    const bindings = {
      identity: 'apiKey:alice',
      route: '/mcp',
      tool: 'drop',
      argumentsHash: argumentsHashOf({ table: 'users' }),
      pinHash: null,
      store: used.scope,
    };
    const state = sealContinued(sealer, bindings, 'upstream-7', now, 60_000);
    const retry = () =>
      confirm(
        exchangeOf(
          {
            arguments: { table: 'users' },
            requestState: state,
            inputResponses: { reason: { action: 'accept' } },
          },
          () => null,
        ),
      );
    const continued = retry() as Authorized;
    const forwarded = JSON.parse(continued.body.forward) as { params: Record<string, unknown> };
    expect(forwarded.params.requestState).toBe('upstream-7');
    expect(forwarded.params.inputResponses).toEqual({ reason: { action: 'accept' } });
    expect(continued.confirmation?.step).toBe('continued');
    expect((retry() as Refusal).data).toMatchObject({ detail: 'used' });
    // Another caller's retry of it is another call.
    const other = { ...bindings, identity: 'apiKey:bob' };
    const foreign = sealContinued(sealer, other, 'upstream-8', now, 60_000);
    const refused = confirm(
      exchangeOf({ arguments: { table: 'users' }, requestState: foreign }, () => null),
    ) as Refusal;
    expect(refused.data).toMatchObject({ detail: 'mismatch' });
  });

  it('refuses a batch holding a confirm call whole, one error per request', () => {
    const exchange = exchangeOf({ arguments: {} }, () => null, '2025-03-26') as unknown as {
      body: { batch: boolean; messages: unknown[] };
      decisions: unknown[];
    };
    exchange.body = {
      ...exchange.body,
      batch: true,
      messages: [...exchange.body.messages, { kind: 'request', id: 8, method: 'ping' }],
    };
    exchange.decisions = [
      ...exchange.decisions,
      { effect: 'allow', rule: 'method-table', required: [], missing: [] },
    ];
    const refused = confirm(exchange as unknown as Authorized) as Refusal;
    expect(refused).toMatchObject({ reason: 'confirmation_unavailable', ids: [7, 8], batch: true });
  });

  it('refuses a call whose entry needs an approver when no approvals are configured: never forwarded', () => {
    const exchange = exchangeOf({ arguments: {} }, () => null);
    const approver = {
      ...exchange,
      decisions: [{ effect: 'allow', rule: 'tools.drop', required: [], missing: [], confirm: 'approver' }],
    } as unknown as Authorized;
    expect(confirm(approver)).toMatchObject({
      reason: 'confirmation_unavailable',
      data: { detail: 'no_approvals' },
    });
  });

  it('refuses a legacy call it cannot ask: no session, or a session whose client declared no form elicitation', () => {
    const refused = confirm(exchangeOf({ arguments: {} }, () => null, '2025-11-25')) as Refusal;
    expect(refused.reason).toBe('confirmation_unavailable');
    expect(refused.data).toMatchObject({ detail: 'no_session' });
    expect(refused.modern).toBeUndefined();
    const session = {
      upstreamId: 'up-1',
      route: '/mcp',
      identity: 'apiKey:ci',
      version: '2025-11-25',
      issuedAt: 0,
    };
    const without = { ...exchangeOf({ arguments: {} }, () => null, '2025-11-25'), session } as Authorized;
    expect((confirm(without) as Refusal).data).toMatchObject({
      detail: 'no_elicitation',
      requiredCapabilities: { elicitation: { form: {} } },
    });
  });
});
