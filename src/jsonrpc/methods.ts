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
 * `input_required` results), and the tasks extension (SEP-2663). Legacy is every version
 * `protocol-version.ts` lists as legacy (2025-11-25 and earlier: one method set for the gateway's
 * purposes); modern is 2026-07-28 and any version it does not know.
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
 * - `closed`: the table gives it to no client — server-only methods, and the tasks methods: task
 *   ids are not bound to identities, so granting one would let any holder reach another caller's
 *   task. Only a route's `methods` could admit one, and naming `tasks/…` there is a load error.
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
  /** What a client's message names for policy. */
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
  /**
   * Its 2026-07-28 result is a `CacheableResult` (`ttlMs` and `cacheScope` required): what a
   * gateway adds when it answers a modern client for a legacy server.
   */
  readonly cacheable?: true;
  /** A server notification about the server as a whole, for every session (GET streams), not one request. */
  readonly broadcast?: true;
  /** A server request: the client capability it needs (2025-11-25), or carried in `inputRequests` (2026-07-28). */
  readonly capability?: 'sampling' | 'elicitation' | 'roots';
  /** A 2026-07-28 server may answer it with an `InputRequiredResult` (the multi round-trip pattern). */
  readonly inputRequired?: true;
  /**
   * How a federated route (DESIGN.md "Upstreams" → Federation) serves a client request:
   * `list` fans out and merges; `name` (`params.name`), `uri` (`params.uri`) and `ref`
   * (`params.ref`) route to the one server that owns what they name; `everyServer` goes to every
   * server and is answered `{}`; `local` is answered by the gateway; `handshake` opens (legacy) or
   * describes (modern) the route as one server; `listen` merges every server's subscription stream;
   * `task` goes to the server that created the task its sealed `taskId` names. A client request
   * without it is not served there (method not found): `tasks/list`, which would list every
   * server's tasks of every caller.
   */
  readonly federated?:
    | 'list'
    | 'name'
    | 'uri'
    | 'ref'
    | 'everyServer'
    | 'local'
    | 'handshake'
    | 'listen'
    | 'task';
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

/** Methods other modules name: the gateway builds these messages itself (explain, the demo, a stdio client) or reads them. */
export const INITIALIZE = 'initialize';
export const INITIALIZED_NOTIFICATION = 'notifications/initialized';
export const PING = 'ping';
export const DISCOVER = 'server/discover';
export const CANCELLED_NOTIFICATION = 'notifications/cancelled';
export const ROOTS_LIST_CHANGED = 'notifications/roots/list_changed';
export const RESOURCES_SUBSCRIBE = 'resources/subscribe';
export const RESOURCES_UNSUBSCRIBE = 'resources/unsubscribe';
export const RESOURCES_UPDATED = 'notifications/resources/updated';
export const LISTEN = 'subscriptions/listen';
const LIST_CHANGED = {
  tools: 'notifications/tools/list_changed',
  prompts: 'notifications/prompts/list_changed',
  resources: 'notifications/resources/list_changed',
} as const;
export const LISTEN_ACKNOWLEDGED = 'notifications/subscriptions/acknowledged';
/** The `_meta` key every message of a 2026-07-28 subscription carries: the listen request's id. */
export const SUBSCRIPTION_ID_META = 'io.modelcontextprotocol/subscriptionId';
export const TOOLS_CALL = 'tools/call';
export const RESOURCES_READ = 'resources/read';
export const PROMPTS_GET = 'prompts/get';
export const COMPLETION_COMPLETE = 'completion/complete';
export const PROGRESS_NOTIFICATION = 'notifications/progress';
/** What the gateway asks a caller with when a `confirm` call needs their yes. */
export const ELICITATION_CREATE = 'elicitation/create';
/** What a server tells a legacy client when a URL elicitation it asked for completed (an approval decided). */
export const ELICITATION_COMPLETE = 'notifications/elicitation/complete';

type Extra = Partial<
  Pick<
    McpMethod,
    | 'extension'
    | 'mirroredName'
    | 'list'
    | 'stream'
    | 'cacheable'
    | 'broadcast'
    | 'capability'
    | 'inputRequired'
    | 'federated'
  >
>;

type RowArgs = [
  name: string,
  fromClient: readonly Generation[],
  fromServer: readonly Generation[],
  policy: PolicyTarget,
  extra?: Extra,
];

