/**
 * The one MCP method table (DESIGN.md "The request lifecycle"): for each method of the two
 * generations, who may send it in which generation, whether it carries an id, what it names for
 * policy, its mirrored `Mcp-Name`, the list it answers, whether rate limits count it, its metric
 * label and whether its answer is a long-lived stream. Parse, decide, the list filter, the
 * mirrored-header check, the audit, rate limits and metrics all read it; no other module of `src/`
 * spells a method name (a test scans the sources). Adding a method is adding one row here.
 *
 * Sources: MCP 2025-11-25 (`schema/2025-11-25/schema.ts`, the `ClientRequest`, `ClientNotification`,
 * `ServerRequest` and `ServerNotification` unions), 2026-07-28 (`schema/2026-07-28/schema.ts`;
 * it has no server requests: sampling, roots and elicitation travel only inside
 * `input_required` results), and the tasks extension (SEP-2663). Legacy here is every version
 * from 2025-03-26 to 2025-11-25 (they share the method set the gateway serves); modern is 2026-07-28.
 */

/** The two generations of MCP on the wire (DESIGN.md "Two generations"). */
export type Generation = 'legacy' | 'modern';

/**
 * What a client's message names for policy (DESIGN.md step 6):
 * - `identity`: nothing; an identity is enough;
 * - `tool` / `prompt`: `params.name` against `tools` / `prompts`;
 * - `resource`: `params.uri` against `resources` (canonical form);
 * - `completion-ref`: `params.ref`, a prompt name or a resource URI (template);
 * - `subscriptions`: each filter of `params.notifications` (see {@link LISTEN_FILTER});
 * - `closed`: refused whatever the route's `methods` says — the tasks methods: task ids are not
 *   bound to identities, so granting one would let any holder reach another caller's task.
 */
export type PolicyTarget =
  | 'identity'
  | 'tool'
  | 'prompt'
  | 'resource'
  | 'completion-ref'
  | 'subscriptions'
  | 'closed';

/** Where a method's `Mcp-Name` header comes from. */
export interface MirroredName {
  /** The `params` field the header mirrors. */
  readonly field: 'name' | 'uri' | 'taskId';
  /** Required on the modern protocol (the 2026-07-28 core); otherwise checked only when sent. */
  readonly required: boolean;
}

/** A paginated list answer the gateway filters to what the caller may use. */
export interface ListAnswer {
  /** The result field holding the items. */
  readonly field: 'tools' | 'prompts' | 'resources' | 'resourceTemplates';
  /** The item member that names it: a name, a resource URI, or a URI template (expressions kept). */
  readonly itemKey: 'name' | 'uri' | 'uriTemplate';
  /** The policy table the names are looked up in. */
  readonly table: 'tools' | 'prompts' | 'resources';
}

/** One row of the table. */
export interface McpMethod {
  readonly name: string;
  /** A request needs an id (and is answered); a notification never carries one. */
  readonly kind: 'request' | 'notification';
  /** The generations in which a client may send it to a server. */
  readonly fromClient: readonly Generation[];
  /** The generations in which a server may send it to a client. */
  readonly fromServer: readonly Generation[];
  /** Exists in the modern generation only through the tasks extension (SEP-2663). */
  readonly extension?: 'tasks';
  /** What a client's message names for policy; `closed` where no client may send it at all. */
  readonly policy: PolicyTarget;
  /** The body field its 2026-07-28 `Mcp-Name` header mirrors. */
  readonly mirroredName?: MirroredName;
  /** The list it answers, filtered on the way back. */
  readonly list?: ListAnswer;
  /** Rate limits count it (DESIGN.md step 8: every request, never a notification or an answer). */
  readonly rateLimited: boolean;
  /** Its `method` label in metrics: its name when a client may send it, else `other`. */
  readonly metricLabel: string;
  /** Its answer is a long-lived stream, holding a stream slot like a GET stream (step 8). */
  readonly stream: boolean;
}

const BOTH: readonly Generation[] = ['legacy', 'modern'];
const LEGACY: readonly Generation[] = ['legacy'];
const MODERN: readonly Generation[] = ['modern'];
const NONE: readonly Generation[] = [];

/** Every MCP notification is named `notifications/…`, in both generations. */
const NOTIFICATION_PREFIX = 'notifications/';

/**
 * The method prefix the tasks extension reserves ("The `tasks/` method prefix and
 * `notifications/tasks/` notification prefix are reserved for this extension", SEP-2663): a
 * route's `methods` may not name it (`config/task-methods.ts`).
 */
