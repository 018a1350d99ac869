import { takesInputRequired } from '../jsonrpc/methods.js';

/**
 * The era table's multi round-trip (DESIGN.md "Upstreams", Eras: modern ↔ legacy): a 2025-era
 * server's request during a 2026-07-28 client's call becomes an `input_required` result, and the
 * client's retry carries the answer back. One place for what stdio processes and federated HTTP
 * servers share: how long a held request waits, what the server hears when no client can answer,
 * what a retry that cannot resume is told, and which capabilities a request lets the gateway use.
 */

type Message = Readonly<Record<string, unknown>>;

/** How long a held server request waits for the client's retry before its call is cancelled. */
export const INPUT_WAIT_MS = 120_000;

/** Answered on a client's behalf when a server request cannot reach any client. */
export const NO_CLIENT = { code: -32601, message: 'No client can answer this request through the gateway' };

/** A retry whose `requestState` cannot resume anything here: the client calls again without it. */
export const UNKNOWN_REQUEST_STATE = {
  code: -32602,
  message: 'requestState is unknown or expired, or the input it asked for is missing: call again without it',
  data: { reason: 'invalid_params' },
};

/**
 * What a 2026-07-28 client's request lets the gateway carry to it as `input_required`: the
 * capabilities it declared, when its method allows that result; undefined otherwise.
 */
export function inputCapabilities(message: Message): ReadonlySet<string> | undefined {
  if (typeof message.method !== 'string' || !takesInputRequired(message.method)) return undefined;
  const declared = declaredCapabilities(message.params as Record<string, unknown> | undefined);
  return declared === undefined ? undefined : new Set(Object.keys(declared));
}

/** The capabilities a 2026-07-28 request's `params._meta` declares, when it declares any. */
export function declaredCapabilities(
  params: Readonly<Record<string, unknown>> | undefined,
): Readonly<Record<string, unknown>> | undefined {
  const meta = params?._meta as Record<string, unknown> | undefined;
  const declared = meta?.['io.modelcontextprotocol/clientCapabilities'];
  return typeof declared === 'object' && declared !== null
    ? (declared as Record<string, unknown>)
    : undefined;
}

/** The `input_required` result carrying one server request under `key` (its id is the gateway's business). */
export function inputRequired(key: string, request: Message, requestState: string): Record<string, unknown> {
  const { jsonrpc: _, id: __, ...asked } = request;
  return { resultType: 'input_required', inputRequests: { [key]: asked }, requestState };
}