/** A request: needs an id, counted by rate limits. */
const request = (...args: RowArgs): McpMethod => row('request', ...args);
/** A notification: never carries an id, never counted by rate limits. */
const notification = (...args: RowArgs): McpMethod => row('notification', ...args);

function row(
  kind: McpMethod['kind'],
  name: string,
  fromClient: readonly Generation[],
  fromServer: readonly Generation[],
  policy: PolicyTarget,
  extra: Extra = {},
): McpMethod {
  return Object.freeze({
    name,
    kind,
    fromClient,
    fromServer,
    policy,
    ...extra,
    rateLimited: kind === 'request',
    metricLabel: fromClient.length > 0 ? name : 'other',
    stream: extra.stream ?? false,
  });
}

/** `Mcp-Name` sources: required in the 2026-07-28 core, checked when sent for the tasks extension. */
const BY_NAME: MirroredName = { field: 'name', required: true };
const BY_URI: MirroredName = { field: 'uri', required: true };
const BY_TASK_ID: MirroredName = { field: 'taskId', required: false };
const TASKS_EXTENSION: Extra = { extension: 'tasks', mirroredName: BY_TASK_ID };

/**
 * The table: name, generations a client sends it in, generations a server sends it in, what a
 * client's message names for policy, and the rest. Era facts from the era report (2026-08):
 * `initialize`, `ping`, `logging/setLevel`, `resources/subscribe|unsubscribe` were removed by
 * 2026-07-28; `server/discover` and `subscriptions/listen` are new there; its only client
 * notification is `notifications/cancelled`.
 */
