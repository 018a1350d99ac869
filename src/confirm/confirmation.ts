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
export const RESERVED_PREFIX = 'io.portcullis/';
export const CONFIRM_KEY = `${RESERVED_PREFIX}confirm`;

/** Name words that mark a secret: a value under such a name is shown as `•••`. */
const SECRET_WORDS: ReadonlySet<string> = new Set([
  'password',
  'passwd',
  'pwd',
  'passphrase',
  'secret',
  'token',
  'credential',
  'credentials',
  'cookie',
  'authorization',
  'apikey',
  'privatekey',
  'accesskey',
]);
/** One value shown at most this long: the rest is said to be cut, never silently dropped. */
const MAX_VALUE = 160;
/** Every argument name is shown; a question longer than this is not asked (nothing hidden). */
const MAX_SUMMARY = 4_000;
/** Nesting shown; deeper values read `…`. */
const MAX_DEPTH = 4;

/**
 * Whether an argument name looks like a secret's: by whole words (`api_key`, `apiKey`,
 * `db-password`), not substrings — `primary_key`, `author` and `session_id` stay visible.
 */
function isSecretName(name: string): boolean {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
    .toLowerCase()
    .split(/[^a-z0-9]+/)
    .filter(Boolean);
  for (let i = 0; i < words.length; i++) {
    const word = words[i] as string;
    if (SECRET_WORDS.has(word) || SECRET_WORDS.has(`${word}${words[i + 1] ?? ''}`)) return true;
  }
  return false;
}

/**
 * Characters a person cannot see or that change what they see: controls, format characters
 * (bidi overrides, zero-width), line and paragraph separators, and every default-ignorable code
 * point (variation selectors, tag characters, fillers) — text can hide a payload in those and
 * still read "ok".
 */
const UNSEEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Default_Ignorable_Code_Point}]/gu;

/** `c` as an escape a person reads: `\u200b`, or `\u{e0100}` beyond the Basic Multilingual Plane. */
function escaped(c: string): string {
  const code = c.codePointAt(0) as number;
  return code > 0xffff ? `\\u{${code.toString(16)}}` : `\\u${code.toString(16).padStart(4, '0')}`;
}

/**
 * `value` as JSON a person can read safely: every character they could not see ({@link UNSEEN})
 * escaped — a terminal or a chat window shows them as what they are, never acts on them.
 */
export function shownText(value: unknown): string {
  return (JSON.stringify(value) ?? 'null').replace(UNSEEN, escaped);
}

/** The longest arguments an approver is shown whole; a call with longer ones is not asked. */
const MAX_SHOWN_ARGUMENTS = 65_536;

/**
 * The whole arguments as an approver reads them: indented JSON with every character they could
 * not see escaped ({@link shownText}; its own line breaks kept); undefined when longer than 64 KiB
 * (such a call is not asked: an approval of what nobody could read is no approval).
 */
export function shownArguments(args: unknown): string | undefined {
  const text = (JSON.stringify(args ?? {}, null, 2) ?? 'null').replace(UNSEEN, (c) =>
    c === '\n' ? c : escaped(c),
  );
  return text.length > MAX_SHOWN_ARGUMENTS ? undefined : text;
}

/**
 * The arguments as a person reads them: `"path"="/srv/a.txt", "force"=true, "token"=•••`. Every
 * top-level name is shown (quoted and escaped, so a name cannot pose as another argument); a long
 * value is cut with the count of what was cut; secret-looking names are masked at any depth.
 * Undefined when every name cannot be shown within {@link MAX_SUMMARY}: the caller is then not
 * asked at all — a question that hides part of the call is no confirmation.
 */