export const TASKS_PREFIX = 'tasks/';

/** Methods other modules name: the gateway builds these messages itself (explain, the demo) or reads them. */
const INITIALIZE = 'initialize';
export const TOOLS_CALL = 'tools/call';
export const RESOURCES_READ = 'resources/read';
export const PROMPTS_GET = 'prompts/get';
export const PROGRESS_NOTIFICATION = 'notifications/progress';

type Row = Pick<McpMethod, 'name' | 'fromClient' | 'fromServer' | 'policy'> &
  Partial<Pick<McpMethod, 'extension' | 'mirroredName' | 'list' | 'stream'>>;

function request(row: Row): McpMethod {
  return finish('request', row);
}

function notification(row: Row): McpMethod {
  return finish('notification', row);
}

function finish(kind: McpMethod['kind'], row: Row): McpMethod {
  return Object.freeze({
    ...row,
    kind,
    rateLimited: kind === 'request',
    metricLabel: row.fromClient.length > 0 ? row.name : 'other',
    stream: row.stream ?? false,
  });
}

/**
 * The table. Era facts from the era report (2026-08): `initialize`, `ping`, `logging/setLevel`,
 * `resources/subscribe|unsubscribe` were removed by 2026-07-28; `server/discover` and
 * `subscriptions/listen` are new there; its only client notification is `notifications/cancelled`.
 */
const ROWS: readonly McpMethod[] = [
  // Lifecycle.
  request({ name: INITIALIZE, fromClient: LEGACY, fromServer: NONE, policy: 'identity' }),
  notification({
    name: 'notifications/initialized',
    fromClient: LEGACY,
    fromServer: NONE,
    policy: 'identity',
  }),
  request({ name: 'ping', fromClient: LEGACY, fromServer: LEGACY, policy: 'identity' }),
  request({ name: 'server/discover', fromClient: MODERN, fromServer: NONE, policy: 'identity' }),
  // Tools, prompts, resources, completion.
  request({
    name: 'tools/list',
    fromClient: BOTH,
    fromServer: NONE,
    policy: 'identity',
    list: { field: 'tools', itemKey: 'name', table: 'tools' },
  }),
  request({
    name: TOOLS_CALL,
    fromClient: BOTH,
    fromServer: NONE,
    policy: 'tool',
    mirroredName: { field: 'name', required: true },
  }),
  request({
    name: 'prompts/list',
    fromClient: BOTH,
    fromServer: NONE,
    policy: 'identity',
    list: { field: 'prompts', itemKey: 'name', table: 'prompts' },
  }),
  request({
    name: PROMPTS_GET,
    fromClient: BOTH,
    fromServer: NONE,
    policy: 'prompt',
    mirroredName: { field: 'name', required: true },
  }),
  request({
    name: 'resources/list',
    fromClient: BOTH,
    fromServer: NONE,
    policy: 'identity',
    list: { field: 'resources', itemKey: 'uri', table: 'resources' },
  }),
  request({
    name: 'resources/templates/list',
    fromClient: BOTH,
    fromServer: NONE,
    policy: 'identity',
    list: { field: 'resourceTemplates', itemKey: 'uriTemplate', table: 'resources' },
  }),
  request({
    name: RESOURCES_READ,
    fromClient: BOTH,
    fromServer: NONE,
    policy: 'resource',
    mirroredName: { field: 'uri', required: true },
  }),
  request({ name: 'resources/subscribe', fromClient: LEGACY, fromServer: NONE, policy: 'resource' }),
  request({ name: 'resources/unsubscribe', fromClient: LEGACY, fromServer: NONE, policy: 'resource' }),
  request({
    name: 'subscriptions/listen',
    fromClient: MODERN,
    fromServer: NONE,
    policy: 'subscriptions',
    stream: true,
  }),
  request({ name: 'completion/complete', fromClient: BOTH, fromServer: NONE, policy: 'completion-ref' }),
  request({ name: 'logging/setLevel', fromClient: LEGACY, fromServer: NONE, policy: 'identity' }),
  // Server requests of 2025-11-25 (in 2026-07-28 only `input_required` payloads, no methods).
  request({ name: 'sampling/createMessage', fromClient: NONE, fromServer: LEGACY, policy: 'closed' }),
  request({ name: 'roots/list', fromClient: NONE, fromServer: LEGACY, policy: 'closed' }),
  request({ name: 'elicitation/create', fromClient: NONE, fromServer: LEGACY, policy: 'closed' }),
  // Tasks: 2025-11-25 core (both directions), 2026-07-28 extension (client to server). Closed.
  request({
    name: 'tasks/get',
    fromClient: BOTH,
    fromServer: LEGACY,
    extension: 'tasks',
    policy: 'closed',
    mirroredName: { field: 'taskId', required: false },
  }),
  request({ name: 'tasks/result', fromClient: LEGACY, fromServer: LEGACY, policy: 'closed' }),
  request({ name: 'tasks/list', fromClient: LEGACY, fromServer: LEGACY, policy: 'closed' }),
  request({
    name: 'tasks/cancel',
    fromClient: BOTH,
    fromServer: LEGACY,
    extension: 'tasks',
    policy: 'closed',
    mirroredName: { field: 'taskId', required: false },
  }),
  request({
    name: 'tasks/update',
    fromClient: MODERN,
    fromServer: NONE,
    extension: 'tasks',
    policy: 'closed',
    mirroredName: { field: 'taskId', required: false },
  }),
  // Notifications. 2026-07-28's `ClientNotification` is `CancelledNotification` alone.
  notification({ name: 'notifications/cancelled', fromClient: BOTH, fromServer: BOTH, policy: 'identity' }),
  notification({ name: PROGRESS_NOTIFICATION, fromClient: LEGACY, fromServer: BOTH, policy: 'identity' }),
  notification({
    name: 'notifications/roots/list_changed',
    fromClient: LEGACY,
    fromServer: NONE,
    policy: 'identity',
  }),
  notification({ name: 'notifications/message', fromClient: NONE, fromServer: BOTH, policy: 'closed' }),
  notification({
    name: 'notifications/resources/updated',
    fromClient: NONE,
    fromServer: BOTH,
    policy: 'closed',
  }),
  notification({
    name: 'notifications/resources/list_changed',
    fromClient: NONE,
    fromServer: BOTH,
    policy: 'closed',
  }),
  notification({
    name: 'notifications/tools/list_changed',
    fromClient: NONE,
    fromServer: BOTH,
    policy: 'closed',
  }),
  notification({
    name: 'notifications/prompts/list_changed',
    fromClient: NONE,
    fromServer: BOTH,
    policy: 'closed',
  }),
  notification({
    name: 'notifications/elicitation/complete',
    fromClient: NONE,
    fromServer: LEGACY,
    policy: 'closed',
  }),
  notification({
    name: 'notifications/subscriptions/acknowledged',
    fromClient: NONE,
    fromServer: MODERN,
    policy: 'closed',
  }),
  notification({
    name: 'notifications/tasks/status',
    fromClient: LEGACY,
    fromServer: LEGACY,
    policy: 'closed',
  }),
  notification({
    name: 'notifications/tasks',
    fromClient: NONE,
    fromServer: MODERN,
    extension: 'tasks',
    policy: 'closed',
  }),
];

