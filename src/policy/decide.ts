import type { Identity } from '../auth/identity.js';
import {
  clientMaySend,
  generationOf,
  LISTEN_FILTER,
  mcpMethod,
  type PolicyTarget,
} from '../jsonrpc/methods.js';
import type { RpcMessage } from '../jsonrpc/parse.js';
import type { CompiledPolicy, ConfirmBy, NameTable, Requirement } from './compile.js';
import { canonicalResourceTemplate, canonicalResourceUri } from './uri.js';

export type DenyReason =
  | 'insufficient_scope'
  | 'method_denied'
  | 'method_not_found'
  | 'invalid_request'
  | 'bad_uri'
  | 'argument_denied';

/**
 * A decision is a value: the audit record, the refusal and `portcullis explain` print it as it is.
 * `required` is every scope the call needs, `missing` those the caller lacks.
 */
export interface Decision {
  readonly effect: 'allow' | 'deny';
  readonly rule: string;
  readonly required: readonly string[];
  readonly missing: readonly string[];
  readonly reason?: DenyReason;
  /** Why an `argument_denied` rule denied: `false` (the rule said no) or `evaluation_error`. */
  readonly detail?: 'false' | 'evaluation_error';
  /** An `evaluation_error`'s kind, in fixed words (`a field the rule reads is missing`): never a value. */
  readonly evaluationError?: string;
  /** The tool, resource or prompt the call names (a resource by its canonical URI). */
  readonly target?: string;
  /**
   * A tool call a human must confirm before it is forwarded (its entry's `confirm`): set on a
   * denial too, which a `shadow` route still forwards.
   */
  readonly confirm?: ConfirmBy;
  /**
   * The resource URIs the message names whose canonical form differs from the client's spelling:
   * the canonical URI the policy matched is what is forwarded (`canonical-body.ts`).
   */
  readonly rewrites?: readonly UriRewrite[];
}

/** One resource URI to replace before forwarding: where it sits under `params`, and its canonical form. */
export interface UriRewrite {
  readonly path: readonly (string | number)[];
  readonly canonical: string;
}

const ALLOW_IDENTITY: Decision = Object.freeze({
  effect: 'allow',
  rule: 'method-table',
  required: [],
  missing: [],
});

/**
 * Decides one parsed message against a route's compiled policy (DESIGN.md step 6), reading the
 * method table (`jsonrpc/methods.ts`). The ladder, in order:
 * 1. a client's answer to a server request needs an identity (the parse stage refuses one on the
 *    modern protocol, whose servers send no requests);
 * 2. a method the client may send — the table has it, in this kind (a request with an id, a
 *    notification without), from the client, in this generation — is decided by what it names;
 * 3. anything else only if the route's `methods` lists it: a method of the other generation (a
 *    modern `initialize`, which would select legacy semantics on a dual-era upstream; a legacy
 *    `server/discover`), a notification the generation does not define, a server-only method, a
 *    request named `notifications/…`, a tasks method (`methods` may not name those: a load error),
 *    a method no table knows. Refused otherwise — 403 `method_denied` on the legacy protocol,
 *    404 `method_not_found` (-32601) on the modern one, as servers answer.
 */
export function decide(
  policy: CompiledPolicy,
  message: RpcMessage,
  identity: Identity,
  modern: boolean,
): Decision {
  if (message.kind === 'response') return ALLOW_IDENTITY;
  const { method } = message;
  const row = mcpMethod(method);
  if (row !== undefined && row.policy !== 'closed' && clientMaySend(row, message.kind, generationOf(modern)))
    return byTarget(row.policy, policy, message, identity);
  const listed = policy.methods.lookup(method);
  if (listed !== undefined) return check(listed, identity, method);
  return deny(modern ? 'method_not_found' : 'method_denied', 'method-table', method);
}

