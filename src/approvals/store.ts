import { randomBytes } from 'node:crypto';
import type { Bindings } from '../confirm/confirmation.js';
import type { Channel } from '../ratelimit/channel.js';

/**
 * Pending approvals of `confirm: approver` calls (DESIGN.md "human confirmation"): created when a
 * call needs an approver, decided once on the approval page, used once by the call's retry. With
 * Redis every replica shares them (any replica shows the page, takes the decision, forwards the
 * call); in process, one replica only. Each lives `approvals.ttlSec`, then is gone.
 */

/** Who asked: the identity, and the subject at the approvals' issuer when known (self-approval). */
export interface Requester {
  /** `Identity.key`. */
  readonly key: string;
  /** The JWT caller's issuer and subject; undefined for other callers (see `approvals.owners`). */
  readonly issuer?: string;
  readonly subject?: string;
}

/** A person who decided, as their login said. */
export interface Decider {
  readonly issuer: string;
  readonly subject: string;
  readonly name?: string;
}

/** What an approval is for: never changed once created. */
export interface ApprovalRequest {
  readonly id: string;
  readonly requester: Requester;
  /** The call it approves: the retry must match every field. */
  readonly bindings: Bindings;
  /**
   * The whole arguments as approvers see them: indented JSON, control and format characters
   * escaped (`\uXXXX`), nothing cut and nothing masked — an approver approves what they saw.
   */
  readonly arguments: string;
  /** The policy entry that asked for it (`tools.drop_table`). */
  readonly rule: string;
  /** A legacy session's call: the upstream session id its client is told in when it is decided. */
  readonly session?: string;
  readonly createdAt: number;
  readonly expiresAt: number;
}

export type ApprovalState = 'pending' | 'approved' | 'denied' | 'used';

export interface Approval extends ApprovalRequest {
  readonly state: ApprovalState;
  readonly decidedBy?: Decider;
  readonly decidedAt?: number;
}

export interface ApprovalStore {
  /** `local`: this process only; `redis`: every replica sharing it. */
  readonly kind: 'local' | 'redis';
  /** Stores a new pending approval; with `binding`, {@link find} finds it by that key until it expires. */
  create(request: ApprovalRequest, binding?: string): Promise<void>;
  /** The approval last created with `binding`, while it lives. */
  find(binding: string): Promise<Approval | undefined>;
  /** The approval, or undefined when unknown or expired. */
  get(id: string): Promise<Approval | undefined>;
  /** pending → approved or denied, once; the approval as decided, or undefined when it was not pending. */
  decide(id: string, state: 'approved' | 'denied', by: Decider, at: number): Promise<Approval | undefined>;
  /** approved → used: true for the one retry that takes it. */
  use(id: string): Promise<boolean>;
}

/** A new approval id: 128 random bits, URL-safe (it names the pages). */
export function newApprovalId(): string {
  return randomBytes(16).toString('base64url');
}

/** Whether `id` can name an approval (a page's path is checked before any lookup). */
export function isApprovalId(id: string): boolean {
  return /^[A-Za-z0-9_-]{22}$/.test(id);
}

/** The most approvals one process keeps: a full store refuses new ones, never forgets a live one. */
const MAX_LOCAL = 10_000;
/**
 * The most bytes of arguments one process keeps (each approval's up to 64 KiB): at 10 000 of the
 * largest that would be 640 MB. Past it a new approval is refused (503), never a live one forgotten.
 */
const MAX_LOCAL_BYTES = 64 * 1024 * 1024;

