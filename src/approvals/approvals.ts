import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { ApprovalEvent, AuditStream } from '../audit/stream.js';
import type { Config } from '../config/schema.js';
import type { Refusal } from '../errors.js';
import type { Authorized } from '../exchange.js';
import type { Metrics } from '../metrics/registry.js';
import type { Sealer } from '../proxy/seal.js';
import type { Limiter } from '../ratelimit/limiter.js';
import type { RedisLimiter } from '../ratelimit/redis.js';
import { createApproverConfirmation } from '../server/confirm-approver.js';
import type { UpstreamAnswer } from '../upstream/upstream.js';
import { createLogin } from './login.js';
import { createNotifier } from './notify.js';
import { type Approval, createLocalApprovalStore, createRedisApprovalStore } from './store.js';
import { createApprovalPages } from './web.js';

/**
 * `confirm: approver`, assembled (DESIGN.md "human confirmation"): the store (Redis when
 * configured), the caller's side for the confirm stage, the approval pages for the main listener,
 * and what each step writes to the audit trail and the metrics. Undefined without
 * `approvals.publicUrl` and `approvals.oidc` (no route can then use an approver).
 */
export interface Approvals {
  /** The confirm stage's part for a call whose entry says `confirm: approver`. */
  readonly confirm: (exchange: Authorized, index: number) => Promise<Authorized | UpstreamAnswer | Refusal>;
  /** Serves a request under `/portcullis/`. */
  readonly pages: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
}

export function createApprovals(
  config: Config,
  deps: {
    readonly sealer: Sealer;
    readonly redis: RedisLimiter | undefined;
    readonly limiter: Limiter;
    readonly audit: AuditStream;
    readonly metrics: Metrics;
    readonly logger: Logger;
  },
): Approvals | undefined {
  const { approvals } = config;
  if (approvals.publicUrl === undefined || approvals.oidc === undefined) return undefined;
  const { audit, metrics, logger } = deps;
  const store =
    deps.redis === undefined ? createLocalApprovalStore() : createRedisApprovalStore(deps.redis.approvals);
  const event = (
    step: ApprovalEvent['step'],
    id: string,
    approval: Approval | undefined,
    by: { readonly issuer: string; readonly subject: string } | undefined,
    reason?: string,
  ) =>
    audit.write({
      time: new Date().toISOString(),
      event: 'approval',
      step,
      approval: id,
      route: approval?.bindings.route,
      tool: approval?.bindings.tool,
      requester: approval?.requester.key,
      by: by === undefined ? undefined : { issuer: by.issuer, subject: by.subject },
      reason,
    });
  const confirm = createApproverConfirmation({
    approvals,
    store,
    sealer: deps.sealer,
    limiter: deps.limiter,
    notifier: createNotifier(approvals.notify, {
      logger,
      onFailure: () => metrics.approvalNotifyFailures.inc(),
    }),
    metrics,
    onCreated: (approval) => {
      metrics.approvals.inc({ route: approval.bindings.route, result: 'pending' });
      event('pending', approval.id, approval, undefined);
    },
  });
  const pages = createApprovalPages({
    approvals,
    store,
    login: createLogin(approvals, deps.sealer),
    logger,
    onDecision: (approval, by) => {
      const route = approval.bindings.route;
      metrics.approvals.inc({ route, result: approval.state });
      if (approval.decidedAt !== undefined)
        metrics.approvalSeconds.observe({ route }, (approval.decidedAt - approval.createdAt) / 1000);
      event(approval.state === 'approved' ? 'approved' : 'denied', approval.id, approval, by);
      logger.info(
        {
          approval: approval.id,
          route,
          tool: approval.bindings.tool,
          decision: approval.state,
          by: by.subject,
        },
        'approval decided',
      );
    },
    onRefused: (id, approval, by, why) => {
      metrics.approvals.inc({ route: approval?.bindings.route ?? '', result: 'refused' });
      event('refused', id, approval, by, why);
    },
  });
  return { confirm, pages };
}
