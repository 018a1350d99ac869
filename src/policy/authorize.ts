import type { Identity } from '../auth/identity.js';
import { type Refusal, type RefusalReason, refuse } from '../errors.js';
import type { ParsedBody } from '../jsonrpc/parse.js';
import type { CompiledPolicy } from './compile.js';
import { type Decision, decide } from './decide.js';

export interface Authorization {
  /** One decision per message, in order. */
  readonly decisions: readonly Decision[];
  /** Set when the request must be refused (enforce mode and any message denied). */
  readonly refusal?: Refusal;
}

/**
 * DESIGN.md step 6 for a whole request: every message decided; a batch with any denied element is
 * refused whole, one error per id. In `shadow` mode scope and method denials are not enforced —
 * they are recorded (as `shadow-deny`) and the request forwarded.
 */
export function authorize(
  policy: CompiledPolicy,
  body: ParsedBody,
  identity: Identity,
  opts: { readonly modern: boolean; readonly resourceMetadata: string },
): Authorization {
  const decisions = body.messages.map((message) => decide(policy, message, identity, opts.modern));
  // Shadow mode forwards what policy would deny — never malformed input (a traversing URI, a
  // non-string name): those are refused in every mode.
  const denied =
    decisions.find(
      (d) => d.effect === 'deny' && (d.reason === 'bad_uri' || d.reason === 'invalid_request'),
    ) ?? (policy.mode === 'shadow' ? undefined : decisions.find((d) => d.effect === 'deny'));
  if (denied === undefined) return { decisions };
  const ids = body.messages.flatMap((m) => (m.kind === 'request' ? [m.id] : []));
  return { decisions, refusal: refusalFor(denied, ids, body.batch, opts.resourceMetadata) };
}

function refusalFor(
  denied: Decision,
  ids: (string | number)[],
  batch: boolean,
  resourceMetadata: string,
): Refusal {
  const reason: RefusalReason = denied.reason ?? 'insufficient_scope';
  if (reason !== 'insufficient_scope' && reason !== 'method_denied') return refuse(reason, { ids, batch });
  // RFC 6750 §3.1: the scopes the call needs, so an MCP client can step up.
  const scope = denied.required.length > 0 ? `, scope="${denied.required.join(' ')}"` : '';
  return refuse(reason, {
    ids,
    batch,
    headers: {
      'www-authenticate': `Bearer error="insufficient_scope"${scope}, resource_metadata="${resourceMetadata}"`,
    },
    data: { requiredScopes: [...denied.required] },
  });
}
