import { hash } from 'node:crypto';
import type { Identity } from '../auth/identity.js';
import {
  argumentsHashOf,
  type Bindings,
  matches,
  openAwaiting,
  RESERVED_PREFIX,
  sealAwaiting,
  shownArguments,
  shownText,
  takesUrl,
} from '../confirm/confirmation.js';
import { withoutConfirmation } from '../confirm/strip.js';
import { type Refusal, refuse } from '../errors.js';
import type { Authorized } from '../exchange.js';
import { ELICITATION_CREATE } from '../jsonrpc/methods.js';
import { isModern } from '../jsonrpc/protocol-version.js';
import type { Metrics } from '../metrics/registry.js';
import type { Sealer } from '../proxy/seal.js';
import { type Limiter, parseRate } from '../ratelimit/limiter.js';
import { declaredCapabilities, inputRequired } from '../upstream/input-required.js';
import { jsonAnswer } from '../upstream/local-answer.js';
import type { UpstreamAnswer } from '../upstream/upstream.js';
import { type ApprovalsConfig, pageUrl } from './login.js';
import type { Notifier } from './notify.js';
import { type Approval, type ApprovalStore, newApprovalId, type Requester } from './store.js';

/**
 * `confirm: approver` (DESIGN.md "human confirmation"): a call another person must approve. The
 * first call creates a pending approval (rate-limited per identity), tells approvers
 * (`approvals.notify`) and gives the caller the status page's URL:
 * - 2026-07-28: an `input_required` result with a URL-mode `elicitation/create` and a sealed
 *   `requestState` naming the approval; each retry while pending gets the same answer again;
 * - 2025-11-25: a -32042 URL-elicitation-required error; the client calls again with the same
 *   arguments, and the call finds its approval by what it is bound to.
 * The first retry after the approval is forwarded (the approval used once); a denial is
 * `confirmation_declined`, an expired or used one `confirmation_expired` — each naming the approval.
 */

export interface ApproverDeps {
  readonly approvals: ApprovalsConfig;
  readonly store: ApprovalStore;
  readonly sealer: Sealer;
  readonly limiter: Limiter;
  readonly notifier: Notifier;
  /** A pending approval created: audit and metrics. */
  readonly onCreated: (approval: Approval) => void;
  readonly metrics?: Metrics | undefined;
  readonly now?: () => number;
}

/** `URLElicitationRequiredError` (2025-11-25): the client must open a URL before calling again. */
const URL_ELICITATION_REQUIRED = -32042;

/** The key of the gateway's URL elicitation in a 2026-07-28 `inputRequests`. */
const APPROVAL_KEY = `${RESERVED_PREFIX}approval`;

