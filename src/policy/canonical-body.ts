import { mirroredNameOf } from '../jsonrpc/methods.js';
import type { ParsedBody, RpcMessage } from '../jsonrpc/parse.js';
import type { Decision } from './decide.js';

/**
 * The request with every resource URI the policy matched in its canonical form (`uri.ts`), in the
 * body forwarded and in the messages the audit reads — never the client's spelling, which the
 * upstream's URL parser could read as another resource than the one policy allowed. Returns
 * `request` itself when no URI changed (the common case: no parse, no allocation).
 */
export function withCanonicalUris<R extends { readonly body: ParsedBody }>(
  request: R,
  decisions: readonly Decision[],
): R {
  if (!decisions.some(hasRewrites)) return request;
  const { body } = request;
  // The forwarded text is already the parsed value re-serialized (strict, bounded): reading it
  // back yields the same value, which is then changed only at the recorded places.
  const value: unknown = JSON.parse(body.forward);
  const items: unknown[] = body.batch ? (value as unknown[]) : [value];
  if (items.length !== body.messages.length || decisions.length !== body.messages.length)
    throw new Error('forwarded body, messages and decisions disagree');
  const messages: RpcMessage[] = [...body.messages];
  decisions.forEach((decision, i) => {
    const message = messages[i] as RpcMessage;
    if (decision.rewrites === undefined || message.kind === 'response') return;
    const params = (items[i] as { params: Record<string, unknown> }).params;
    for (const { path, canonical } of decision.rewrites) setAt(params, path, canonical);
    messages[i] = { ...message, params };
  });
  return { ...request, body: { ...body, messages, forward: JSON.stringify(value) } };
}

/**
 * Keeps the modern `Mcp-Name` header equal to the body after a rewrite: when the field it mirrors
 * (a `resources/read` URI, per the method table) was rewritten, the header carries the canonical
 * form too — the upstream (the SDK does) refuses a header that disagrees with the body. Changes
 * `headers` only when the client sent the header and that field was rewritten.
 */
export function mirrorCanonicalName(
  headers: Record<string, string>,
  body: ParsedBody,
  decisions: readonly Decision[],
): void {
  const [message] = body.messages;
  if (body.batch || headers['mcp-name'] === undefined || message?.kind !== 'request') return;
  const mirrored = mirroredNameOf(message.method);
  if (mirrored === undefined) return;
  const rewrite = decisions[0]?.rewrites?.find(({ path }) => path.length === 1 && path[0] === mirrored.field);
  // A canonical URI is printable ASCII: a valid header value as it is.
  if (rewrite !== undefined) headers['mcp-name'] = rewrite.canonical;
}

function hasRewrites(decision: Decision): boolean {
  return decision.rewrites !== undefined;
}

/** Sets `value` at `path` under `params`; the path was read by the policy, so it exists. */
function setAt(params: Record<string, unknown>, path: readonly (string | number)[], value: string): void {
  let node: unknown = params;
  for (let k = 0; k < path.length - 1; k++)
    node = (node as Record<string | number, unknown>)[path[k] as string];
  if (typeof node !== 'object' || node === null) throw new Error('rewritten URI is not where policy read it');
  (node as Record<string | number, unknown>)[path[path.length - 1] as string] = value;
}
