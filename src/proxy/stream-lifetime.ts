import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Identity } from '../auth/identity.js';

/**
 * The longest delay a Node timer honours (2^31-1 ms, 24.8 days). A longer one overflows to 1 ms
 * and fires at once: a JWT valid for 40 days would have cut every stream it opened immediately.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** One admitted exchange whose answer is held to its caller's credential while it is open. */
export interface HeldAnswer {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The route path it was admitted on. */
  readonly route: string;
  /**
   * What it authenticated under (the compiled route of the policy then in force), compared by
   * identity with the current one: a reload between authentication and `hold` is caught.
   */
  readonly policy: object;
  readonly identity: Identity;
}

/** Why a held answer was closed early (metric label and log field). */
export type CloseReason = 'revoked' | 'expired';

export interface AnswerLifetimes {
  /**
   * Holds an admitted exchange until its response closes: it is closed when its credential expires
   * or, at a reload, stops authenticating. Call once per exchange, right after authentication.
   */
  hold(answer: HeldAnswer): void;
  /** After a policy reload: closes every held answer whose caller no longer authenticates. */
  revalidate(): Promise<void>;
  /**
   * The identity the answer held on `res` has under the policy now in force: as it authenticated,
   * or as the last reload re-authenticated it (an API key's scopes edited); `undefined` when it
   * is not held (closed, or never held).
   */
  identityOf(res: ServerResponse): Identity | undefined;
  /** Answers held now. */
  size(): number;
  /** Stops the expiry timer (shutdown). */
  close(): void;
}

export interface AnswerLifetimeDeps {
  /**
   * Re-authenticates a held answer's request under the policy now in force: the identity it has
   * now, or `undefined` when it no longer authenticates (key removed, route gone, token refused).
   */
  reauthenticate(answer: HeldAnswer): Promise<Identity | undefined>;
  /** Whether `answer.policy` is the policy now in force for its route. */
  current(answer: HeldAnswer): boolean;
  /** An answer was closed early; `why` says which limit ended it. */
  onClose?(answer: HeldAnswer, why: CloseReason): void;
  /** Reports a bug inside the mechanism (never a caller's doing); the exchange is closed. */
  onError(err: unknown, answer: HeldAnswer): void;
  readonly now?: () => number;
}

interface Entry {
  readonly answer: HeldAnswer;
  /** What its caller is under the policy in force: replaced when a reload re-authenticates it. */
  identity: Identity;
  /** Epoch ms when its credential stops authenticating; Infinity when never. */
  expiresAt: number;
  /** Identity key it authenticated as: a reload that maps the credential elsewhere closes it. */
  readonly key: string;
}

/**
 * One lifetime for every long-lived answer — SSE GET streams, SSE POST answers, chunked JSON
 * (`subscriptions/listen`) — and the ordinary ones alike (DESIGN.md step 10): the mechanism does
 * not need to know which kind an answer will turn out to be, so none escapes it. Threats: a
 * revoked API key or JWT keeping a stream it opened before revocation; a stream outliving its
 * token's `exp`; a far `exp` overflowing a timer and cutting every stream at once.
 *
 * Expiry uses one timer for the whole process, armed for the earliest expiry held (clamped to
 * {@link MAX_TIMER_MS}; re-armed when it fires early or a later one is next). Holding an answer
 * costs a set insertion and a comparison, no timer of its own.
 */
export function createAnswerLifetimes(deps: AnswerLifetimeDeps): AnswerLifetimes {
  const now = deps.now ?? Date.now;
  /** By response: a held answer's current identity is looked up by what the relay has. */
  const held = new Map<ServerResponse, Entry>();
  let timer: NodeJS.Timeout | undefined;
  /** When the armed timer fires (epoch ms); Infinity when none is armed. */
  let armedFor = Number.POSITIVE_INFINITY;

  const end = (entry: Entry, why: CloseReason) => {
    held.delete(entry.answer.res);
    deps.onClose?.(entry.answer, why);
    entry.answer.res.destroy();
  };

  const arm = (at: number) => {
    if (at >= armedFor) return;
    if (timer !== undefined) clearTimeout(timer);
    armedFor = at;
    const delay = Math.min(Math.max(at - now(), 1), MAX_TIMER_MS);
    timer = setTimeout(sweep, delay);
    timer.unref();
  };

  /** Closes what has expired and arms the timer for the next expiry. */
  function sweep(): void {
    timer = undefined;
    armedFor = Number.POSITIVE_INFINITY;
    const at = now();
    let next = Number.POSITIVE_INFINITY;
    for (const entry of held.values()) {
      if (entry.expiresAt <= at) end(entry, 'expired');
      else if (entry.expiresAt < next) next = entry.expiresAt;
    }
    if (Number.isFinite(next)) arm(next);
  }

  /** Re-checks one answer under the policy in force; closes it when its caller no longer authenticates. */
  async function recheck(entry: Entry): Promise<void> {
    let identity: Identity | undefined;
    try {
      identity = await deps.reauthenticate(entry.answer);
    } catch (err) {
      // Not the caller's doing but a bug: the answer cannot be vouched for, so it ends.
      deps.onError(err, entry.answer);
      identity = undefined;
    }
    if (held.get(entry.answer.res) !== entry) return; // closed while it was checked
    if (identity === undefined || identity.key !== entry.key) return end(entry, 'revoked');
    // Same caller, perhaps other scopes: what is delivered on its answer from now on is decided
    // for the identity it has now (`resources/updated`, proxy/answer.ts).
    entry.identity = identity;
    // The new policy may move the credential's expiry (an API key's `expires` edited).
    entry.expiresAt = identity.expiresAt ?? Number.POSITIVE_INFINITY;
    if (entry.expiresAt <= now()) return end(entry, 'expired');
    arm(entry.expiresAt);
  }

  return {
    hold(answer) {
      // Already gone (its 'close' has passed): nothing to hold, and no listener would ever free it.
      if (answer.res.destroyed) return;
      const entry: Entry = {
        answer,
        identity: answer.identity,
        expiresAt: answer.identity.expiresAt ?? Number.POSITIVE_INFINITY,
        key: answer.identity.key,
      };
      held.set(answer.res, entry);
      answer.res.once('close', () => held.delete(answer.res));
      if (entry.expiresAt <= now()) return end(entry, 'expired');
      if (Number.isFinite(entry.expiresAt)) arm(entry.expiresAt);
      // Authenticated under a policy a reload has since replaced: the reload's sweep may have
      // missed it, so it is checked on its own.
      if (!deps.current(answer)) void recheck(entry);
    },
    async revalidate() {
      // Sequential: JWT re-verification mostly hits the verifier's cache; an outage of the issuer
      // must not fan out into one JWKS fetch per open stream.
      for (const entry of [...held.values()]) await recheck(entry);
    },
    identityOf: (res) => held.get(res)?.identity,
    size: () => held.size,
    close() {
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      armedFor = Number.POSITIVE_INFINITY;
    },
  };
}