/** The table by method name. */
export const MCP_METHODS: ReadonlyMap<string, McpMethod> = new Map(ROWS.map((row) => [row.name, row]));

/** The row of `method`, if the table has one. */
export function mcpMethod(method: string): McpMethod | undefined {
  return MCP_METHODS.get(method);
}

/** The generation of a request's protocol version. */
export function generationOf(modern: boolean): Generation {
  return modern ? 'modern' : 'legacy';
}

/**
 * Whether a client may send `method` as a message of `kind` in `generation`: the table has it,
 * in that kind, from the client, in that generation. A method of the other generation — a modern
 * `initialize`, a legacy `server/discover` — is refused like an unknown one, never forwarded to an
 * upstream that may be dual-era (an `initialize` selects legacy semantics there). Client answers
 * to server requests are legacy only: a 2026-07-28 server sends no requests, and "the client MUST
 * NOT send JSON-RPC responses" (the parse stage refuses them, `mirrored-headers.ts`).
 */
export function clientMaySend(
  row: McpMethod,
  kind: 'request' | 'notification',
  generation: Generation,
): boolean {
  return row.kind === kind && row.fromClient.includes(generation);
}

/**
 * Whether `method` may be sent without an id (it is a notification). A request sent without one
 * would be forwarded as a notification — no answer to match, no rate-limit charge — while the
 * upstream may run it all the same.
 */
export function isNotificationMethod(method: string): boolean {
  return method.startsWith(NOTIFICATION_PREFIX);
}

/** Whether `method` opens a legacy session (its `params.protocolVersion` is the session's). */
export function opensSession(method: string): boolean {
  return method === INITIALIZE;
}

