import { TASK_STATUS_NOTIFICATIONS } from '../../jsonrpc/methods.js';
import type { Sealer } from '../../proxy/seal.js';

/** Seals a task id for the client: it opens as nothing else. */
const PURPOSE = 'federation-task-id';
/** Where a message names the task it belongs to (the tasks specification's `_meta` key). */
export const RELATED_TASK_META = 'io.modelcontextprotocol/related-task';
/** Task ids sealed in this replica, kept so one task keeps one id for its caller. */
const MAX_REMEMBERED = 10_000;

/** Whom a task belongs to: the route and the identity that created it. */
export interface TaskScope {
  readonly route: string;
  readonly identity: string;
}

/** The server that created a task, and the id it knows it by. */
export interface TaskOwner {
  readonly server: string;
  readonly id: string;
}

/**
 * Task ids on a federated route (DESIGN.md "Upstreams" → Federation; the tasks specification
 * "MUST bind tasks to the authorization context that created them"): the client sees a gateway id
 * sealing the route, the identity that created the task, the server that runs it and the id that
 * server gave. `tasks/*` then go to that server only, and only for that identity — another
 * caller's id opens as no task at all. An id is sealed once per task in a replica (remembered), so
 * a client polling one task keeps seeing one id; any replica with the keys opens it.
 */
export class TaskIds {
  private readonly sealed = new Map<string, string>();

  constructor(private readonly sealer: Sealer) {}

  seal(scope: TaskScope, owner: TaskOwner): string {
    const key = JSON.stringify([scope.route, scope.identity, owner.server, owner.id]);
    let id = this.sealed.get(key);
    if (id === undefined) {
      id = this.sealer.seal(PURPOSE, [scope.route, scope.identity, owner.server, owner.id]);
      if (this.sealed.size >= MAX_REMEMBERED) {
        const [oldest] = this.sealed.keys();
        if (oldest !== undefined) this.sealed.delete(oldest);
      }
      this.sealed.set(key, id);
    }
    return id;
  }

  open(scope: TaskScope, id: unknown): TaskOwner | undefined {
    if (typeof id !== 'string' || id.length > 4096) return undefined;
    const fields = this.sealer.open(PURPOSE, id);
    if (fields === undefined) return undefined;
    const [route, identity, server, original] = fields;
    if (route !== scope.route || identity !== scope.identity) return undefined;
    if (typeof server !== 'string' || typeof original !== 'string') return undefined;
    return { server, id: original };
  }
}

/**
 * A server's message with every task id in it sealed (`seal`), or undefined when it names none:
 * a created task (`result.task.taskId`), a task (`result.taskId`, from `tasks/get` and
 * `tasks/cancel`), the task a message relates to (`_meta` of its result or params), and a task
 * status notification's `params.taskId`.
 */
export function sealTaskIds(
  message: Readonly<Record<string, unknown>>,
  seal: (id: string) => string,
): Record<string, unknown> | undefined {
  let changed = false;
  const withTaskId = (value: unknown): unknown => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
    const record = value as Record<string, unknown>;
    if (typeof record.taskId !== 'string') return value;
    changed = true;
    return { ...record, taskId: seal(record.taskId) };
  };
  const withMeta = (value: unknown): unknown => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
    const record = value as Record<string, unknown>;
    const meta = record._meta as Record<string, unknown> | undefined;
    if (meta === undefined || typeof meta !== 'object' || meta[RELATED_TASK_META] === undefined) return value;
    return { ...record, _meta: { ...meta, [RELATED_TASK_META]: withTaskId(meta[RELATED_TASK_META]) } };
  };
  const out: Record<string, unknown> = { ...message };
  if (typeof message.result === 'object' && message.result !== null) {
    let result = withMeta(withTaskId(message.result)) as Record<string, unknown>;
    if (typeof result.task === 'object' && result.task !== null)
      result = { ...result, task: withTaskId(result.task) };
    out.result = result;
  }
  if (typeof message.params === 'object' && message.params !== null) {
    const status = typeof message.method === 'string' && TASK_STATUS_NOTIFICATIONS.has(message.method);
    out.params = withMeta(status ? withTaskId(message.params) : message.params);
  }
  return changed ? out : undefined;
}
