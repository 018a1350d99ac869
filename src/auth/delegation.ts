/**
 * The caller's own delegation chain (RFC 8693 §4.1): the `act` claims nested in its token, the
 * current actor outermost. `maxDelegationDepth` bounds it; `explain` shows it; `when` rules read it
 * as `identity.claims.act`.
 */

/** The longest chain a token may carry: deeper is a malformed token. */
export const MAX_DELEGATION_DEPTH = 32;
const MAX_READ = MAX_DELEGATION_DEPTH;

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

/**
 * Whether `act` (a token's claim) is a delegation chain: absent, or an object (RFC 8693 §4.1)
 * whose own `act`, if any, is one too, at most {@link MAX_DELEGATION_DEPTH} deep. A token with
 * anything else (an array, a string, a chain without end) does not authenticate: a bound on
 * depth or a rule on the actor could not judge it, and no assertion could carry it.
 */
export function isDelegationChain(act: unknown): boolean {
  let level = act;
  for (let depth = 0; level !== undefined; depth++) {
    if (depth >= MAX_DELEGATION_DEPTH || !isPlainObject(level)) return false;
    level = level.act;
  }
  return true;
}

/** The actors in `claims.act`, current first (`sub`, or `(no sub)`); at most {@link MAX_READ}. */
export function delegationChain(claims: Readonly<Record<string, unknown>> | undefined): string[] {
  const actors: string[] = [];
  let act = claims?.act;
  while (isPlainObject(act) && actors.length < MAX_READ) {
    const { sub } = act as { sub?: unknown };
    actors.push(typeof sub === 'string' ? sub : '(no sub)');
    act = (act as { act?: unknown }).act;
  }
  return actors;
}

/** How many actors stand between the subject and the gateway: 0 without `act`. */
export function delegationDepth(claims: Readonly<Record<string, unknown>> | undefined): number {
  return delegationChain(claims).length;
}
