import type { Readable } from 'node:stream';
import { isRefusal, type RpcId, refuse } from '../errors.js';
import { federationOf, mirroredNameOf, TASKS_PREFIX } from '../jsonrpc/methods.js';
import { isEventStream } from '../proxy/media-type.js';
import type { Sealer } from '../proxy/seal.js';
import { readMemberMessages } from './federation/answers.js';
import { sealTaskIds, TaskIds } from './federation/tasks.js';
import { bufferBody, rewrittenEvents } from './local-answer.js';
import type { Upstream, UpstreamAnswer, UpstreamRequest } from './upstream.js';

type Message = Readonly<Record<string, unknown>>;

export interface TaskBindingDeps {
  readonly sealer: Sealer;
  /** `limits.maxResponseBytes` and `limits.maxJsonDepth`: an answer read to seal its task ids. */
  readonly maxResponseBytes: number;
  readonly maxJsonDepth: number;
}

/** The one server of a single-server route, as task ids name it. */
const ONLY = '';

/**
 * Task ids bound to the identity that created the task, on a single-server route whose `methods`
 * grant the tasks methods (DESIGN.md "Upstreams" → Federation, Tasks; the tasks specification
 * "MUST bind tasks to the authorization context that created them"): the same sealing a federated
 * route does, around any upstream. Every task id the server gives (a task-augmented call's answer,
 * `tasks/get` and `tasks/cancel` results, status notifications and `related-task` metadata on any
 * stream) reaches the client sealed to the route and the caller; `tasks/get|result|cancel|update`
 * reach the server with its own id only from that caller — for anyone else the id is no task
 * (400, -32602) and nothing is forwarded. `tasks/list` is refused: the server would list every
 * caller's tasks. Routes that grant no tasks method are not wrapped (and keep their fast path).
 */
export function bindTasks(route: string, inner: Upstream, deps: TaskBindingDeps): Upstream {
  const taskIds = new TaskIds(deps.sealer);
  return {
    async send(request) {
      const scope = { route, identity: request.identity.key };
      const seal = (id: string): string => taskIds.seal(scope, { server: ONLY, id });
      if (request.method !== 'POST' || request.text === undefined) {
        const answer = await inner.send(request);
        return isRefusal(answer) ? answer : { ...answer, body: sealedStream(answer, seal) };
      }
      const value: unknown = JSON.parse(request.text);
      const batch = Array.isArray(value);
      const messages = (batch ? value : [value]) as Message[];
      let tasks = false;
      let rewritten = false;
      const headers = { ...request.headers };
      const forwarded: Message[] = [];
      for (const message of messages) {
        const method = message.method;
        const params = (message.params ?? {}) as Record<string, unknown>;
        if (typeof method !== 'string' || message.id === undefined) {
          forwarded.push(message);
          continue;
        }
        if (params.task !== undefined) tasks = true;
        const kind = federationOf(method);
        if (kind !== 'task' && method.startsWith(TASKS_PREFIX))
          // `tasks/list`: the server would list every caller's tasks.
          return refuse('method_not_found', { ids: [message.id as RpcId], batch });
        if (kind !== 'task') {
          forwarded.push(message);
          continue;
        }
        tasks = true;
        const owner = taskIds.open(scope, params.taskId);
        if (owner === undefined || owner.server !== ONLY)
          return refuse('invalid_params', {
            ids: messages.flatMap((m) =>
              typeof m.method === 'string' && m.id !== undefined ? [m.id as RpcId] : [],
            ),
            batch,
            data: { detail: 'no such task' },
          });
        rewritten = true;
        forwarded.push({ ...message, params: { ...params, taskId: owner.id } });
        // The mirrored header names what the server knows.
        if (mirroredNameOf(method) !== undefined && headers['mcp-name'] !== undefined)
          headers['mcp-name'] = owner.id;
      }
      const sent: UpstreamRequest = rewritten
        ? { ...request, headers, text: JSON.stringify(batch ? forwarded : forwarded[0]) }
        : request;
      const answer = await inner.send(sent);
      if (isRefusal(answer)) return answer;
      if (isEventStream(answer.headers['content-type']))
        return { ...answer, body: sealedStream(answer, seal) };
      if (!tasks || answer.status !== 200) return answer;
      // A JSON answer naming tasks: read whole, given back with their ids sealed.
      const read = await readMemberMessages(answer, deps.maxResponseBytes, deps.maxJsonDepth);
      if (typeof read === 'string')
        return refuse(read === 'too_large' ? 'response_too_large' : 'upstream_rejected');
      const sealed = read.map((message) => sealTaskIds(message, seal) ?? message);
      const text = JSON.stringify(batch ? sealed : sealed[0]);
      const { 'content-length': _length, 'content-type': _type, ...kept } = answer.headers;
      return {
        status: 200,
        headers: {
          ...stringHeaders(kept),
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(text)),
        },
        body: bufferBody(text),
      };
    },
    close: () => inner.close(),
  };

  /** An SSE answer with every task id in it sealed. */
  function sealedStream(answer: UpstreamAnswer, seal: (id: string) => string): Readable {
    if (!isEventStream(answer.headers['content-type'])) return answer.body;
    return rewrittenEvents(
      answer.body,
      (message) => sealTaskIds(message, seal) ?? message,
      deps.maxResponseBytes,
    );
  }
}

/** The headers of an answer the gateway rebuilt, as strings. */
function stringHeaders(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (typeof value === 'string') out[name] = value;
  return out;
}
