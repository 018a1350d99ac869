/** The caller's side of `confirm: approver` without a web page (unit): what is asked, bound and refused. */
import { describe, expect, it } from 'vitest';
import { createApproverConfirmation } from '../../../src/approvals/caller.js';
import type { ApprovalsConfig } from '../../../src/approvals/login.js';
import { createLocalApprovalStore } from '../../../src/approvals/store.js';
import { argumentsHashOf, type Bindings } from '../../../src/confirm/confirmation.js';
import { isRefusal, type Refusal } from '../../../src/errors.js';
import type { Authorized } from '../../../src/exchange.js';
import { createSealer } from '../../../src/proxy/seal.js';
import { createMemoryLimiter } from '../../../src/ratelimit/memory.js';
import type { UpstreamAnswer } from '../../../src/upstream/upstream.js';

const APPROVALS: ApprovalsConfig = {
  confirmTimeoutSec: 120,
  ttlSec: 900,
  allowSelfApproval: false,
  owners: {},
  createLimit: '2/minute',
  publicUrl: 'https://gw.example.com/prefix/',
  oidc: { issuer: 'https://idp.example.com', clientId: 'c', scopes: [] },
  approverScopes: ['mcp:approve'],
};

function exchangeOf(
  args: unknown,
  capabilities: unknown = { elicitation: { url: {} } },
  requestState?: string,
) {
  const params = {
    name: 'drop',
    arguments: args,
    ...(requestState === undefined ? {} : { requestState }),
    _meta: {
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientCapabilities': capabilities,
    },
  };
  const message = { jsonrpc: '2.0', id: 3, method: 'tools/call', params };
  return {
    identity: { key: 'apiKey:mallory', subject: 'mallory', methods: ['apiKey'], scopes: new Set() },
    route: { path: '/mcp', pinnedToolHash: () => null },
    version: '2026-07-28',
    body: {
      batch: false,
      forward: JSON.stringify(message),
      messages: [{ kind: 'request', id: 3, method: 'tools/call', params }],
    },
    decisions: [{ effect: 'allow', rule: 'tools.drop', required: [], missing: [], confirm: 'approver' }],
    confirmation: undefined,
  } as unknown as Authorized;
}

const bindingsOf = (args: unknown): Bindings => ({
  identity: 'apiKey:mallory',
  route: '/mcp',
  tool: 'drop',
  argumentsHash: argumentsHashOf(args),
  pinHash: null,
  store: 'process:test',
});

async function resultOf(answer: UpstreamAnswer): Promise<Record<string, unknown>> {
  let text = '';
  for await (const chunk of answer.body) text += String(chunk);
  return JSON.parse(text) as Record<string, unknown>;
}

describe('confirm: approver, the caller’s side', () => {
  const store = createLocalApprovalStore();
  const created: string[] = [];
  const links: string[] = [];
  const approver = createApproverConfirmation({
    approvals: APPROVALS,
    store,
    sealer: createSealer(undefined),
    limiter: createMemoryLimiter(),
    notifier: { pending: (_approval, link) => links.push(link) },
    onCreated: (approval) => created.push(approval.id),
  });

  it('asks with a URL elicitation under the public URL (its path kept) and a sealed state; the approvers get the page', async () => {
    const args = { table: 'users' };
    const answer = (await approver(exchangeOf(args), 0, bindingsOf(args))) as UpstreamAnswer;
    const { result } = (await resultOf(answer)) as {
      result: {
        resultType: string;
        inputRequests: Record<string, { params: Record<string, unknown> }>;
        requestState: string;
      };
    };
    expect(result.resultType).toBe('input_required');
    const question = result.inputRequests['io.portcullis/approval']?.params ?? {};
    const id = created.at(-1) as string;
    expect(question).toMatchObject({
      mode: 'url',
      elicitationId: id,
      url: `https://gw.example.com/prefix/portcullis/approvals/${id}/status`,
    });
    expect(links.at(-1)).toBe(`https://gw.example.com/prefix/portcullis/approvals/${id}`);
    // Pending: the retry is asked again, same approval; other arguments with that state are refused.
    const again = (await approver(
      exchangeOf(args, undefined, result.requestState),
      0,
      bindingsOf(args),
    )) as UpstreamAnswer;
    expect(JSON.stringify(await resultOf(again))).toContain(id);
    const other = { table: 'payments' };
    const refused = (await approver(
      exchangeOf(other, undefined, result.requestState),
      0,
      bindingsOf(other),
    )) as Refusal;
    expect(refused).toMatchObject({
      reason: 'confirmation_expired',
      data: { approval: id, detail: 'mismatch' },
    });
    // Approved: forwarded once without the state; the same state again is used up.
    await store.decide(id, 'approved', { issuer: 'https://idp.example.com', subject: 'carol' }, Date.now());
    const forwarded = (await approver(
      exchangeOf(args, undefined, result.requestState),
      0,
      bindingsOf(args),
    )) as Authorized;
    expect(isRefusal(forwarded)).toBe(false);
    expect(forwarded.body.forward).not.toContain('requestState');
    expect(forwarded.confirmation).toMatchObject({ step: 'approved', id });
    const twice = (await approver(
      exchangeOf(args, undefined, result.requestState),
      0,
      bindingsOf(args),
    )) as Refusal;
    expect(twice).toMatchObject({ reason: 'confirmation_expired', data: { detail: 'used' } });
  });

  it('a client that cannot open a URL is 400 -32021 with requiredCapabilities; nothing is created', async () => {
    const before = created.length;
    const refused = (await approver(
      exchangeOf({}, { elicitation: { form: {} } }),
      0,
      bindingsOf({}),
    )) as Refusal;
    expect(refused).toMatchObject({
      reason: 'confirmation_unavailable',
      modern: true,
      data: { requiredCapabilities: { elicitation: { url: {} } } },
    });
    expect(created.length).toBe(before);
  });

  it('creating approvals is rate-limited per identity (createLimit), and arguments over 64 KiB are not asked', async () => {
    const fresh = createApproverConfirmation({
      approvals: APPROVALS,
      store: createLocalApprovalStore(),
      sealer: createSealer(undefined),
      limiter: createMemoryLimiter(),
      notifier: { pending: () => undefined },
      onCreated: () => undefined,
    });
    for (const n of [1, 2])
      expect(isRefusal(await fresh(exchangeOf({ n }), 0, bindingsOf({ n })))).toBe(false);
    expect(await fresh(exchangeOf({ n: 3 }), 0, bindingsOf({ n: 3 }))).toMatchObject({
      reason: 'rate_limited',
    });
    const big = { blob: 'x'.repeat(70_000) };
    const other = createApproverConfirmation({
      approvals: APPROVALS,
      store: createLocalApprovalStore(),
      sealer: createSealer(undefined),
      limiter: createMemoryLimiter(),
      notifier: { pending: () => undefined },
      onCreated: () => undefined,
    });
    expect(await other(exchangeOf(big), 0, bindingsOf(big))).toMatchObject({
      reason: 'confirmation_unavailable',
      data: { detail: 'too_long_to_show' },
    });
  });
});