/** The `Mcp-Name` source of `method`, if it mirrors one. */
export function mirroredNameOf(method: string): MirroredName | undefined {
  return MCP_METHODS.get(method)?.mirroredName;
}

/** The list `method` answers, if the gateway filters it. */
export function listAnswerOf(method: string): ListAnswer | undefined {
  return MCP_METHODS.get(method)?.list;
}

/** The filtered lists, by method, in table order. */
export const LIST_METHODS: ReadonlyMap<string, ListAnswer> = new Map(
  ROWS.flatMap((row) => (row.list === undefined ? [] : [[row.name, row.list] as const])),
);

/**
 * The policy target of `method` in a client's message (`undefined` for a method the table does
 * not know). Used where a fact depends only on the name, e.g. the audit's tool, resource, prompt.
 */
export function policyTargetOf(method: string | undefined): PolicyTarget | undefined {
  return method === undefined ? undefined : MCP_METHODS.get(method)?.policy;
}

/**
 * The tool a message calls: `params.name` of a method whose target is a tool. Rate-limit rules
 * narrowed to tools, the audit, the metrics' tool label and traces read it from here.
 */
export function toolNameOf(message: {
  readonly kind: string;
  readonly method?: string;
  readonly params?: Readonly<Record<string, unknown>>;
}): string | undefined {
  if (message.kind !== 'request' || policyTargetOf(message.method) !== 'tool') return undefined;
  const name = message.params?.name;
  return typeof name === 'string' ? name : undefined;
}

/**
 * Whether rate limits count a request named `method` (DESIGN.md step 8): every request — a method
 * outside the table that a route's `methods` admits too. Notifications and answers never count.
 */
export function countsForRateLimits(method: string): boolean {
  return MCP_METHODS.get(method)?.rateLimited ?? true;
}

/** The bounded `method` label of metrics: the name of a method a client may send, else `other`. */
export function metricLabelOf(method: string): string {
  return MCP_METHODS.get(method)?.metricLabel ?? 'other';
}

/** Every method label a client may produce (metrics' closed label set, with its non-method labels). */
export const METHOD_LABELS: readonly string[] = ROWS.filter((row) => row.metricLabel !== 'other').map(
  (row) => row.metricLabel,
);

/**
 * Methods whose answer is a long-lived stream and so takes a stream slot like a GET stream
 * (DESIGN.md step 8). Other SSE answers to POSTs are bounded by the in-flight slot they hold.
 */
export const STREAM_METHODS: ReadonlySet<string> = new Set(
  ROWS.filter((row) => row.stream).map((row) => row.name),
);

/**
 * The filter members of `subscriptions/listen` (`params.notifications`) and what each names for
 * policy: the list-changed flags nothing, `resourceSubscriptions` resource URIs (each checked like
 * a read), `taskIds` (tasks extension) tasks — closed, as task ids are not bound to identities and
 * `notifications/tasks` carries a task's full result. A member the gateway does not know is refused:
 * it cannot be authorized.
 */
export const LISTEN_FILTER: ReadonlyMap<string, 'identity' | 'resources' | 'closed'> = new Map([
  ['toolsListChanged', 'identity'],
  ['promptsListChanged', 'identity'],
  ['resourcesListChanged', 'identity'],
  ['resourceSubscriptions', 'resources'],
  ['taskIds', 'closed'],
]);

/** The members of a JSON-RPC 2.0 message. */
export const ENVELOPE_MEMBERS: ReadonlySet<string> = new Set([
  'jsonrpc',
  'id',
  'method',
  'params',
  'result',
  'error',
]);

/**
 * The `params` members policy, limits and audit read (`tools/call` name and arguments, resource
 * URIs, completion refs, `subscriptions/listen` notifications, the `_meta` envelope).
 */
export const POLICY_PARAMS: ReadonlySet<string> = new Set([
  'name',
  'uri',
  'arguments',
  'ref',
  'notifications',
  '_meta',
]);

/**
 * The objects nested in `params` that policy reads, and the members it reads there. A member
 * spelled in another case is read by a case-insensitive decoder upstream as the member itself —
 * `"ResourceSubscriptions"` would subscribe to resources policy never checked, `"TaskIds"` to
 * tasks — so it is refused like a variant of a `params` member. A new field policy reads belongs here.
 */
export const POLICY_NESTED: ReadonlyMap<string, ReadonlySet<string>> = new Map([
  ['notifications', new Set(LISTEN_FILTER.keys())],
  ['ref', new Set(['type', 'name', 'uri'])],
  ['_meta', new Set(['io.modelcontextprotocol/protocolVersion'])],
]);
