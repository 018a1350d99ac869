/**
 * The one catalogue of refusals (DESIGN.md, "Refusals"). Each entry owns its HTTP status, its
 * JSON-RPC code and the audit decision it produces, so a new refusal cannot be added without
 * deciding all three. README's error table is tested against this object.
 *
 * JSON-RPC codes: the gateway's own are -31091…-31099. JSON-RPC reserves -32768…-32000 and the
 * 2026-07-28 MCP specification reserves -32020…-32099 ("implementations MUST NOT emit any code
 * from this sub-range that is not defined by this specification"), so a code from those ranges
 * appears here only where its meaning is the standard one (-32700, -32600…-32603, -32020, -32021,
 * -32042, and -32001 for an unknown session, the SDKs' convention). Clients match `data.reason`.
 */
export type AuditDecision = 'deny' | 'rate-limited' | 'error';

export interface RefusalSpec {
  /** HTTP status of the answer. */
  readonly status: number;
  /** JSON-RPC error code; `null` where the answer is not JSON-RPC (no route). */
  readonly rpc: number | null;
  /** The audit decision recorded for this refusal. */
  readonly decision: AuditDecision;
  /** Fixed, short text: never echoes what the client sent. */
  readonly message: string;
  /** The code on the 2026-07-28 protocol when it differs (a missing client capability: -32021). */
  readonly modernRpc?: number;
}

export const REFUSALS = {
  not_found: { status: 404, rpc: null, decision: 'deny', message: 'Not found' },
  method_not_allowed: { status: 405, rpc: -32600, decision: 'deny', message: 'HTTP method not allowed' },
  unsupported_media_type: {
    status: 415,
    rpc: -32600,
    decision: 'deny',
    message: 'Content-Type must be application/json',
  },
  encoded_body: { status: 415, rpc: -32600, decision: 'deny', message: 'Content-Encoding is not accepted' },
  body_too_large: { status: 413, rpc: -32600, decision: 'deny', message: 'Request body too large' },
  bad_framing: {
    status: 400,
    rpc: -32600,
    decision: 'deny',
    message: 'Content-Length and Transfer-Encoding together',
  },
  credential_in_query: {
    status: 400,
    rpc: -32600,
    decision: 'deny',
    message: 'Credentials are not accepted in the query string',
  },
  bad_uri: { status: 400, rpc: -32600, decision: 'deny', message: 'Resource URI is not acceptable' },
  unsafe_number: {
    status: 400,
    rpc: -32600,
    decision: 'deny',
    message: 'A number in the body cannot be represented exactly',
  },
  too_deep: { status: 400, rpc: -32600, decision: 'deny', message: 'Request body nests too deeply' },
  parse_error: { status: 400, rpc: -32700, decision: 'deny', message: 'Parse error' },
  invalid_request: { status: 400, rpc: -32600, decision: 'deny', message: 'Invalid request' },
  header_mismatch: {
    status: 400,
    rpc: -32020,
    decision: 'deny',
    message: 'MCP headers do not match the request body',
  },
  invalid_params: { status: 400, rpc: -32602, decision: 'deny', message: 'Invalid params' },
  method_not_found: { status: 404, rpc: -32601, decision: 'deny', message: 'Method not found' },
  origin_not_allowed: { status: 403, rpc: -32600, decision: 'deny', message: 'Origin not allowed' },
  missing_credential: { status: 401, rpc: -31091, decision: 'deny', message: 'Authentication required' },
  invalid_credential: { status: 401, rpc: -31091, decision: 'deny', message: 'Invalid credential' },
  insufficient_scope: { status: 403, rpc: -31092, decision: 'deny', message: 'Insufficient scope' },
  method_denied: { status: 403, rpc: -31092, decision: 'deny', message: 'Method not permitted' },
  /** A tool call its scopes allow but whose `when` rule is false, or fails to evaluate (`data.rule`, `data.detail`). */
  argument_denied: { status: 403, rpc: -31092, decision: 'deny', message: 'Arguments not permitted' },
  /**
   * Arguments that break the pinned definition. A `prompts/get` (or a batch) is refused with this;
   * a lone `tools/call` is answered instead with a tool result with `isError: true`
   * (`integrity/pinned-upstream.ts`), as the specification asks for input validation errors — and
   * audited under this reason all the same.
   */
  invalid_arguments: { status: 400, rpc: -32602, decision: 'deny', message: 'Invalid params' },
  /** A tool or prompt whose definition differs from its pin, or that has none (`pins`, `onToolChange: block`). */
  tool_changed: {
    status: 403,
    rpc: -31092,
    decision: 'deny',
    message: 'Tool definition differs from its pin',
  },
  /** The authorization server refused to exchange the caller's token for the upstream (RFC 8693); `data.error` is its `error`. */
  exchange_refused: {
    status: 403,
    rpc: -31092,
    decision: 'deny',
    message: 'Token exchange refused by the authorization server',
  },
  /** The caller declined (or cancelled) confirming a `confirm` tool call, or accepted without `confirm: true`. */
  confirmation_declined: {
    status: 403,
    rpc: -31098,
    decision: 'deny',
    message: 'The call was not confirmed',
  },
  /** A confirmation that expired, was already used, or was made for another caller, call or arguments. */
  confirmation_expired: {
    status: 403,
    rpc: -31098,
    decision: 'deny',
    message: 'The confirmation expired or does not match this call',
  },
  /** The caller's client cannot be asked to confirm (no `elicitation` capability): never forwarded unconfirmed. */
  confirmation_unavailable: {
    status: 400,
    rpc: -31098,
    modernRpc: -32021,
    decision: 'deny',
    message: 'This call needs confirmation and the client cannot be asked',
  },
  session_not_found: { status: 404, rpc: -32001, decision: 'deny', message: 'Session not found' },
  rate_limited: { status: 429, rpc: -31093, decision: 'rate-limited', message: 'Rate limit exceeded' },
  too_many_failures: {
    status: 429,
    rpc: -31093,
    decision: 'rate-limited',
    message: 'Too many failed authentication attempts',
  },
  concurrency_limited: {
    status: 429,
    rpc: -31093,
    decision: 'rate-limited',
    message: 'Too many concurrent requests',
  },
  limiter_unavailable: { status: 503, rpc: -31094, decision: 'error', message: 'Rate limiter unavailable' },
  draining: { status: 503, rpc: -31094, decision: 'error', message: 'Gateway is shutting down' },
  /**
   * The issuer's JWKS could not be read (the token was never judged, so this is not a 401), or a
   * token endpoint did not answer usably for a token exchange.
   */
  idp_unavailable: {
    status: 503,
    rpc: -31094,
    decision: 'error',
    message: 'Identity provider unavailable',
  },
  /** A stdio server in a crash loop, between restarts (`Retry-After` says when the next may start). */
  upstream_unavailable: { status: 503, rpc: -31094, decision: 'error', message: 'Upstream unavailable' },
  upstream_unreachable: { status: 502, rpc: -31095, decision: 'error', message: 'Upstream unreachable' },
  upstream_rejected: {
    status: 502,
    rpc: -31095,
    decision: 'error',
    message: 'Upstream refused the gateway',
  },
  upstream_timeout: { status: 504, rpc: -31096, decision: 'error', message: 'Upstream timed out' },
  response_too_large: { status: 502, rpc: -31097, decision: 'error', message: 'Upstream response too large' },
  internal: { status: 500, rpc: -32603, decision: 'error', message: 'Internal error' },
} as const satisfies Record<string, RefusalSpec>;

