import type { Logger } from 'pino';
import { isRefusal, type Refusal, type RpcId, refuse } from '../errors.js';
import { withoutCaseVariants } from '../jsonrpc/case-fold.js';
import { COMPLETION_COMPLETE, LIST_CHANGED_FILTERS, PROMPTS_GET, TOOLS_CALL } from '../jsonrpc/methods.js';
import { isModern } from '../jsonrpc/protocol-version.js';
import { isEventStream } from '../proxy/media-type.js';
import { readMemberMessages } from '../upstream/federation/answers.js';
import { bufferBody, jsonAnswer, rewrittenEvents } from '../upstream/local-answer.js';
import type { Upstream, UpstreamAnswer, UpstreamRequest } from '../upstream/upstream.js';
import {
  type ArgumentProblems,
  promptArgumentProblems,
  resultProblems,
  toolArgumentProblems,
} from './arguments.js';
import { createDefinitionView, LISTS, type Seen, type ViewDeps } from './definition-view.js';
import type { Definition, DefinitionKind } from './definitions.js';
import { paramDeclarations, paramMismatches } from './mirrored-params.js';

type Message = Readonly<Record<string, unknown>>;

export interface PinningDeps extends ViewDeps {
  /** Arguments checked against the pinned definition; `strictArguments`: undeclared ones invalid. */
  readonly validateArguments: boolean;
  readonly strictArguments: boolean;
  /** A tool result's `structuredContent` checked against the pinned `outputSchema`; a mismatch replaced. */
  readonly validateResults: boolean;
  readonly logger: Logger;
}

/** The methods whose name must be a trusted definition, and which kind they name. */
const CALLS: ReadonlyMap<string, DefinitionKind> = new Map([
  [TOOLS_CALL, 'tool'],
  [PROMPTS_GET, 'prompt'],
]);
/** The result fields holding definitions, whatever the method a result answers. */
const SHAPES: readonly (readonly [string, DefinitionKind])[] = [
  ['tools', 'tool'],
  ['prompts', 'prompt'],
];
const SHAPE_FIELDS: ReadonlySet<string> = new Set(SHAPES.map(([field]) => field));
/** The `list_changed` notifications that make a server's definitions stale. */
const LIST_CHANGED: ReadonlySet<string> = new Set(
  LIST_CHANGED_FILTERS.flatMap((f) => (f.capability === 'resources' ? [] : [f.method])),
);

/**
 * Pinned tool definitions enforced on one server (DESIGN.md step 7, Inspect): wraps the upstream
 * of a route with `pins` (each server's, on a federated route), so it sees the server's own names.
 * Every list-shaped result is read (JSON, SSE, GET streams): each definition's hash is recorded in
 * the server's view (`definition-view.ts`), and under `onToolChange: block` a definition that
 * differs from its pin, or has none, is removed. A `tools/call`, `prompts/get` or completion of a
 * prompt is forwarded only when the latest definition of its name is trusted — else 403
 * `tool_changed` before the server hears of it — with its `Mcp-Param-*` headers and arguments
 * held to the pinned schema, and (`validateResults`) its result to the pinned output schema.
 */
