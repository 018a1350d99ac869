import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { ApprovalEvent, AuditStream } from '../audit/stream.js';
import type { Config } from '../config/schema.js';
import type { Bindings } from '../confirm/confirmation.js';
import type { Refusal } from '../errors.js';
import type { Authorized } from '../exchange.js';
import { ELICITATION_COMPLETE } from '../jsonrpc/methods.js';
import type { Metrics } from '../metrics/registry.js';
import type { Sealer } from '../proxy/seal.js';
import type { SessionStreams } from '../proxy/session-streams.js';
import type { Limiter } from '../ratelimit/limiter.js';
import type { RedisLimiter } from '../ratelimit/redis.js';
import type { UpstreamAnswer } from '../upstream/upstream.js';
import { createApproverConfirmation } from './caller.js';
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
  readonly confirm: (
    exchange: Authorized,
    index: number,
    call: Bindings,
  ) => Promise<Authorized | UpstreamAnswer | Refusal>;
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
    /** Legacy sessions' GET streams: a decided approval's client is told there. */
    readonly sessionStreams: SessionStreams;
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
  // A legacy client is told its approval was decided (`notifications/elicitation/complete`) on
  // its session's GET stream, wherever that stream is: with Redis every replica hears of it.
  const complete = (route: string, session: string, id: string) =>
    deps.sessionStreams.send(route, session, {
      jsonrpc: '2.0',
      method: ELICITATION_COMPLETE,
      params: { elicitationId: id },
    });
  const decided = deps.redis?.approvals.decided;
  decided
    ?.subscribe((message) => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(message);
      } catch {
        return;
      }
      const [route, session, id] = Array.isArray(parsed) ? parsed : [];
      if (typeof route === 'string' && typeof session === 'string' && typeof id === 'string')
        complete(route, session, id);
    })
    .catch((err: unknown) => logger.warn({ err }, 'approvals: not listening for other replicas’ decisions'));
  const tell = (approval: Approval) => {
    const { session } = approval;
    if (session === undefined) return;
    if (decided === undefined) complete(approval.bindings.route, session, approval.id);
    else
      decided
        .publish(JSON.stringify([approval.bindings.route, session, approval.id]))
        .catch((err: unknown) =>
          logger.warn({ err }, 'approvals: a decision was not announced to other replicas'),
        );
  };
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
      tell(approval);
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
