import { hash, randomBytes } from 'node:crypto';
import canonicalize from 'canonicalize';
import { ELICITATION_CREATE } from '../jsonrpc/methods.js';
import type { Sealer } from '../proxy/seal.js';

/**
 * Human confirmation of a `confirm: caller` tool call (DESIGN.md "human confirmation"): what the
 * caller is asked, and the sealed `requestState` that carries the question's bindings to the
 * retry. The caller must answer with an explicit `confirm: true`: a bare accept is not a yes.
 */

/**
 * The gateway's key in `inputRequests`/`inputResponses`: the reserved `io.portcullis/` prefix, so
 * it can never be an upstream's own (the gateway strips it before forwarding).
 */
export const CONFIRM_KEY = 'io.portcullis/confirm';

/** Keys whose values a confirmation shows masked: what looks like a secret is never displayed. */
const SECRET_KEY = /pass|secret|token|key|auth|credential|cookie|session|private/i;
/** The longest argument summary shown: a prompt is read by a person. */
const MAX_SUMMARY = 600;

/**
 * The arguments as one readable line: `path="/srv/a.txt", force=true, token=•••`, secret-looking
 * keys masked at any depth, cut at {@link MAX_SUMMARY} characters.
 */
export function argumentSummary(args: unknown): string {
  const show = (value: unknown, depth: number): string => {
    if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'undefined';
    if (depth > 4) return '…';
    if (Array.isArray(value)) return `[${value.map((v) => show(v, depth + 1)).join(', ')}]`;
    return `{${entries(value as Record<string, unknown>, depth + 1)}}`;
  };
  const entries = (object: Record<string, unknown>, depth: number): string =>
    Object.entries(object)
      .map(([key, value]) => `${key}=${SECRET_KEY.test(key) ? '•••' : show(value, depth)}`)
      .join(', ');
  const text =
    args !== null && typeof args === 'object' && !Array.isArray(args)
      ? entries(args as Record<string, unknown>, 1)
      : show(args, 1);
  const line = text === '' ? '(no arguments)' : text;
  return line.length > MAX_SUMMARY ? `${line.slice(0, MAX_SUMMARY)}…` : line;
}

/** The `elicitation/create` request (form mode) asking the caller to confirm `tool` with `args`. */
export function confirmationRequest(tool: string, args: unknown): Record<string, unknown> {
  return {
    method: ELICITATION_CREATE,
    params: {
      mode: 'form',
      message: `Confirm this call of ${tool}: ${argumentSummary(args)}`,
      requestedSchema: {
        type: 'object',
        properties: {
          confirm: {
            type: 'boolean',
            title: `Run ${tool}`,
            description: 'Set to true to let this call run with these arguments',
          },
        },
        required: ['confirm'],
      },
    },
  };
}

/** A caller's answer: yes only as an accepted form with `confirm: true`. */
export function answerOf(response: unknown): 'yes' | 'no' {
  if (response === null || typeof response !== 'object') return 'no';
  const { action, content } = response as { action?: unknown; content?: unknown };
  if (action !== 'accept' || content === null || typeof content !== 'object') return 'no';
  return (content as { confirm?: unknown }).confirm === true ? 'yes' : 'no';
}

/** What a confirmation is bound to: the retry must match every field. */
export interface Bindings {
  readonly identity: string;
  readonly route: string;
  readonly tool: string;
  /** SHA-256 of the arguments' canonical JSON (RFC 8785). */
  readonly argumentsHash: string;
  /** The hash of the tool's pinned definition when asked (null: not pinned): a changed pin is another call. */
  readonly pinHash: string | null;
}

/** A confirmation the gateway asked for, opened from its sealed `requestState`. */
export interface Asked extends Bindings {
  /** Single use: consumed atomically when the yes is taken. */
  readonly nonce: string;
  /** Epoch ms when it was asked, and after which it is no longer taken. */
  readonly askedAt: number;
  readonly expiresAt: number;
}