export function pinUpstream(inner: Upstream, deps: PinningDeps): Upstream {
  const logger = deps.logger.child({
    route: deps.route,
    ...(deps.server === undefined ? {} : { server: deps.server }),
  });
  const view = createDefinitionView(inner, deps, logger);
  const { seenFor, observe, accepted, trusted, announced } = view;

  return {
    // Not `async`: the promise of the step that answers is returned as it is (no extra ticks per call).
    send(request) {
      if (request.method !== 'POST' || request.text === undefined)
        // A GET stream: a list on it goes through the pins like any.
        return inner
          .send(request)
          .then((answer) =>
            isRefusal(answer) || request.method !== 'GET' ? answer : unlisted(request, answer, [], new Map()),
          );
      // The messages as the gateway parsed them when they are what is sent (a single-server
      // route); a federated route's member request is text of its own (names it rewrote).
      const parsed = request.body?.forward === request.text ? request.body : undefined;
      if (parsed !== undefined)
        return sendParsed(request, parsed.messages as readonly Message[], parsed.batch);
      let value: unknown;
      try {
        value = JSON.parse(request.text);
      } catch (err) {
        return Promise.reject(err);
      }
      return Array.isArray(value)
        ? sendParsed(request, value as Message[], true)
        : sendParsed(request, [value as Message], false);
    },
    close: () => {
      view.close();
      return inner.close();
    },
  };

  /** A POST's messages checked against the pins (every call's definition and arguments), then sent. */
  async function sendParsed(
    request: UpstreamRequest,
    messages: readonly Message[],
    batch: boolean,
  ): Promise<UpstreamAnswer | Refusal> {
    const lists = new Map<RpcId, { readonly kind: DefinitionKind; readonly field: string }>();
    // Which pinned definition each call was checked against: the audit record names it.
    const pinned = new Map<string | number, string>();
    // Calls whose result is held to the pinned output schema, by id as text (a client matches `"1"` to 1).
    const results = new Map<string, Definition>();
    for (const message of messages) {
      if (typeof message.method !== 'string' || message.id === undefined) continue;
      const list = LISTS.get(message.method);
      if (list !== undefined) lists.set(message.id as RpcId, list);
      const params = message.params as { name?: unknown; arguments?: unknown; ref?: unknown } | undefined;
      // A completion of a prompt's argument names the prompt: it must be one clients may see.
      const ref =
        message.method === COMPLETION_COMPLETE
          ? (params?.ref as { type?: unknown; name?: unknown })
          : undefined;
      const completion = ref?.type === 'ref/prompt';
      const kind = completion ? 'prompt' : CALLS.get(message.method);
      const name = completion ? ref?.name : params?.name;
      if (kind === undefined || typeof name !== 'string') continue;
      const verdict = trusted(request, kind, name);
      if (!(typeof verdict === 'boolean' ? verdict : await verdict))
        return refuse('tool_changed', { ids: requestIds(messages), batch });
      if (completion) continue;
      // Against the pin, also under `warn` (a changed tool is served, never checked against its new schema).
      const pin = deps.pins().get(kind, deps.server, name);
      if (pin !== undefined) pinned.set(message.id as string | number, pin.hash);
      const mismatch =
        pin === undefined || kind !== 'tool' ? undefined : mirrored(pin.definition, params, request);
      if (mismatch !== undefined) {
        logger.info({ kind, name, mismatch }, 'Mcp-Param headers disagree with the arguments: not forwarded');
        return refuse('header_mismatch', { ids: requestIds(messages), batch, data: { detail: mismatch } });
      }
      if (
        kind === 'tool' &&
        pin !== undefined &&
        deps.validateResults &&
        pin.definition.outputSchema !== undefined
      )
        results.set(String(message.id), pin.definition);
      if (pin === undefined || !deps.validateArguments) continue;
      const problems =
        kind === 'tool'
          ? toolArgumentProblems(pin.definition, params?.arguments, deps.strictArguments)
          : promptArgumentProblems(pin.definition, params?.arguments);
      if (problems.length === 0) continue;
      logger.info({ kind, name, problems }, 'arguments invalid against the pinned definition: not forwarded');
      if (kind === 'prompt' || batch)
        return refuse('invalid_arguments', {
          ids: requestIds(messages),
          batch,
          data: { detail: `invalid arguments: ${problems.join('; ')}` },
        });
      return {
        ...invalidToolCall(message.id as RpcId, problems, isModern(request.version)),
        invalidArguments: true,
        pinned,
      };
    }
    const answer = await inner.send(request);
    if (isRefusal(answer)) return answer;
    if (lists.size > 0) return filtered(request, answer, lists, batch);
    const relayed = unlisted(request, answer, messages, pinned, results);
    return results.size === 0 || isEventStream(answer.headers['content-type'])
      ? relayed
      : checkedJson(request, relayed, results, messages, batch);
  }

  /**
   * Where a tool call's `Mcp-Param-*` headers disagree with its arguments under the pinned schema's
   * `x-mcp-header` declarations (undefined: they agree), so a router or WAF that reads headers sees
   * what the policy decided. On the modern protocol a declared argument must be mirrored — unless
   * under `warn`, where clients mirror the changed schema: then only headers sent are checked. A
   * pinned schema whose annotations are invalid is no tool a conforming modern client calls.
   */
  function mirrored(
    definition: Definition,
    params: { arguments?: unknown } | undefined,
    request: UpstreamRequest,
  ): string | undefined {
    const declarations = paramDeclarations(definition.inputSchema);
    const modern = isModern(request.version);
    if ('invalid' in declarations)
      return modern
        ? `the pinned schema's x-mcp-header annotations are invalid: ${declarations.invalid}`
        : undefined;
    if (declarations.length === 0) return undefined;
    const wrong = paramMismatches(
      declarations,
      params?.arguments,
      request.headers,
      modern && deps.onToolChange === 'block',
    );
    return wrong.length === 0 ? undefined : `disagrees with the arguments: ${wrong.join(', ')}`;
  }

  /**
   * Any other answer (and a GET stream): a list may hide in it, to be taken by a client for the
   * answer to a list request it sent on another HTTP request (clients match ids loosely: `"2"`
   * answers 2). Every list-shaped result on an SSE stream goes through the pins as a list answer
   * does; a JSON answer is relayed only when its responses answer exactly the one request sent
   * (the relay checks: `answers`).
   */
  function unlisted(
    request: UpstreamRequest,
    answer: UpstreamAnswer,
    messages: readonly Message[],
    pinned: ReadonlyMap<string | number, string>,
    results: ReadonlyMap<string, Definition> = new Map(),
  ): UpstreamAnswer {
    if (isEventStream(answer.headers['content-type'])) {
      const withPins = pinned.size === 0 ? answer : { ...answer, pinned };
      const scope = deps.scopeOf(request);
      const entry = seenFor(scope);
      const invalid = new Set<string | number>();
      const modern = isModern(request.version);
      return {
        ...withPins,
        ...(results.size === 0 ? {} : { invalidResults: invalid }),
        body: rewrittenEvents(
          answer.body,
          (message) => checkedResult(keepPinned(scope, entry, message), results, modern, invalid),
          deps.maxResponseBytes,
        ),
      };
    }
    const [only] = messages;
    const answers =
      messages.length !== 1 || only?.method === undefined ? undefined : (only.id as RpcId | undefined);
    if (answers === undefined || answers === null) return pinned.size === 0 ? answer : { ...answer, pinned };
    // Checked by the relay for a list-shaped result under another id, the only one pins fear here.
    return pinned.size === 0
      ? { ...answer, answers, answersGuard: 'lists' }
      : { ...answer, pinned, answers, answersGuard: 'lists' };
  }

  /**
   * A tool call's JSON answer read whole, its result held to the pinned output schema
   * (`validateResults`); relayed as re-serialized, still checked by the relay for answering
   * exactly the request sent.
   */
  function checkedJson(
    request: UpstreamRequest,
    answer: UpstreamAnswer,
    results: ReadonlyMap<string, Definition>,
    messages: readonly Message[],
    batch: boolean,
  ): Promise<UpstreamAnswer | Refusal> {
    const invalid = new Set<string | number>();
    const modern = isModern(request.version);
    return rewrittenJson(
      answer,
      requestIds(messages),
      batch,
      (read) => read.map((message) => checkedResult(message, results, modern, invalid)),
      { invalidResults: invalid },
    );
  }

  /**
   * A JSON answer read whole (a 200; any other status as it came), its messages rewritten and
   * re-serialized (an array for a batch or several, else the one): what the pins relay of the list
   * answers and checked results they read. Unreadable or too large: refused for `ids`.
   */
  async function rewrittenJson(
    answer: UpstreamAnswer,
    ids: readonly RpcId[],
    batch: boolean,
    rewrite: (read: readonly Message[]) => readonly Message[],
    extra: Partial<UpstreamAnswer> = {},
  ): Promise<UpstreamAnswer | Refusal> {
    if (answer.status !== 200) return answer;
    const read = await readMemberMessages(answer, deps.maxResponseBytes, deps.maxJsonDepth);
    if (typeof read === 'string')
      return refuse(read === 'too_large' ? 'response_too_large' : 'upstream_rejected', { ids });
    const out = rewrite(read);
    const text = JSON.stringify(batch || out.length !== 1 ? out : out[0]);
    const session = answer.headers['mcp-session-id'];
    return {
      ...answer,
      ...extra,
      headers: {
        ...(typeof session === 'string' ? { 'mcp-session-id': session } : {}),
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(text)),
      },
      body: bufferBody(text),
    };
  }

  /**
   * A tool result whose `structuredContent` breaks the pinned `outputSchema`, replaced by an
   * `isError` result naming paths and keywords (a compromised server cannot hand the model
   * unexpected data silently), its id noted for the audit; any other message as it is. Error
   * results, and results that are not final (`input_required`, a task), are not held to it.
   */
  function checkedResult(
    message: Message,
    results: ReadonlyMap<string, Definition>,
    modern: boolean,
    invalid: Set<string | number>,
  ): Message {
    if (results.size === 0 || message.method !== undefined) return message;
    const id = message.id;
    if (typeof id !== 'string' && typeof id !== 'number') return message;
    const definition = results.get(String(id));
    const result = message.result as Record<string, unknown> | undefined;
    if (definition === undefined || typeof result !== 'object' || result === null || Array.isArray(result))
      return message;
    if (result.isError === true) return message;
    if (result.resultType !== undefined && result.resultType !== 'complete') return message;
    if (typeof result.task === 'object' && result.task !== null) return message;
    const problems = resultProblems(definition, result.structuredContent);
    if (problems === undefined || problems.length === 0) return message;
    invalid.add(id);
    logger.warn(
      { name: definition.name, problems },
      'a tool result broke the pinned outputSchema: replaced by an error result',
    );
    return toolError(
      id,
      `The server's result did not match the tool's pinned output schema (checked by the gateway): ${problems.join('; ')}`,
      modern,
    );
  }

  /**
   * A response with its list-shaped result's untrusted definitions left out (under `block`); a
   * `list_changed` makes the scope's definitions stale; anything else as it is.
   */
  function keepPinned(scope: string, entry: Seen, message: Message): Message {
    if (typeof message.method === 'string' && LIST_CHANGED.has(message.method)) announced(scope);
    const given = message.result;
    if (typeof given !== 'object' || given === null || Array.isArray(given)) return message;
    // `"Tools"` or `"toolſ"`: a case-insensitive client reads it as the list, which the pins never saw.
    const result = withoutCaseVariants(given as Record<string, unknown>, SHAPE_FIELDS);
    let out: Record<string, unknown> | undefined = result === given ? undefined : result;
    for (const [field, kind] of SHAPES) {
      const items = result[field];
      if (!Array.isArray(items)) continue;
      out ??= { ...result };
      out[field] = items.filter((item) => {
        const verdict = observe(entry, kind, item);
        if (deps.onToolChange === 'warn') return true;
        return verdict === 'pinned' && accepted(entry, kind, (item as { name: string }).name);
      });
    }
    return out === undefined ? message : { ...message, result: out };
  }

  /** A list answer read whole: each definition recorded; under `block` the untrusted ones left out. */
  function filtered(
    request: UpstreamRequest,
    answer: UpstreamAnswer,
    lists: ReadonlyMap<RpcId, { readonly kind: DefinitionKind; readonly field: string }>,
    batch: boolean,
  ): Promise<UpstreamAnswer | Refusal> {
    const scope = deps.scopeOf(request);
    const entry = seenFor(scope);
    return rewrittenJson(answer, [...lists.keys()], batch, (read) =>
      read
        // By shape, whatever id a response carries: a client matches `"1"` to 1, and any list it
        // reads must have been through the pins.
        .map((message) =>
          message.method === undefined || LIST_CHANGED.has(message.method as string)
            ? keepPinned(scope, entry, message)
            : message,
        )
        .filter((message) => message.method === undefined),
    );
  }
}

/**
 * A tool call whose arguments break the pinned schema, answered as the specification asks servers
 * to report input validation errors: a tool result with `isError: true` naming where and which
 * rule (never the caller's values), so the model can correct its call.
 */
function invalidToolCall(id: RpcId, problems: ArgumentProblems, modern: boolean): UpstreamAnswer {
  return jsonAnswer(
    200,
    toolError(
      id,
      `Invalid arguments (checked by the gateway against the tool's pinned schema): ${problems.join('; ')}`,
      modern,
    ),
    {},
  );
}

/** A response carrying a tool result with `isError: true` and one text. */
function toolError(id: RpcId, text: string, modern: boolean): Message {
  return {
    jsonrpc: '2.0',
    id,
    result: {
      // Results the gateway makes itself are final, on the modern protocol said so.
      ...(modern ? { resultType: 'complete' } : {}),
      content: [{ type: 'text', text }],
      isError: true,
    },
  };
}

/** The ids of a body's requests: one error each when the body is refused. */
function requestIds(messages: readonly Message[]): RpcId[] {
  return messages.flatMap((m) => (m.id === undefined || m.method === undefined ? [] : [m.id as RpcId]));
}
