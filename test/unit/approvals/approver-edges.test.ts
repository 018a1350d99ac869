import { describe, expect, it } from 'vitest';
import { createApproverConfirmation } from '../../../src/approvals/caller.js';
import type { ApprovalsConfig } from '../../../src/approvals/login.js';
import { type ApprovalStore, createLocalApprovalStore } from '../../../src/approvals/store.js';
import { argumentsHashOf, type Bindings, shownArguments } from '../../../src/confirm/confirmation.js';
import { isRefusal } from '../../../src/errors.js';
import type { Authorized } from '../../../src/exchange.js';
import { createSealer } from '../../../src/proxy/seal.js';
import { createMemoryLimiter } from '../../../src/ratelimit/memory.js';
import type { UpstreamAnswer } from '../../../src/upstream/upstream.js';

const APPROVALS: ApprovalsConfig = {
  confirmTimeoutSec: 120,
  ttlSec: 900,
  allowSelfApproval: false,
  owners: {},
  createLimit: '20/minute',
  publicUrl: 'https://gw.example.com',
  oidc: { issuer: 'https://idp.example.com', clientId: 'c', scopes: [] },
  approverScopes: ['mcp:approve'],
};

function exchangeOf(args: unknown, requestState?: string) {
  const params = {
    name: 'drop',
    arguments: args,
    ...(requestState === undefined ? {} : { requestState }),
    _meta: { 'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } } },
  };
  const message = { jsonrpc: '2.0', id: 3, method: 'tools/call', params };
  return {
    identity: { key: 'apiKey:mallory', methods: ['apiKey'], scopes: new Set() },
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
  store: 'p',
});

describe('confirm: approver edges (from an attack review)', () => {
  it('a store that fails on the retry (Redis away) is a 503 limiter_unavailable, as on the legacy path, not a thrown 500', async () => {
    const local = createLocalApprovalStore();
    let failing = false;
    const store: ApprovalStore = {
      ...local,
      get: (id) => (failing ? Promise.reject(new Error('redis: command timed out')) : local.get(id)),
    };
    const approver = createApproverConfirmation({
      approvals: APPROVALS,
      store,
      sealer: createSealer(undefined),
      limiter: createMemoryLimiter(),
      notifier: { pending: () => undefined },
      onCreated: () => undefined,
    });
    const args = { table: 'users' };
    const first = (await approver(exchangeOf(args), 0, bindingsOf(args))) as UpstreamAnswer;
    let text = '';
    for await (const chunk of first.body) text += String(chunk);
    const state = (JSON.parse(text) as { result: { requestState: string } }).result.requestState;
    failing = true;
    const retried = await approver(exchangeOf(args, state), 0, bindingsOf(args)).catch((err: unknown) => err);
    expect(isRefusal(retried as never) && (retried as { reason: string }).reason).toBe('limiter_unavailable');
  });

  it('the approver is shown invisible variation selectors (they can smuggle text past the page)', () => {
    // "ok" followed by text hidden in variation selectors (U+FE00–FE0F, U+E0100–E01EF): renders as "ok".
    const hidden = [...'rm -rf /'].map((c) => String.fromCodePoint(0xe0100 + c.charCodeAt(0) - 16)).join('');
    const shown = shownArguments({ note: `ok\uFE0F${hidden}` }) as string;
    expect(shown).not.toMatch(/[\uFE00-\uFE0F]|[\u{E0100}-\u{E01EF}]/u);
  });
});