const PURPOSE = 'confirm';
const VERSION = 2;

export function argumentsHashOf(args: unknown): string {
  return hash('sha256', canonicalize(args ?? {}) ?? 'null');
}

/** A new question's `requestState`: the bindings, a fresh nonce and the expiry, sealed. */
export function sealAsked(
  sealer: Sealer,
  bindings: Bindings,
  now: number,
  ttlMs: number,
): { state: string; nonce: string } {
  const nonce = randomBytes(16).toString('base64url');
  const state = sealer.seal(PURPOSE, [
    VERSION,
    bindings.identity,
    bindings.route,
    bindings.tool,
    bindings.argumentsHash,
    bindings.pinHash,
    nonce,
    now,
    now + ttlMs,
  ]);
  return { state, nonce };
}

/** The confirmation a `requestState` carries, or undefined when it is not one the gateway sealed. */
export function openAsked(sealer: Sealer, state: unknown): Asked | undefined {
  if (typeof state !== 'string') return undefined;
  const fields = sealer.open(PURPOSE, state);
  if (fields === undefined || fields[0] !== VERSION || fields.length !== 9) return undefined;
  const [, identity, route, tool, argumentsHash, pinHash, nonce, askedAt, expiresAt] = fields;
  if (
    typeof identity !== 'string' ||
    typeof route !== 'string' ||
    typeof tool !== 'string' ||
    typeof argumentsHash !== 'string' ||
    (pinHash !== null && typeof pinHash !== 'string') ||
    typeof nonce !== 'string' ||
    typeof askedAt !== 'number' ||
    typeof expiresAt !== 'number'
  )
    return undefined;
  return { identity, route, tool, argumentsHash, pinHash, nonce, askedAt, expiresAt };
}

/** Whether `asked` was made for exactly this call (a mismatch is never forwarded). */
export function matches(asked: Bindings, call: Bindings): boolean {
  return (
    asked.identity === call.identity &&
    asked.route === call.route &&
    asked.tool === call.tool &&
    asked.argumentsHash === call.argumentsHash &&
    asked.pinHash === call.pinHash
  );
}

const CONTINUED = 'confirmed';

/**
 * A confirmed call's own multi round-trip: the upstream answered `input_required`, and its
 * `requestState` goes to the client sealed inside the gateway's, with the confirmation's bindings
 * and a fresh single-use nonce. The client's retry brings it back; the gateway restores the
 * upstream's state and forwards without asking again. The upstream never sees the gateway's state,
 * the client never sees the upstream's.
 */
export interface Continued extends Bindings {
  readonly upstreamState: string;
  readonly nonce: string;
  readonly expiresAt: number;
}

export function sealContinued(
  sealer: Sealer,
  bindings: Bindings,
  upstreamState: string,
  now: number,
  ttlMs: number,
): string {
  return sealer.seal(CONTINUED, [
    VERSION,
    bindings.identity,
    bindings.route,
    bindings.tool,
    bindings.argumentsHash,
    bindings.pinHash,
    upstreamState,
    randomBytes(16).toString('base64url'),
    now + ttlMs,
  ]);
}

export function openContinued(sealer: Sealer, state: unknown): Continued | undefined {
  if (typeof state !== 'string') return undefined;
  const fields = sealer.open(CONTINUED, state);
  if (fields === undefined || fields[0] !== VERSION || fields.length !== 9) return undefined;
  const [, identity, route, tool, argumentsHash, pinHash, upstreamState, nonce, expiresAt] = fields;
  if (
    typeof identity !== 'string' ||
    typeof route !== 'string' ||
    typeof tool !== 'string' ||
    typeof argumentsHash !== 'string' ||
    (pinHash !== null && typeof pinHash !== 'string') ||
    typeof upstreamState !== 'string' ||
    typeof nonce !== 'string' ||
    typeof expiresAt !== 'number'
  )
    return undefined;
  return { identity, route, tool, argumentsHash, pinHash, upstreamState, nonce, expiresAt };
}
