import { randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { isRefusal, type Refusal, type RpcId, refuse } from '../errors.js';
import { withoutCaseVariants } from '../jsonrpc/case-fold.js';
import {
  COMPLETION_COMPLETE,
  LIST_CHANGED_FILTERS,
  LIST_METHODS,
  PROMPTS_GET,
  TOOLS_CALL,
} from '../jsonrpc/methods.js';
import { isModern } from '../jsonrpc/protocol-version.js';
import { isEventStream } from '../proxy/media-type.js';
import { readMemberMessages } from '../upstream/federation/answers.js';
import type { Failed } from '../upstream/federation/member.js';
import { modernMeta } from '../upstream/gateway-client.js';
import type { Listed } from '../upstream/list-server.js';
import { bufferBody, jsonAnswer, rewrittenEvents } from '../upstream/local-answer.js';
import type { Upstream, UpstreamAnswer, UpstreamRequest } from '../upstream/upstream.js';
import {
  type ArgumentProblems,
  promptArgumentProblems,
  resultProblems,
  toolArgumentProblems,
} from './arguments.js';
import { type Definition, type DefinitionKind, definitionHash } from './definitions.js';
import { paramDeclarations, paramMismatches } from './mirrored-params.js';
import { renderDiff } from './pin-diff.js';
import { describe, type PinSet } from './pins.js';

type Message = Readonly<Record<string, unknown>>;

/** What a definition is, against its pin: trusted, changed, or unpinned (no pin, or unhashable). */
export type Verdict = 'pinned' | 'changed' | 'unpinned';

/** A definition seen to differ from its pin, or to have none: reported once per definition hash. */
export interface DefinitionChange {
  readonly kind: DefinitionKind;
  readonly name: string;
  /** The SHA-256 of the definition seen (`unhashable`: too large, or not valid Unicode JSON). */
  readonly hash: string;
  /** Its pin's hash (undefined: no pin). */
  readonly pinned: string | undefined;
  readonly verdict: Exclude<Verdict, 'pinned'>;
}

/**
 * The gateway listing a server as a client of its own — at start, every `pinRefreshSec`, and when
 * the server says its list changed — so a change is reported even when no caller lists.
 */
export interface OwnListing {
  readonly list: () => Promise<Listed | Failed>;
  /**
   * Whether what it lists is what every caller sees (an HTTP server: callers share one view), so
   * callers take it as the server's latest; a stdio server is listed through a process of its own,
   * whose listing is reported but never stands in for the callers' processes.
   */
  readonly shared: boolean;
}

export interface PinningDeps {
  readonly route: string;
  /** The server of a federated route (undefined: the route's one upstream). */
  readonly server: string | undefined;
  /** The route's pins now (the pin file is reloaded while running). */
  readonly pins: () => PinSet;
  readonly volatileMeta: ReadonlySet<string>;
  /** `block`: changed and unpinned definitions are hidden and refused; `warn`: served, reported. */
  readonly onToolChange: 'block' | 'warn';
  /** How long a definition seen is trusted as the server's current one before it is listed again. */
  readonly refreshMs: number;
  /** Arguments checked against the pinned definition; `strictArguments`: undeclared ones invalid. */
  readonly validateArguments: boolean;
  readonly strictArguments: boolean;
  /** A tool result's `structuredContent` checked against the pinned `outputSchema`; a mismatch replaced. */
  readonly validateResults: boolean;
  /**
   * Whose definitions a request sees: a stdio server run per identity or per session may list
   * differently per process (its key), every other server the same for all ('').
   */
  readonly scopeOf: (request: UpstreamRequest) => string;
  readonly maxResponseBytes: number;
  readonly maxJsonDepth: number;
  readonly logger: Logger;
  /** A definition found to differ from its pin, or to have none (once per hash): counted and audited. */
  readonly onChange?: (change: DefinitionChange) => void;
  readonly ownListing?: OwnListing | undefined;
}

/** The definitions one scope of a server was last seen with, by kind and name. */
interface Seen {
  /** When the server was last listed whole (0: only pieces seen in relayed lists). */
  listedAt: number;
  /** Bumped when the server says its list changed: a listing started before is stale when it ends. */
  generation: number;
  /** The generation the last whole listing started in. */
  listedGeneration: number;
  readonly hashes: Map<string, string | undefined>;
  /**
   * When each name was last seen differ from its pin: a server that shows one definition to the
   * gateway's own listing and another to clients is not trusted on the listing's word.
   */
  readonly differed: Map<string, { readonly hash: string | undefined; readonly at: number }>;
  listing: Promise<void> | undefined;
}

/** The methods whose name must be a trusted definition, and which kind they name. */
const CALLS: ReadonlyMap<string, DefinitionKind> = new Map([
  [TOOLS_CALL, 'tool'],
  [PROMPTS_GET, 'prompt'],
]);
/** The list methods whose items are definitions, and the kind of their items. */
const LISTS: ReadonlyMap<string, { readonly kind: DefinitionKind; readonly field: string }> = new Map(
  [...LIST_METHODS].flatMap(([method, list]) =>
    list.field === 'tools' || list.field === 'prompts'
      ? [[method, { kind: list.field === 'tools' ? 'tool' : 'prompt', field: list.field }] as const]
      : [],
  ),
);
/** The result fields holding definitions, whatever the method a result answers. */
const SHAPES: readonly (readonly [string, DefinitionKind])[] = [
  ['tools', 'tool'],
  ['prompts', 'prompt'],
];
const SHAPE_FIELDS: ReadonlySet<string> = new Set(SHAPES.map(([field]) => field));
/** Callers (identities, sessions) whose view of a server is kept at once. */
const MAX_SCOPES = 10_000;
/** Changed definitions remembered as reported. */
const MAX_REPORTED = 10_000;
/** Pages the gateway follows when it lists a server itself. */
const MAX_PAGES = 100;
/** The `list_changed` notifications that make a server's definitions stale. */
const LIST_CHANGED: ReadonlySet<string> = new Set(
  LIST_CHANGED_FILTERS.flatMap((f) => (f.capability === 'resources' ? [] : [f.method])),
);
/** The scope of the gateway's own listing of a stdio server (its own process): never a caller's. */
const OWN_PROCESS = '\u0000own';

/**
 * Pinned tool definitions enforced on one server (DESIGN.md step 7, Inspect): wraps the upstream
 * of a route with `pins` (each server's, on a federated route), so it sees the server's own names.
 * Every `tools/list` and `prompts/list` answer is read: each definition's hash is recorded as the
 * server's latest, and under `onToolChange: block` a definition that differs from its pin, or has
 * none, is removed from the answer. A `tools/call` or `prompts/get` is forwarded only when the
 * latest definition of its name matches its pin — else 403 `tool_changed` before the server hears
 * of it. The latest definitions come from the lists relayed and, when none is known or it is older
 * than `pinRefreshSec`, from the gateway listing the server itself (every page), in the caller's
 * own context (its session, its process). Each change is logged once per definition hash, with a
 * diff.
 */
export function pinUpstream(inner: Upstream, deps: PinningDeps): Upstream {
  const seen = new Map<string, Seen>();
  const reported = new Set<string>();
  const logger = deps.logger.child({
    route: deps.route,
    ...(deps.server === undefined ? {} : { server: deps.server }),
  });

  const seenFor = (scope: string): Seen => {
    let entry = seen.get(scope);
    if (entry === undefined) {
      entry = {
        listedAt: 0,
        generation: 0,
        listedGeneration: 0,
        hashes: new Map(),
        differed: new Map(),
        listing: undefined,
      };
      // Scopes are identities or sessions: the oldest is forgotten (it lists again when it calls).
      if (seen.size >= MAX_SCOPES) seen.delete(seen.keys().next().value as string);
      seen.set(scope, entry);
    }
    return entry;
  };

  /** Records one listed definition as the server's latest; its verdict against the pins now. */
  const observe = (entry: Seen, kind: DefinitionKind, item: unknown): Verdict | undefined => {
    if (typeof item !== 'object' || item === null || Array.isArray(item)) return undefined;
    const definition = item as Definition;
    const name = definition.name;
    if (typeof name !== 'string') return undefined;
    const hash = definitionHash(definition, deps.volatileMeta);
    const known = typeof hash === 'string' ? hash : undefined;
    entry.hashes.set(`${kind}\u0000${name}`, known);
    const pin = deps.pins().get(kind, deps.server, name);
    const verdict: Verdict =
      pin === undefined || known === undefined ? 'unpinned' : pin.hash === known ? 'pinned' : 'changed';
    if (verdict !== 'pinned') {
      entry.differed.set(`${kind}\u0000${name}`, { hash: known, at: Date.now() });
      report(kind, name, known ?? 'unhashable', verdict, definition);
    }
    return verdict;
  };

  const report = (
    kind: DefinitionKind,
    name: string,
    hash: string,
    verdict: Exclude<Verdict, 'pinned'>,
    definition: Definition,
  ): void => {
    const key = JSON.stringify([kind, name, hash]);
    if (reported.has(key)) return;
    // A server churning its descriptions is reported again after this many, not remembered forever.
    if (reported.size >= MAX_REPORTED) reported.clear();
    reported.add(key);
    const pin = deps.pins().get(kind, deps.server, name);
    // A listing that ends after the router closed reports to the log only: the audit may be closed.
    if (!closed) deps.onChange?.({ kind, name, hash, pinned: pin?.hash, verdict });
    const diff =
      pin === undefined
        ? undefined
        : renderDiff({
            added: [],
            removed: [],
            changed: [{ pinned: pin, listed: { ...pin, hash, definition } }],
          }).slice(0, 4096);
    logger.warn(
      {
        kind,
        name,
        hash,
        pinned: pin?.hash,
        verdict,
        action: deps.onToolChange === 'block' ? 'hidden and refused' : 'served (warn)',
        diff,
      },
      verdict === 'changed'
        ? `${describe(kind, deps.server, name)} differs from its pin`
        : `${describe(kind, deps.server, name)} has no pin`,
    );
  };

  const fresh = (entry: Seen): boolean =>
    entry.listedGeneration === entry.generation && Date.now() - entry.listedAt <= deps.refreshMs;

  /**
   * The server's latest definitions for this request's scope, listed again when unknown, stale or
   * announced changed (a listing that started before the announcement is followed by another).
   */
  const current = async (request: UpstreamRequest): Promise<Seen> => {
    const scope = deps.scopeOf(request);
    const entry = seenFor(scope);
    for (let attempt = 0; attempt < 2 && !fresh(entry); attempt++) {
      entry.listing ??= (
        scope === '' && deps.ownListing?.shared === true
          ? // The gateway's own listing; when it fails (a server that will not list for it), the caller's.
            listOwn(entry).then((listed) => (listed ? undefined : listAll(request, entry)))
          : listAll(request, entry)
      ).finally(() => {
        entry.listing = undefined;
      });
      await entry.listing;
    }
    return entry;
  };

  /** Records a whole listing as the scope's latest: what the server no longer lists is no definition. */
  const replace = (
    entry: Seen,
    items: ReadonlyMap<DefinitionKind, readonly unknown[]>,
    generation: number,
  ) => {
    const latest = new Map<string, string | undefined>();
    for (const [kind, list] of items)
      for (const item of list) {
        observe(entry, kind, item);
        const name = (item as { name?: unknown } | null)?.name;
        if (typeof name === 'string')
          latest.set(`${kind}\u0000${name}`, entry.hashes.get(`${kind}\u0000${name}`));
      }
    entry.hashes.clear();
    for (const [key, hash] of latest) entry.hashes.set(key, hash);
    entry.listedAt = Date.now();
    entry.listedGeneration = generation;
  };

  /** The gateway's own listing (a client of its own); a failure records nothing new (false). */
  const listOwn = async (entry: Seen): Promise<boolean> => {
    const own = deps.ownListing;
    if (own === undefined) return false;
    const generation = entry.generation;
    const listed = await own.list().catch((err: unknown) => ({ failure: 'error' as const, err }));
    if ('failure' in listed) {
      logger.warn(
        { failure: listed.failure },
        'the gateway could not list the server to compare its definitions with the pins: callers list it again',
      );
      return false;
    }
    const items = new Map<DefinitionKind, readonly unknown[]>();
    for (const [field, list] of listed.items) items.set(field === 'tools' ? 'tool' : 'prompt', list);
    replace(entry, items, generation);
    return true;
  };

  /** The scope the own listing stands for: the callers' shared one, or a process of its own. */
  const ownScope = deps.ownListing?.shared === true ? '' : OWN_PROCESS;
  let closed = false;
  let again = false;
  /** Lists the server now (at start, on schedule, on `list_changed`); one at a time, once more if asked meanwhile. */
  const refreshOwn = (): void => {
    if (deps.ownListing === undefined || closed) return;
    const entry = seenFor(ownScope);
    if (entry.listing !== undefined) {
      if (!again) {
        again = true;
        void entry.listing.finally(() => {
          again = false;
          refreshOwn();
        });
      }
      return;
    }
    entry.listing = listOwn(entry)
      .then(() => undefined)
      .finally(() => {
        entry.listing = undefined;
      });
  };
  /** A server that says its list changed: what was seen in that scope is stale at once. */
  const announced = (scope: string): void => {
    const entry = seen.get(scope);
    if (entry !== undefined) entry.generation++;
    if (scope === ownScope || deps.ownListing?.shared !== true) refreshOwn();
  };
  const timer = deps.ownListing === undefined ? undefined : setInterval(refreshOwn, deps.refreshMs);
  timer?.unref();
  if (deps.ownListing !== undefined) setImmediate(refreshOwn);

  /** Lists every tool and prompt of the server, in the caller's context; a failure records nothing new. */
  const listAll = async (request: UpstreamRequest, entry: Seen): Promise<void> => {
    const generation = entry.generation;
    const items = new Map<DefinitionKind, unknown[]>();
    for (const [method, { kind, field }] of LISTS) {
      const found: unknown[] = [];
      items.set(kind, found);
      let cursor: string | undefined;
      for (let page = 0; page < MAX_PAGES; page++) {
        // An id the server cannot tell from a client's (a number, random), and the protocol fields a modern server needs.
        const message = {
          jsonrpc: '2.0',
          id: randomInt(1, 2 ** 31),
          method,
          params: {
            ...(cursor === undefined ? {} : { cursor }),
            ...(isModern(request.version) ? { _meta: modernMeta() } : {}),
          },
        };
        // The caller's headers, less what mirrors its own request (name, arguments).
        const headers: Record<string, string> = {};
        for (const [name, value] of Object.entries(request.headers))
          if (name !== 'mcp-name' && !name.startsWith('mcp-param-')) headers[name] = value;
        if (headers['mcp-method'] !== undefined) headers['mcp-method'] = method;
        const answer = await inner.send({
          ...request,
          headers,
          body: undefined,
          text: JSON.stringify(message),
        });
        if (isRefusal(answer)) return;
        const read = await readMemberMessages(answer, deps.maxResponseBytes, deps.maxJsonDepth).catch(
          () => 'status' as const,
        );
        if (typeof read === 'string') return;
        const response = read.find((m) => m.id === message.id && m.method === undefined);
        const result = response?.result as Record<string, unknown> | undefined;
        // A server without prompts (or tools) answers an error: it lists none.
        if (result === undefined) break;
        const listed = result[field];
        if (Array.isArray(listed)) found.push(...listed);
        cursor = typeof result.nextCursor === 'string' ? result.nextCursor : undefined;
        if (cursor === undefined) break;
      }
    }
    replace(entry, items, generation);
  };

  /**
   * Whether `name`'s latest definition in this scope is trusted: it matches its pin, and was not
   * seen differ within the refresh window — unless the pins now accept what was seen (a server that
   * flips back, or shows one definition to the gateway and another to clients, is not taken at
   * its word).
   */
  const accepted = (entry: Seen, kind: DefinitionKind, name: string): boolean => {
    const key = `${kind}\u0000${name}`;
    const pin = deps.pins().get(kind, deps.server, name);
    if (pin === undefined || entry.hashes.get(key) !== pin.hash) return false;
    const differed = entry.differed.get(key);
    return differed === undefined || differed.hash === pin.hash || Date.now() - differed.at > deps.refreshMs;
  };

  /**
   * Whether a call of `name` may go: its latest definition is trusted (or `warn`). Answered at once
   * when what was seen is fresh (the common case: no promise to wait for), else after listing.
   */
  const trusted = (
    request: UpstreamRequest,
    kind: DefinitionKind,
    name: string,
  ): boolean | Promise<boolean> => {
    const warn = deps.onToolChange === 'warn';
    const entry = seen.get(deps.scopeOf(request));
    if (entry !== undefined && fresh(entry)) return accepted(entry, kind, name) || warn;
    return current(request).then((listed) => accepted(listed, kind, name) || warn);
  };

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
      closed = true;
      clearInterval(timer);
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
      : checkedJson(request, relayed, results, batch);
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
  async function checkedJson(
    request: UpstreamRequest,
    answer: UpstreamAnswer,
    results: ReadonlyMap<string, Definition>,
    batch: boolean,
  ): Promise<UpstreamAnswer | Refusal> {
    if (answer.status !== 200) return answer;
    const read = await readMemberMessages(answer, deps.maxResponseBytes, deps.maxJsonDepth);
    if (typeof read === 'string')
      return refuse(read === 'too_large' ? 'response_too_large' : 'upstream_rejected', {
        ids: [...results.keys()],
      });
    const invalid = new Set<string | number>();
    const modern = isModern(request.version);
    const out = read.map((message) => checkedResult(message, results, modern, invalid));
    const text = JSON.stringify(batch || out.length !== 1 ? out : out[0]);
    const session = answer.headers['mcp-session-id'];
    return {
      ...answer,
      headers: {
        ...(typeof session === 'string' ? { 'mcp-session-id': session } : {}),
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(text)),
      },
      body: bufferBody(text),
      invalidResults: invalid,
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
  async function filtered(
    request: UpstreamRequest,
    answer: UpstreamAnswer,
    lists: ReadonlyMap<RpcId, { readonly kind: DefinitionKind; readonly field: string }>,
    batch: boolean,
  ): Promise<UpstreamAnswer | Refusal> {
    if (answer.status !== 200) return answer;
    const read = await readMemberMessages(answer, deps.maxResponseBytes, deps.maxJsonDepth);
    if (typeof read === 'string')
      return refuse(read === 'too_large' ? 'response_too_large' : 'upstream_rejected', {
        ids: [...lists.keys()],
      });
    const scope = deps.scopeOf(request);
    const entry = seenFor(scope);
    // By shape, whatever id a response carries: a client matches `"1"` to 1, and any list it
    // reads must have been through the pins.
    const out = read.map((message) =>
      message.method === undefined || LIST_CHANGED.has(message.method as string)
        ? keepPinned(scope, entry, message)
        : message,
    );
    const responses = out.filter((m) => m.method === undefined);
    const session = answer.headers['mcp-session-id'];
    const headers = typeof session === 'string' ? { 'mcp-session-id': session } : {};
    const text = JSON.stringify(batch || responses.length !== 1 ? responses : responses[0]);
    return {
      status: 200,
      headers: {
        ...headers,
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(text)),
      },
      body: bufferBody(text),
    };
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