export function argumentSummary(args: unknown): string | undefined {
  const show = (value: unknown, depth: number): string => {
    if (value === null || typeof value !== 'object') return cut(shownText(value));
    if (depth > MAX_DEPTH) return '…';
    if (Array.isArray(value)) return cut(`[${value.map((v) => show(v, depth + 1)).join(', ')}]`);
    return cut(`{${entries(value as Record<string, unknown>, depth + 1)}}`);
  };
  const entries = (object: Record<string, unknown>, depth: number): string =>
    Object.entries(object)
      .map(([name, value]) => `${shownText(name)}=${isSecretName(name) ? '•••' : show(value, depth)}`)
      .join(', ');
  const cut = (text: string): string =>
    text.length > MAX_VALUE
      ? `${text.slice(0, MAX_VALUE)}…(${text.length - MAX_VALUE} more characters)`
      : text;
  if (args === undefined || args === null) return '(no arguments)';
  const text =
    typeof args === 'object' && !Array.isArray(args)
      ? entries(args as Record<string, unknown>, 1)
      : show(args, 1);
  if (text.length > MAX_SUMMARY) return undefined;
  return text === '' ? '(no arguments)' : text;
}

/**
 * The `elicitation/create` request (form mode) asking the caller to confirm `tool` with `args`;
 * undefined when the arguments cannot all be shown ({@link argumentSummary}).
 */
export function confirmationRequest(
  tool: string,
  args: unknown,
  /** Says `mode: form` (2026-07-28); a legacy session's question leaves it out (2025-06-18 has no modes). */
  withMode = true,
): Record<string, unknown> | undefined {
  const summary = argumentSummary(args);
  if (summary === undefined || tool.length > 128) return undefined;
  return {
    method: ELICITATION_CREATE,
    params: {
      ...(withMode ? { mode: 'form' } : {}),
      message: `Confirm this call of ${shownText(tool)}: ${summary}`,
      requestedSchema: {
        type: 'object',
        properties: {
          confirm: {
            type: 'boolean',
            title: `Run ${shownText(tool)}`,
            description: 'Set to true to let this call run with these arguments',
          },
        },
        required: ['confirm'],
      },
    },
  };
}

/**
 * Whether a client's declared `elicitation` capability takes a form: `{}` (form, as before modes
 * existed) or with `form` in it — not a client that declared URL mode only.
 */