/** The decision for a method the client may send, by what the table says it names. */
function byTarget(
  target: Exclude<PolicyTarget, 'closed'>,
  policy: CompiledPolicy,
  message: Exclude<RpcMessage, { kind: 'response' }>,
  identity: Identity,
): Decision {
  const params = message.params;
  switch (target) {
    case 'identity':
      return ALLOW_IDENTITY;
    case 'tool':
      return withCondition(
        byName(policy.tools, params?.name, identity, policy, 'invalid_request'),
        policy,
        params,
        identity,
      );
    case 'prompt':
      return byName(policy.prompts, params?.name, identity, policy, 'invalid_request');
    case 'resource':
      return byUri(policy, params?.uri, identity, URI_PATH);
    case 'completion-ref':
      return byReference(policy, params?.ref, identity);
    case 'subscriptions':
      return byListen(policy, params?.notifications, identity);
  }
}

/**
 * The decision for reading resource `uri` — what `resources/read` of it would get (canonical form,
 * patterns, the route's `default`). Used to re-authorize a `resources/updated` at delivery
 * (`policy/resource-updates.ts`): an update tells its reader the resource changed.
 */
export function decideResourceRead(policy: CompiledPolicy, uri: unknown, identity: Identity): Decision {
  return byUri(policy, uri, identity, URI_PATH);
}

function byName(
  table: NameTable,
  name: unknown,
  identity: Identity,
  policy: CompiledPolicy,
  invalid: DenyReason,
): Decision {
  if (typeof name !== 'string') return deny(invalid, 'params.name must be a string');
  return check(table.lookup(name) ?? fallback(policy), identity, name);
}

/**
 * A tool call its scopes allow, held to its entry's `when` rule (DESIGN.md step 7): false, or an
 * evaluation that fails (fail closed), denies it as `argument_denied` naming the rule.
 */
function withCondition(
  decision: Decision,
  policy: CompiledPolicy,
  params: Readonly<Record<string, unknown>> | undefined,
  identity: Identity,
): Decision {
  if (!policy.tools.conditional || decision.effect !== 'allow' || typeof params?.name !== 'string')
    return decision;
  const when = policy.tools.lookup(params.name)?.when;
  if (when === undefined) return decision;
  const result = when.evaluate({
    args: params.arguments ?? {},
    identity: {
      subject: identity.subject,
      key: identity.key,
      scopes: [...identity.scopes],
      claims: identity.claims ?? {},
      methods: [...identity.methods],
    },
    route: policy.route ?? '',
  });
  if (result === true) return decision;
  return {
    ...decision,
    effect: 'deny',
    reason: 'argument_denied',
    ...(result === false
      ? { detail: 'false' }
      : { detail: 'evaluation_error', evaluationError: result.error }),
  };
}

const URI_PATH: readonly string[] = ['uri'];
const REF_URI_PATH: readonly string[] = ['ref', 'uri'];

/**
 * A resource URI decided by its canonical form (`uri.ts`): patterns match it, the audit names it,
 * and, when it differs from what the client wrote, `path` (under `params`) records where the
 * canonical URI replaces it before forwarding.
 */
function byUri(
  policy: CompiledPolicy,
  uri: unknown,
  identity: Identity,
  path: readonly (string | number)[],
  canonicalize: (uri: string) => string | undefined = canonicalResourceUri,
): Decision {
  if (typeof uri !== 'string') return deny('invalid_request', 'params.uri must be a string');
  const canonical = canonicalize(uri);
  // The target of a refused URI is left out: it may hold controls, and it names nothing.
  if (canonical === undefined) return deny('bad_uri', 'resource URI');
  const decision = check(policy.resources.lookup(canonical) ?? fallback(policy), identity, canonical);
  return canonical === uri ? decision : { ...decision, rewrites: [{ path, canonical }] };
}

function byReference(policy: CompiledPolicy, ref: unknown, identity: Identity): Decision {
  const { type, name, uri } = (typeof ref === 'object' && ref !== null ? ref : {}) as Record<string, unknown>;
  if (type === 'ref/prompt') return byName(policy.prompts, name, identity, policy, 'invalid_request');
  // A resource reference may be a URI template (`file:///{path}`): its expressions stay as written.
  if (type === 'ref/resource') return byUri(policy, uri, identity, REF_URI_PATH, canonicalResourceTemplate);
  return deny('invalid_request', 'params.ref must name a prompt or a resource');
}