export function createApproverConfirmation(
  deps: ApproverDeps,
): (
  exchange: Authorized,
  index: number,
  confirmed: Bindings,
) => Promise<Authorized | UpstreamAnswer | Refusal> {
  const now = deps.now ?? Date.now;
  const publicUrl = deps.approvals.publicUrl as string;
  const createRate = parseRate(deps.approvals.createLimit);

  return async (exchange, index, confirmed) => {
    const message = exchange.body.messages[index];
    if (message === undefined || message.kind !== 'request') return exchange;
    const ids = [message.id];
    const params = message.params ?? {};
    const tool = String(params.name);
    const rule = exchange.decisions[index]?.rule ?? 'tools';
    const call: Bindings = {
      identity: exchange.identity.key,
      route: exchange.route.path,
      tool,
      argumentsHash: argumentsHashOf(params.arguments),
      pinHash: exchange.route.pinnedToolHash(tool),
      store: deps.store.kind === 'redis' ? 'redis' : 'approvals',
    };
    const modern = isModern(exchange.version);

    if (modern) {
      const awaiting = openAwaiting(deps.sealer, params.requestState);
      if (awaiting !== undefined) {
        if (awaiting.expiresAt <= now() || !matches(awaiting, call))
          return refuse('confirmation_expired', {
            ids,
            data: {
              approval: awaiting.approval,
              detail: awaiting.expiresAt <= now() ? 'expired' : 'mismatch',
            },
          });
        let approval: Approval | undefined;
        try {
          approval = await deps.store.get(awaiting.approval);
        } catch {
          return refuse('limiter_unavailable', { ids, headers: { 'retry-after': '1' } });
        }
        return settle(exchange, index, confirmed, approval, awaiting.approval, () =>
          jsonAnswer(
            200,
            {
              jsonrpc: '2.0',
              id: message.id,
              result: urlQuestion(awaiting.approval, tool, params.requestState as string),
            },
            {},
          ),
        );
      }
      if (!takesUrl(declaredCapabilities(params)?.elicitation))
        return refuse('confirmation_unavailable', {
          ids,
          modern: true,
          data: { requiredCapabilities: { elicitation: { url: {} } } },
        });
    } else {
      const session = exchange.session;
      if (session === undefined || session.urlElicitation !== true || exchange.body.batch)
        return refuse('confirmation_unavailable', {
          ids,
          data: {
            detail: session === undefined ? 'no_session' : 'no_url_elicitation',
            requiredCapabilities: { elicitation: { url: {} } },
          },
        });
      let known: Approval | undefined;
      try {
        known = await deps.store.find(bindingKey(call, session.upstreamId));
      } catch {
        return refuse('limiter_unavailable', { ids, headers: { 'retry-after': '1' } });
      }
      // A used approval (the call ran): this is a new call, asked anew below.
      if (known !== undefined && known.state !== 'used')
        return settle(exchange, index, confirmed, known, known.id, () =>
          urlRequiredError(message.id, known.id, tool),
        );
    }

    // A call nobody could read whole is not asked (and charges nothing).
    const shown = shownArguments(params.arguments);
    if (shown === undefined)
      return refuse('confirmation_unavailable', { ids, modern, data: { detail: 'too_long_to_show' } });
    // A new approval: at most `createLimit` per identity.
    const charged = await deps.limiter.consume(`approvals:create:${exchange.identity.key}`, createRate);
    if (!charged.allowed)
      return refuse('rate_limited', { ids, headers: { 'retry-after': String(charged.retryAfterSec) } });
    const at = now();
    const approval: Approval = {
      id: newApprovalId(),
      requester: requesterOf(exchange.identity),
      bindings: call,
      arguments: shown,
      rule,
      createdAt: at,
      expiresAt: at + deps.approvals.ttlSec * 1000,
      state: 'pending',
      ...(modern || exchange.session === undefined ? {} : { session: exchange.session.upstreamId }),
    };
    try {
      // A legacy retry finds it by what it is bound to, on any replica sharing the store.
      await deps.store.create(
        approval,
        modern ? undefined : bindingKey(call, exchange.session?.upstreamId ?? ''),
      );
    } catch {
      return refuse('limiter_unavailable', { ids, headers: { 'retry-after': '1' } });
    }
    deps.onCreated(approval);
    deps.notifier.pending(approval, pageUrl(publicUrl, `/portcullis/approvals/${approval.id}`));
    exchange.confirmation = { step: 'pending', id: approval.id };
    if (!modern) return urlRequiredError(message.id, approval.id, tool);
    const state = sealAwaiting(deps.sealer, call, approval.id, approval.expiresAt);
    return jsonAnswer(
      200,
      { jsonrpc: '2.0', id: message.id, result: urlQuestion(approval.id, tool, state) },
      {},
    );
  };

  /** What a known approval makes of the call: forwarded once approved, refused, or asked again. */
  async function settle(
    exchange: Authorized,
    index: number,
    /** The confirmed call's bindings: an upstream's own `input_required` is sealed with them. */
    confirmed: Bindings,
    approval: Approval | undefined,
    id: string,
    again: () => UpstreamAnswer,
  ): Promise<Authorized | UpstreamAnswer | Refusal> {
    const message = exchange.body.messages[index];
    const ids = message?.kind === 'request' ? [message.id] : [];
    if (approval === undefined) {
      deps.metrics?.approvals.inc({ route: exchange.route.path, result: 'expired' });
      exchange.confirmation = { step: 'expired', id };
      return refuse('confirmation_expired', { ids, data: { approval: id, detail: 'expired' } });
    }
    switch (approval.state) {
      case 'pending':
        exchange.confirmation = { step: 'pending', id };
        return again();
      case 'denied':
        exchange.confirmation = { step: 'declined', id };
        return refuse('confirmation_declined', { ids, data: { approval: id } });
      case 'used':
        exchange.confirmation = { step: 'expired', id };
        return refuse('confirmation_expired', { ids, data: { approval: id, detail: 'used' } });
      case 'approved':
        break;
    }
    let first: boolean;
    try {
      first = await deps.store.use(id);
    } catch {
      return refuse('limiter_unavailable', { ids, headers: { 'retry-after': '1' } });
    }
    if (!first) {
      exchange.confirmation = { step: 'expired', id };
      return refuse('confirmation_expired', { ids, data: { approval: id, detail: 'used' } });
    }
    exchange.confirmation = { step: 'approved', id, bindings: confirmed };
    deps.metrics?.approvals.inc({ route: exchange.route.path, result: 'used' });
    exchange.body = withoutConfirmation(exchange.body, index);
    return exchange;
  }

  /** The 2026-07-28 question: open the status page; the same `requestState` comes back on each retry. */
  function urlQuestion(id: string, tool: string, state: string): Record<string, unknown> {
    return inputRequired(
      APPROVAL_KEY,
      {
        method: ELICITATION_CREATE,
        params: {
          mode: 'url',
          elicitationId: id,
          url: statusUrl(id),
          message: `Another person must approve this call of ${shownText(tool)}. Follow it here, then call again.`,
        },
      },
      state,
    );
  }

  function urlRequiredError(requestId: string | number, id: string, tool: string): UpstreamAnswer {
    return jsonAnswer(
      200,
      {
        jsonrpc: '2.0',
        id: requestId,
        error: {
          code: URL_ELICITATION_REQUIRED,
          message: 'This call needs another person’s approval',
          data: {
            elicitations: [
              {
                mode: 'url',
                elicitationId: id,
                url: statusUrl(id),
                message: `Another person must approve this call of ${shownText(tool)}. Follow it here, then call again.`,
              },
            ],
            reason: 'approval_pending',
            approval: id,
          },
        },
      },
      {},
    );
  }

  function statusUrl(id: string): string {
    return pageUrl(publicUrl, `/portcullis/approvals/${id}/status`);
  }
}

/** The requester as the approval pages know them: a JWT caller by issuer and subject. */
function requesterOf(identity: Identity): Requester {
  const sub = identity.claims?.sub;
  return identity.issuer !== undefined && typeof sub === 'string'
    ? { key: identity.key, issuer: identity.issuer, subject: sub }
    : { key: identity.key };
}

/** What a legacy retry is found by: the call's bindings and its session. */
function bindingKey(call: Bindings, session: string): string {
  return hash(
    'sha256',
    JSON.stringify([call.identity, call.route, call.tool, call.argumentsHash, call.pinHash, session]),
  );
}