const ROWS: readonly McpMethod[] = [
  // Lifecycle.
  request(INITIALIZE, LEGACY, NONE, 'identity', { federated: 'handshake' }),
  notification(INITIALIZED_NOTIFICATION, LEGACY, NONE, 'identity'),
  request(PING, LEGACY, LEGACY, 'identity', { federated: 'local' }),
  request(DISCOVER, MODERN, NONE, 'identity', { cacheable: true, federated: 'handshake' }),
  // Tools, prompts, resources, completion.
  request('tools/list', BOTH, NONE, 'identity', {
    list: { field: 'tools', itemKey: 'name', table: 'tools' },
    cacheable: true,
    federated: 'list',
  }),
  request(TOOLS_CALL, BOTH, NONE, 'tool', { mirroredName: BY_NAME, inputRequired: true, federated: 'name' }),
  request('prompts/list', BOTH, NONE, 'identity', {
    list: { field: 'prompts', itemKey: 'name', table: 'prompts' },
    cacheable: true,
    federated: 'list',
  }),
  request(PROMPTS_GET, BOTH, NONE, 'prompt', {
    mirroredName: BY_NAME,
    inputRequired: true,
    federated: 'name',
  }),
  request('resources/list', BOTH, NONE, 'identity', {
    list: { field: 'resources', itemKey: 'uri', table: 'resources' },
    cacheable: true,
    federated: 'list',
  }),
  request('resources/templates/list', BOTH, NONE, 'identity', {
    list: { field: 'resourceTemplates', itemKey: 'uriTemplate', table: 'resources' },
    cacheable: true,
    federated: 'list',
  }),
  request(RESOURCES_READ, BOTH, NONE, 'resource', {
    mirroredName: BY_URI,
    cacheable: true,
    inputRequired: true,
    federated: 'uri',
  }),
  request(RESOURCES_SUBSCRIBE, LEGACY, NONE, 'resource', { federated: 'uri' }),
  request(RESOURCES_UNSUBSCRIBE, LEGACY, NONE, 'resource', { federated: 'uri' }),
  request(LISTEN, MODERN, NONE, 'subscriptions', { stream: true, federated: 'listen' }),
  request(COMPLETION_COMPLETE, BOTH, NONE, 'completion-ref', { federated: 'ref' }),
  request('logging/setLevel', LEGACY, NONE, 'identity', { federated: 'everyServer' }),
  // Server requests of 2025-11-25 (in 2026-07-28 only `input_required` payloads, no methods).
  request('sampling/createMessage', NONE, LEGACY, 'closed', { capability: 'sampling' }),
  request('roots/list', NONE, LEGACY, 'closed', { capability: 'roots' }),
  request('elicitation/create', NONE, LEGACY, 'closed', { capability: 'elicitation' }),
  // Tasks: 2025-11-25 core (both directions), 2026-07-28 extension (client to server). Closed.
  request('tasks/get', BOTH, LEGACY, 'closed', { ...TASKS_EXTENSION, federated: 'task' }),
  request('tasks/result', LEGACY, LEGACY, 'closed', { federated: 'task' }),
  request('tasks/list', LEGACY, LEGACY, 'closed'),
  request('tasks/cancel', BOTH, LEGACY, 'closed', { ...TASKS_EXTENSION, federated: 'task' }),
  request('tasks/update', MODERN, NONE, 'closed', { ...TASKS_EXTENSION, federated: 'task' }),
  // Notifications. 2026-07-28's `ClientNotification` is `CancelledNotification` alone.
  notification(CANCELLED_NOTIFICATION, BOTH, BOTH, 'identity'),
  notification(PROGRESS_NOTIFICATION, LEGACY, BOTH, 'identity'),
  notification(ROOTS_LIST_CHANGED, LEGACY, NONE, 'identity'),
  notification('notifications/message', NONE, BOTH, 'closed'),
  notification(RESOURCES_UPDATED, NONE, BOTH, 'closed', { broadcast: true }),
  notification(LIST_CHANGED.resources, NONE, BOTH, 'closed', { broadcast: true }),
  notification(LIST_CHANGED.tools, NONE, BOTH, 'closed', { broadcast: true }),
  notification(LIST_CHANGED.prompts, NONE, BOTH, 'closed', { broadcast: true }),
  notification('notifications/elicitation/complete', NONE, LEGACY, 'closed'),
  notification(LISTEN_ACKNOWLEDGED, NONE, MODERN, 'closed'),
  notification('notifications/tasks/status', LEGACY, LEGACY, 'closed'),
  notification('notifications/tasks', NONE, MODERN, 'closed', { extension: 'tasks' }),
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

/** The client capability a server request needs; undefined for anything else. */
export function capabilityOf(method: string): McpMethod['capability'] {
  return MCP_METHODS.get(method)?.capability;
}

/** Whether a 2026-07-28 server may answer `method` with an `InputRequiredResult`. */
export function takesInputRequired(method: string): boolean {
  return MCP_METHODS.get(method)?.inputRequired === true;
}

/** Whether a 2026-07-28 result of `method` must carry `ttlMs` and `cacheScope`. */
export function isCacheable(method: string): boolean {
  return MCP_METHODS.get(method)?.cacheable === true;
}

/** Whether a server notification concerns the server as a whole (every session hears it). */
export function isBroadcast(method: string): boolean {
  return MCP_METHODS.get(method)?.broadcast === true;
}

/** The notification a server sends about a task's status (2025-11-25; the extension's is `notifications/tasks`). */
export const TASK_STATUS_NOTIFICATIONS: ReadonlySet<string> = new Set(
  ROWS.filter((row) => row.kind === 'notification' && row.name.startsWith(`notifications/${TASKS_PREFIX}`))
    .map((row) => row.name)
    .concat(
      ROWS.filter((row) => row.kind === 'notification' && row.extension === 'tasks').map((row) => row.name),
    ),
);

/** The client capabilities a server's requests need (`sampling`, `elicitation`, `roots`). */
export const SERVER_REQUEST_CAPABILITIES: ReadonlySet<string> = new Set(
  ROWS.flatMap((row) => (row.capability === undefined ? [] : [row.capability])),
);

/** How a federated route serves a client request of `method` (undefined: not there yet). */
export function federationOf(method: string): McpMethod['federated'] {
  return MCP_METHODS.get(method)?.federated;
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

/**
 * The `list_changed` notifications a `subscriptions/listen` filter member asks for, and the server
 * capability (`capabilities[capability].listChanged`) that says the server sends it.
 */
export const LIST_CHANGED_FILTERS: readonly {
  readonly filter: string;
  readonly method: string;
  readonly capability: 'tools' | 'prompts' | 'resources';
}[] = [
  { filter: 'toolsListChanged', method: LIST_CHANGED.tools, capability: 'tools' },
  { filter: 'promptsListChanged', method: LIST_CHANGED.prompts, capability: 'prompts' },
  { filter: 'resourcesListChanged', method: LIST_CHANGED.resources, capability: 'resources' },
];

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