/** Approvals in this process (one replica): a map swept of expired entries as it fills. */
export function createLocalApprovalStore(
  now: () => number = Date.now,
  limits: { readonly count: number; readonly bytes: number } = { count: MAX_LOCAL, bytes: MAX_LOCAL_BYTES },
): ApprovalStore {
  const approvals = new Map<string, Approval>();
  const bound = new Map<string, string>();
  /** The arguments' characters held, against `limits.bytes` (a character counts as a byte: near enough). */
  let held = 0;
  const forget = (id: string, approval: Approval) => {
    approvals.delete(id);
    held -= approval.arguments.length;
  };
  const live = (id: string): Approval | undefined => {
    const found = approvals.get(id);
    if (found === undefined) return undefined;
    if (found.expiresAt > now()) return found;
    forget(id, found);
    return undefined;
  };
  const transition = (id: string, from: ApprovalState, to: Partial<Approval>): Approval | undefined => {
    const found = live(id);
    if (found?.state !== from) return undefined;
    const next = { ...found, ...to };
    approvals.set(id, next);
    return next;
  };
  return {
    kind: 'local',
    async create(request, binding) {
      const size = request.arguments.length;
      if (approvals.size >= limits.count || held + size > limits.bytes) {
        const at = now();
        for (const [id, approval] of approvals) if (approval.expiresAt <= at) forget(id, approval);
        for (const [key, id] of bound) if (!approvals.has(id)) bound.delete(key);
        if (approvals.size >= limits.count || held + size > limits.bytes)
          throw new Error('too many pending approvals');
      }
      approvals.set(request.id, { ...request, state: 'pending' });
      held += size;
      if (binding !== undefined) {
        // Bindings of approvals gone (expired, read once after) go too: the map stays bounded.
        if (bound.size >= limits.count)
          for (const [key, id] of bound) if (live(id) === undefined) bound.delete(key);
        bound.set(binding, request.id);
      }
    },
    async find(binding) {
      const id = bound.get(binding);
      return id === undefined ? undefined : live(id);
    },
    get: async (id) => live(id),
    decide: async (id, state, by, at) => transition(id, 'pending', { state, decidedBy: by, decidedAt: at }),
    use: async (id) => transition(id, 'approved', { state: 'used' }) !== undefined,
  };
}

/** What the Redis store needs: three commands and one script, each within the command timeout. */
export interface ApprovalRedis {
  /** `SET key value PX ttl` for each pair, together. */
  setAll(entries: readonly (readonly [string, string])[], ttlMs: number): Promise<void>;
  getAll(keys: readonly string[]): Promise<(string | null)[]>;
  /** Sets `stateKey` to `to` (and `extraKey` to `extra`) when it holds `from`, keeping their TTL: true when it did. */
  swap(stateKey: string, from: string, to: string, extraKey: string, extra: string): Promise<boolean>;
  /** Tells every replica that an approval was decided (a legacy session's client is told). */
  readonly decided: Channel;
}

/**
 * Approvals in Redis, three keys each under one hash tag (one Cluster slot): the request (JSON,
 * never changed), its state, and who decided. State changes go through one script that compares
 * and sets, so an approval is decided once and used once whichever replicas race for it.
 */
export function createRedisApprovalStore(redis: ApprovalRedis): ApprovalStore {
  const keys = (id: string) =>
    [
      `portcullis:approval:{${id}}:request`,
      `portcullis:approval:{${id}}:state`,
      `portcullis:approval:{${id}}:decision`,
    ] as const;
  return {
    kind: 'redis',
    async create(request, binding) {
      const [requestKey, stateKey, decisionKey] = keys(request.id);
      const ttlMs = Math.max(1, request.expiresAt - Date.now());
      await redis.setAll(
        [
          [requestKey, JSON.stringify(request)],
          [stateKey, 'pending'],
          [decisionKey, ''],
        ],
        ttlMs,
      );
      if (binding !== undefined)
        await redis.setAll([[`portcullis:approval:bound:${binding}`, request.id]], ttlMs);
    },
    async find(binding) {
      const [id] = await redis.getAll([`portcullis:approval:bound:${binding}`]);
      return typeof id === 'string' && isApprovalId(id) ? this.get(id) : undefined;
    },
    async get(id) {
      const [request, state, decision] = await redis.getAll(keys(id));
      if (request === null || request === undefined || !isState(state)) return undefined;
      const parsed = JSON.parse(request) as ApprovalRequest;
      const decided = decision ? (JSON.parse(decision) as { by: Decider; at: number }) : undefined;
      return decided === undefined
        ? { ...parsed, state }
        : { ...parsed, state, decidedBy: decided.by, decidedAt: decided.at };
    },
    async decide(id, state, by, at) {
      // Read first, then one compare-and-set: once it has swapped, nothing more can fail, so a
      // decision taken is always reported (and audited) as taken.
      const current = await this.get(id);
      if (current?.state !== 'pending') return undefined;
      const [, stateKey, decisionKey] = keys(id);
      const swapped = await redis.swap(stateKey, 'pending', state, decisionKey, JSON.stringify({ by, at }));
      return swapped ? { ...current, state, decidedBy: by, decidedAt: at } : undefined;
    },
    async use(id) {
      const [, stateKey, decisionKey] = keys(id);
      return redis.swap(stateKey, 'approved', 'used', decisionKey, '');
    },
  };
}

function isState(value: string | null | undefined): value is ApprovalState {
  return value === 'pending' || value === 'approved' || value === 'denied' || value === 'used';
}
