import type { Logger } from 'pino';
import type { Approval } from './store.js';

/**
 * Telling approvers that an approval is pending (`approvals.notify.webhook`): one JSON POST with
 * the approval page's link, the requester, the tool and the expiry. The link goes to approvers
 * only, never to the requester (who gets the status page). A webhook that fails or is slow is
 * logged and counted; the call stays pending either way — the approval page works without it.
 */
export interface Notifier {
  pending(approval: Approval, link: string): void;
}

export function createNotifier(
  spec: { readonly webhook: string; readonly timeoutMs: number } | undefined,
  deps: { readonly logger: Logger; readonly onFailure: () => void },
): Notifier {
  return {
    pending(approval, link) {
      if (spec === undefined) return;
      const body = JSON.stringify({
        event: 'approval.pending',
        approval: approval.id,
        link,
        requester: approval.requester.subject ?? approval.requester.key,
        identity: approval.requester.key,
        route: approval.bindings.route,
        tool: approval.bindings.tool,
        rule: approval.rule,
        expiresAt: new Date(approval.expiresAt).toISOString(),
      });
      fetch(spec.webhook, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        redirect: 'manual',
        signal: AbortSignal.timeout(spec.timeoutMs),
      })
        .then(async (answer) => {
          await answer.body?.cancel();
          if (answer.status < 200 || answer.status > 299) throw new Error(`status ${answer.status}`);
        })
        .catch((err: unknown) => {
          deps.onFailure();
          deps.logger.warn(
            { approval: approval.id, err: err instanceof Error ? err.message : String(err) },
            'approval webhook failed: approvers were not told (the page still works)',
          );
        });
    },
  };
}
