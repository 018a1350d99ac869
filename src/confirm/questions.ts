import { hash } from 'node:crypto';
import type { Channel } from '../ratelimit/channel.js';

/**
 * The confirmations the gateway is asking on legacy sessions (DESIGN.md "human confirmation"): a
 * call's SSE answer carries an `elicitation/create` with an id under the reserved prefix, and the
 * call waits here until the client's response comes back in a POST of the same session — to this
 * replica, or with Redis to any replica. An answer counts only from the identity, route and
 * session that were asked, and only once; no answer within the timeout is an expiry.
 */

/** Who was asked: the answer must come from the same identity, on the same route and session. */
export interface Asker {
  readonly identity: string;
  readonly route: string;
  /** The upstream session id the client's sealed session names. */
  readonly session: string;
}

/** How a question ended: the caller's yes or no, no answer in time, or the caller gone. */
export type Verdict = 'yes' | 'no' | 'expired' | 'gone';

/** A question asked: its verdict comes once; `cancel` ends it as `gone` (the caller left). */
export interface Waiting {
  readonly verdict: Promise<Verdict>;
  cancel(): void;
}

export interface OpenQuestions {
  /**
   * Opens question `id` asked of `asker`: its verdict is `expired` after `ttlMs`. Rejects when it
   * cannot be opened (the shared store does not answer, or too many are open): nothing was asked.
   */
  open(id: string, asker: Asker, ttlMs: number): Promise<Waiting>;
  /**
   * The client's answer to `id`: true when a question asked of `asker` took it (at most once, on
   * any replica sharing the store), false when none is waiting — unknown, answered, expired or
   * asked of someone else. Rejects when the shared store cannot say.
   */
  answer(id: string, asker: Asker, verdict: 'yes' | 'no'): Promise<boolean>;
  /** Stops listening for other replicas' answers (shutdown). */
  close(): Promise<void>;
}

/** The shared store's part, in Redis: single-use keys and one channel every replica listens on. */
export interface QuestionStore extends Channel {
  /** Sets `key` for `ttlMs` (the question is open). */
  open(key: string, ttlMs: number): Promise<void>;
  /** Deletes `key`: true when it was there (this caller took the question, nobody else can). */
  take(key: string): Promise<boolean>;
}

/** The most questions one replica keeps open: beyond it a new one is refused (503), never a wait forgotten. */
const MAX_OPEN = 10_000;

/**
 * Open questions in this process; with `store` (Redis) an answer reaching another replica is taken
 * there atomically and published to the one waiting.
 */
export function createOpenQuestions(store?: QuestionStore): OpenQuestions {
  const waiting = new Map<string, (verdict: Verdict) => void>();
  // Listening for other replicas' answers starts with the first question asked here.
  let subscribed: Promise<(() => Promise<void>) | undefined> | undefined;
  const listen = (shared: QuestionStore) => {
    subscribed ??= shared
      .subscribe((message) => {
        let parsed: unknown;
        try {
          parsed = JSON.parse(message);
        } catch {
          return;
        }
        const [key, verdict] = Array.isArray(parsed) ? parsed : [];
        if (typeof key === 'string' && (verdict === 'yes' || verdict === 'no')) waiting.get(key)?.(verdict);
      })
      // A replica that cannot listen now still asks, takes the answers that reach it, and tries
      // again with its next question.
      .catch(() => {
        subscribed = undefined;
        return undefined;
      });
  };

  return {
    async open(id, asker, ttlMs) {
      if (waiting.size >= MAX_OPEN) throw new Error('too many open confirmations');
      const key = keyOf(id, asker);
      // (Not waiting for the subscription: with Redis down at start-up it would never come.)
      if (store !== undefined) {
        listen(store);
        await store.open(key, ttlMs);
      }
      let end: (verdict: Verdict) => void = () => undefined;
      const verdict = new Promise<Verdict>((resolve) => {
        const timer = setTimeout(() => end('expired'), ttlMs);
        end = (result) => {
          if (!waiting.delete(key)) return;
          clearTimeout(timer);
          resolve(result);
          // Unanswered: its shared key goes too, so a late answer on any replica finds nothing.
          if (store !== undefined && (result === 'expired' || result === 'gone'))
            store.take(key).catch(() => undefined);
        };
      });
      waiting.set(key, end);
      return { verdict, cancel: () => end('gone') };
    },
    async answer(id, asker, verdict) {
      const key = keyOf(id, asker);
      if (store === undefined) {
        const end = waiting.get(key);
        end?.(verdict);
        return end !== undefined;
      }
      // One DEL decides who took it, across replicas: a replayed answer finds nothing.
      if (!(await store.take(key))) return false;
      const end = waiting.get(key);
      if (end !== undefined) end(verdict);
      else await store.publish(JSON.stringify([key, verdict]));
      return true;
    },
    async close() {
      const stop = await subscribed;
      await stop?.();
    },
  };
}

/** The question's key: its id bound to who was asked (an answer from anyone else finds nothing). */
function keyOf(id: string, asker: Asker): string {
  return hash('sha256', JSON.stringify([id, asker.identity, asker.route, asker.session]));
}