/**
 * `subscriptions/listen` (2026-07-28), by its filter (`params.notifications`, see `LISTEN_FILTER`):
 * the list-changed flags need an identity; every resource it subscribes to is checked like a read;
 * `taskIds` (tasks extension) and any member the gateway does not know are refused
 * `method_denied` — no scope can grant them: task ids are not bound to identities, and
 * `notifications/tasks` would deliver another caller's task with its result.
 */
function byListen(policy: CompiledPolicy, notifications: unknown, identity: Identity): Decision {
  if (notifications === undefined) return ALLOW_IDENTITY;
  if (typeof notifications !== 'object' || notifications === null || Array.isArray(notifications))
    return deny('invalid_request', 'params.notifications must be an object');
  let closed: Decision | undefined;
  let uris: unknown;
  for (const key in notifications) {
    if (!Object.hasOwn(notifications, key)) continue;
    const names = LISTEN_FILTER.get(key);
    // An unknown key is the client's text: it is not echoed into the decision.
    if (names === undefined) closed ??= deny('method_denied', 'subscriptions filter: unknown member');
    else if (names === 'closed') closed ??= deny('method_denied', `subscriptions filter: ${key}`);
    else if (names === 'resources') uris = (notifications as Record<string, unknown>)[key];
  }
  const subscribed = uris === undefined ? ALLOW_IDENTITY : bySubscriptions(policy, uris, identity);
  // Malformed input answers first (refused in every mode); a closed member next, carrying the
  // canonical URIs — shadow mode forwards it, and never with the client's spelling.
  if (closed === undefined || subscribed.reason === 'bad_uri' || subscribed.reason === 'invalid_request')
    return subscribed;
  return subscribed.rewrites === undefined ? closed : { ...closed, rewrites: subscribed.rewrites };
}

/** Each `resourceSubscriptions` URI checked like a read. */
function bySubscriptions(policy: CompiledPolicy, uris: unknown, identity: Identity): Decision {
  if (!Array.isArray(uris)) return deny('invalid_request', 'resourceSubscriptions must be a list');
  // Every URI is decided (the first denial is the answer) and every canonical form kept: shadow
  // mode forwards a denied listen, and it too must carry the URIs policy matched.
  let decided: Decision = ALLOW_IDENTITY;
  let rewrites: UriRewrite[] | undefined;
  for (let i = 0; i < uris.length; i++) {
    const decision = byUri(policy, uris[i], identity, ['notifications', 'resourceSubscriptions', i]);
    if (decision.reason === 'bad_uri' || decision.reason === 'invalid_request') return decision;
    if (decision.rewrites !== undefined) {
      rewrites ??= [];
      for (const rewrite of decision.rewrites) rewrites.push(rewrite);
    }
    if (decided.effect === 'allow') decided = decision;
  }
  if (rewrites === undefined) return decided;
  return { ...decided, rewrites };
}

/** The requirement for a name no table lists: the route's `default`. */
function fallback(policy: CompiledPolicy): Requirement | null {
  return policy.defaultEffect === 'allow' ? DEFAULT_ALLOW : null;
}

const DEFAULT_ALLOW: Requirement = Object.freeze({ scopes: [], rule: 'default: allow' });

function check(requirement: Requirement | null, identity: Identity, target: string): Decision {
  // Unlisted under `default: deny`: no scope could grant it, so it is not a scope problem.
  if (requirement === null)
    return {
      effect: 'deny',
      rule: 'default: deny',
      required: [],
      missing: [],
      reason: 'method_denied',
      target,
    };
  const missing = requirement.scopes.filter((scope) => !identity.scopes.has(scope));
  const decided: Decision =
    missing.length === 0
      ? { effect: 'allow', rule: requirement.rule, required: requirement.scopes, missing, target }
      : {
          effect: 'deny',
          rule: requirement.rule,
          required: requirement.scopes,
          missing,
          reason: 'insufficient_scope',
          target,
        };
  // On denials too: a `shadow` route forwards them, and a call forwarded is a call confirmed.
  return requirement.confirm === undefined ? decided : { ...decided, confirm: requirement.confirm };
}

function deny(reason: DenyReason, rule: string, target?: string): Decision {
  return {
    effect: 'deny',
    rule,
    required: [],
    missing: [],
    reason,
    ...(target === undefined ? {} : { target }),
  };
}
