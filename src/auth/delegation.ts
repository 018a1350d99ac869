/**
 * The caller's own delegation chain (RFC 8693 §4.1): the `act` claims nested in its token, the
 * current actor outermost. `maxDelegationDepth` bounds it; `explain` shows it; `when` rules read it
 * as `identity.claims.act`.
 */

/** Levels read at most: a chain is never walked further than this, however deep a token nests it. */
const MAX_READ = 32;

/** The actors in `claims.act`, current first (`sub`, or `(no sub)`); at most {@link MAX_READ}. */
export function delegationChain(claims: Readonly<Record<string, unknown>> | undefined): string[] {
  const actors: string[] = [];
  let act = claims?.act;
  while (act !== null && typeof act === 'object' && !Array.isArray(act) && actors.length < MAX_READ) {
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