export type RefusalReason = keyof typeof REFUSALS;

/** A JSON-RPC id as the client sent it; `null` when it cannot be known. */
export type RpcId = string | number | null;

/**
 * A decided refusal: a value passed back through the pipeline, never thrown. `headers` carries
 * what the refusal table lists under "also" (Allow, WWW-Authenticate, Retry-After, …).
 */
export interface Refusal {
  readonly kind: 'refusal';
  readonly reason: RefusalReason;
  /** Ids of the JSON-RPC requests refused (one error object each); empty → a single `null` id. */
  readonly ids: readonly RpcId[];
  readonly headers?: Readonly<Record<string, string>>;
  /** Extra `error.data` fields (e.g. `requiredScopes`). */
  readonly data?: Readonly<Record<string, unknown>>;
  /** The request was a batch: answer with an array of errors. */
  readonly batch?: boolean;
  /** Answered on the 2026-07-28 protocol: a reason's `modernRpc`, where it has one, is the code. */
  readonly modern?: boolean;
}

export function refuse(
  reason: RefusalReason,
  extra: {
    ids?: readonly RpcId[];
    headers?: Record<string, string>;
    data?: Record<string, unknown>;
    batch?: boolean;
    modern?: boolean;
  } = {},
): Refusal {
  return {
    kind: 'refusal',
    reason,
    ids: extra.ids ?? [],
    ...(extra.batch ? { batch: true } : {}),
    ...(extra.modern ? { modern: true } : {}),
    ...(extra.headers ? { headers: extra.headers } : {}),
    ...(extra.data ? { data: extra.data } : {}),
  };
}

export function isRefusal(value: unknown): value is Refusal {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'refusal';
}

/** The body of a refusal: a JSON-RPC error per id (an array for a batch), or plain JSON for 404. */
export function refusalBody(refusal: Refusal): string {
  const spec: RefusalSpec = REFUSALS[refusal.reason];
  if (spec.rpc === null) return JSON.stringify({ error: refusal.reason, message: spec.message });
  const ids = refusal.ids.length > 0 ? refusal.ids : [null];
  const errors = ids.map((id) => ({
    jsonrpc: '2.0',
    id,
    error: {
      code: (refusal.modern ? spec.modernRpc : undefined) ?? spec.rpc,
      message: spec.message,
      data: { ...refusal.data, reason: refusal.reason },
    },
  }));
  return JSON.stringify(refusal.batch ? errors : errors[0]);
}
