import type { Authorized } from '../exchange.js';
import { RESERVED_PREFIX } from './confirmation.js';

/**
 * The body with the gateway's own `inputResponses` key and its `requestState` taken out of the
 * confirmed call: what the client first sent, re-serialized.
 */
export function withoutConfirmation(
  body: Authorized['body'],
  index: number,
  upstreamState?: string,
): Authorized['body'] {
  const value = JSON.parse(body.forward) as Record<string, unknown>;
  const params = { ...(value.params as Record<string, unknown>) };
  // Every key under the gateway's reserved prefix is the gateway's: none goes upstream.
  const others = Object.fromEntries(
    Object.entries((params.inputResponses ?? {}) as Record<string, unknown>).filter(
      ([key]) => !key.startsWith(RESERVED_PREFIX),
    ),
  );
  // The upstream's own state goes back to it in place of the gateway's; else no state at all.
  if (upstreamState !== undefined) params.requestState = upstreamState;
  else delete params.requestState;
  if (Object.keys(others).length > 0) params.inputResponses = others;
  else delete params.inputResponses;
  const message = body.messages[index];
  if (message === undefined || message.kind !== 'request') return body;
  const messages = [...body.messages];
  messages[index] = { ...message, params };
  return { ...body, messages, forward: JSON.stringify({ ...value, params }) };
}
