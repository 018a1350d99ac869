import { stepUpChallenge } from '../auth/challenge.js';
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
 *
 * The refusal depends on the policy alone — never on whether the upstream has the tool — and
 * only `insufficient_scope` carries a step-up challenge: a call no scope can grant is refused
 * `method_denied` without one (a challenge there would send an OAuth client round for nothing).
 * `resourceMetadata` is the route's RFC 9728 URL, absent when it has no authorization server.
 */
export function authorize(
  policy: CompiledPolicy,
  body: ParsedBody,
  identity: Identity,
  opts: { readonly modern: boolean; readonly resourceMetadata: string | undefined },
): Authorization {
  const decisions = body.messages.map((message) => decide(policy, message, identity, opts.modern));
  // Which denial answers, in order: malformed input (a traversing URI, a non-string name) — refused
  // in every mode, shadow included; then a denial no scope could lift; then missing scopes.
  const denied =
    decisions.find(
      (d) => d.effect === 'deny' && (d.reason === 'bad_uri' || d.reason === 'invalid_request'),
    ) ??
    (policy.mode === 'shadow'
      ? undefined
      : (decisions.find((d) => d.effect === 'deny' && d.reason !== 'insufficient_scope') ??
        decisions.find((d) => d.effect === 'deny')));
  if (denied === undefined) return { decisions };
  const ids = body.messages.flatMap((m) => (m.kind === 'request' ? [m.id] : []));
  const reason: RefusalReason = denied.reason ?? 'insufficient_scope';
  if (reason === 'argument_denied')
    return {
      decisions,
      refusal: refuse(reason, {
        ids,
        batch: body.batch,
        // Which rule, and whether it said no or could not be evaluated — never the arguments.
        data: {
          rule: denied.rule,
          ...(denied.detail === 'evaluation_error' ? { detail: 'evaluation_error' } : {}),
        },
      }),
    };
  if (reason !== 'insufficient_scope')
    return { decisions, refusal: refuse(reason, { ids, batch: body.batch }) };
  // RFC 6750 §3.1: every scope the request needs (each message of a batch: one step-up serves all)…
  const required = new Set<string>();
  for (const decision of decisions) for (const scope of decision.required) required.add(scope);
  const refusal = refuse(reason, {
    ids,
    batch: body.batch,
    headers: {
      // …with those the token holds, so a client that replaces its scopes keeps them.
      'www-authenticate': stepUpChallenge([...required], identity.scopes, opts.resourceMetadata),
    },
    data: { requiredScopes: [...denied.required] },
  });
  return { decisions, refusal };
}
