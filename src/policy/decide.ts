import type { Identity } from '../auth/identity.js';
import type { RpcMessage } from '../jsonrpc/parse.js';
import type { CompiledPolicy, NameTable, Requirement } from './compile.js';
import { canonicalResourceTemplate, canonicalResourceUri } from './uri.js';

export type DenyReason =
  | 'insufficient_scope'
  | 'method_denied'
  | 'method_not_found'
  | 'invalid_request'
  | 'bad_uri';

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
  /** The tool, resource or prompt the call names (a resource by its canonical URI). */
  readonly target?: string;
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

/** Methods that need only an identity (DESIGN.md step 6, the method table). */
const IDENTITY_ONLY: ReadonlySet<string> = new Set([
  'initialize',
  'ping',
  'tools/list',
  'resources/list',
  'resources/templates/list',
  'prompts/list',
  'logging/setLevel',
  'server/discover',
]);

const ALLOW_IDENTITY: Decision = Object.freeze({
  effect: 'allow',
  rule: 'method-table',
  required: [],
  missing: [],
});

/**
 * Decides one parsed message against a route's compiled policy (DESIGN.md step 6). The ladder,
 * in order: client answers and notifications need only an identity; the method table's
 * identity-only methods; the named methods by their target; anything else only if `methods` lists
 * it — refused otherwise (403 on the legacy protocol, 404 on the modern one, as servers answer).
 */
export function decide(
  policy: CompiledPolicy,
  message: RpcMessage,
  identity: Identity,
  modern: boolean,
): Decision {
  if (message.kind === 'response') return ALLOW_IDENTITY;
  const { method } = message;
  if (message.kind === 'notification' && method.startsWith('notifications/')) return ALLOW_IDENTITY;
  if (IDENTITY_ONLY.has(method)) return ALLOW_IDENTITY;
  const params = message.params;
  switch (method) {
    case 'tools/call':
      return byName(policy.tools, params?.name, identity, policy, 'invalid_request');
    case 'prompts/get':
      return byName(policy.prompts, params?.name, identity, policy, 'invalid_request');
    case 'resources/read':
      return byUri(policy, params?.uri, identity, URI_PATH);
    case 'resources/subscribe':
    case 'resources/unsubscribe':
      // 2026-07-28 replaced these with subscriptions/listen: there they are unknown methods.
      if (!modern) return byUri(policy, params?.uri, identity, URI_PATH);
      break;
    case 'completion/complete':
      return byReference(policy, params?.ref, identity);
    case 'subscriptions/listen':
      return byListen(policy, params?.notifications, identity);
  }
  const listed = policy.methods.lookup(method);
  if (listed !== undefined) return check(listed, identity, method);
  return deny(modern ? 'method_not_found' : 'method_denied', 'method-table', method);
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

/** `subscriptions/listen` (2026-07-28): every resource it subscribes to is checked like a read. */
function byListen(policy: CompiledPolicy, notifications: unknown, identity: Identity): Decision {
  const uris =
    typeof notifications === 'object' && notifications !== null
      ? (notifications as { resourceSubscriptions?: unknown }).resourceSubscriptions
      : undefined;
  if (uris === undefined) return ALLOW_IDENTITY;
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
  return missing.length === 0
    ? { effect: 'allow', rule: requirement.rule, required: requirement.scopes, missing, target }
    : {
        effect: 'deny',
        rule: requirement.rule,
        required: requirement.scopes,
        missing,
        reason: 'insufficient_scope',
        target,
      };
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