export function takesForm(elicitation: unknown): boolean {
  if (typeof elicitation !== 'object' || elicitation === null || Array.isArray(elicitation)) return false;
  const modes = elicitation as Record<string, unknown>;
  return modes.form !== undefined || modes.url === undefined;
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
  /** Where its nonce is remembered ({@link UsedNonces.scope}): it opens nowhere else. */
  readonly store: string;
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
const VERSION = 3;

/**
 * What links the records of one confirmation (the question, the answer) without revealing the
 * secret it is derived from (a nonce, a question's id): 16 hex digits of its SHA-256.
 */
export function linkId(secret: string): string {
  return hash('sha256', secret).slice(0, 16);
}

export function argumentsHashOf(args: unknown): string {
  let canonical: string | undefined;
  try {
    canonical = canonicalize(args ?? {});
  } catch {
    // Not I-JSON (a lone surrogate in a string): no canonical form. Its serialization still binds
    // it — the same parsed arguments always hash alike, anything else is a mismatch (refused).
    return hash('sha256', `not-canonical:${JSON.stringify(args)}`);
  }
  return hash('sha256', canonical ?? 'null');
}

/** A new question's `requestState`: the bindings, a fresh nonce and the expiry, sealed. */
export function sealAsked(
  sealer: Sealer,
  bindings: Bindings,
  now: number,
  ttlMs: number,
): { state: string; nonce: string } {
  const nonce = randomBytes(16).toString('base64url');
  const state = sealer.seal(PURPOSE, [VERSION, ...bindingFields(bindings), nonce, now, now + ttlMs]);
  return { state, nonce };
}

/** The confirmation a `requestState` carries, or undefined when it is not one the gateway sealed. */
export function openAsked(sealer: Sealer, state: unknown): Asked | undefined {
  const opened = openBound(sealer, PURPOSE, state, 3);
  if (opened === undefined) return undefined;
  const [nonce, askedAt, expiresAt] = opened.rest;
  if (typeof nonce !== 'string' || typeof askedAt !== 'number' || typeof expiresAt !== 'number')
    return undefined;
  return { ...opened.bindings, nonce, askedAt, expiresAt };
}

/** The sealed fields of `bindings`, in the order {@link openBound} reads them. */
function bindingFields(bindings: Bindings): unknown[] {
  return [
    bindings.identity,
    bindings.route,
    bindings.tool,
    bindings.argumentsHash,
    bindings.pinHash,
    bindings.store,
  ];
}

/**
 * A state sealed for `purpose` as `[VERSION, ...bindingFields, ...rest]` with `rest` fields after
 * the bindings: the bindings and those fields, or undefined when it is not one the gateway sealed.
 */
function openBound(
  sealer: Sealer,
  purpose: string,
  state: unknown,
  rest: number,
): { bindings: Bindings; rest: unknown[] } | undefined {
  if (typeof state !== 'string') return undefined;
  const fields = sealer.open(purpose, state);
  if (fields === undefined || fields[0] !== VERSION || fields.length !== 7 + rest) return undefined;
  const [, identity, route, tool, argumentsHash, pinHash, store] = fields;
  if (
    typeof identity !== 'string' ||
    typeof route !== 'string' ||
    typeof tool !== 'string' ||
    typeof argumentsHash !== 'string' ||
    (pinHash !== null && typeof pinHash !== 'string') ||
    typeof store !== 'string'
  )
    return undefined;
  return { bindings: { identity, route, tool, argumentsHash, pinHash, store }, rest: fields.slice(7) };
}

/** Whether `asked` was made for exactly this call (a mismatch is never forwarded). */
export function matches(asked: Bindings, call: Bindings): boolean {
  return (
    asked.identity === call.identity &&
    asked.route === call.route &&
    asked.tool === call.tool &&
    asked.argumentsHash === call.argumentsHash &&
    asked.pinHash === call.pinHash &&
    asked.store === call.store
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
    ...bindingFields(bindings),
    upstreamState,
    randomBytes(16).toString('base64url'),
    now + ttlMs,
  ]);
}

export function openContinued(sealer: Sealer, state: unknown): Continued | undefined {
  const opened = openBound(sealer, CONTINUED, state, 3);
  if (opened === undefined) return undefined;
  const [upstreamState, nonce, expiresAt] = opened.rest;
  if (typeof upstreamState !== 'string' || typeof nonce !== 'string' || typeof expiresAt !== 'number')
    return undefined;
  return { ...opened.bindings, upstreamState, nonce, expiresAt };
}

const AWAITING = 'approval';

/**
 * A call waiting for an approver (`confirm: approver`, 2026-07-28): its `requestState` names the
 * pending approval, bound like a question. The client's retries bring it back until the approval
 * is decided; the approval itself, in the store, says whether and once.
 */
export interface Awaiting extends Bindings {
  readonly approval: string;
  readonly expiresAt: number;
}

export function sealAwaiting(
  sealer: Sealer,
  bindings: Bindings,
  approval: string,
  expiresAt: number,
): string {
  return sealer.seal(AWAITING, [VERSION, ...bindingFields(bindings), approval, expiresAt]);
}

export function openAwaiting(sealer: Sealer, state: unknown): Awaiting | undefined {
  const opened = openBound(sealer, AWAITING, state, 2);
  if (opened === undefined) return undefined;
  const [approval, expiresAt] = opened.rest;
  if (typeof approval !== 'string' || typeof expiresAt !== 'number') return undefined;
  return { ...opened.bindings, approval, expiresAt };
}

/** Whether a client's declared `elicitation` capability takes a URL (`url` mode, 2025-11-25 on). */
export function takesUrl(elicitation: unknown): boolean {
  if (typeof elicitation !== 'object' || elicitation === null || Array.isArray(elicitation)) return false;
  return (elicitation as Record<string, unknown>).url !== undefined;
}
