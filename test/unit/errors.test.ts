import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isRefusal, REFUSALS, type RefusalReason, refusalBody, refuse } from '../../src/errors.js';

/**
 * DESIGN.md, "Refusals": reason → HTTP status and JSON-RPC code (`null`: not a JSON-RPC answer).
 * Copied from the table by hand, so a change to either side fails here.
 */
const DESIGN_TABLE: Readonly<Record<RefusalReason, { status: number; rpc: number | null }>> = {
  not_found: { status: 404, rpc: null },
  method_not_allowed: { status: 405, rpc: -32600 },
  unsupported_media_type: { status: 415, rpc: -32600 },
  encoded_body: { status: 415, rpc: -32600 },
  body_too_large: { status: 413, rpc: -32600 },
  bad_framing: { status: 400, rpc: -32600 },
  credential_in_query: { status: 400, rpc: -32600 },
  bad_uri: { status: 400, rpc: -32600 },
  unsafe_number: { status: 400, rpc: -32600 },
  too_deep: { status: 400, rpc: -32600 },
  parse_error: { status: 400, rpc: -32700 },
  invalid_request: { status: 400, rpc: -32600 },
  header_mismatch: { status: 400, rpc: -32020 },
  invalid_params: { status: 400, rpc: -32602 },
  method_not_found: { status: 404, rpc: -32601 },
  origin_not_allowed: { status: 403, rpc: -32600 },
  missing_credential: { status: 401, rpc: -31091 },
  invalid_credential: { status: 401, rpc: -31091 },
  insufficient_scope: { status: 403, rpc: -31092 },
  method_denied: { status: 403, rpc: -31092 },
  invalid_arguments: { status: 400, rpc: -32602 },
  argument_denied: { status: 403, rpc: -31092 },
  tool_changed: { status: 403, rpc: -31092 },
  exchange_refused: { status: 403, rpc: -31092 },
  confirmation_declined: { status: 403, rpc: -31098 },
  confirmation_expired: { status: 403, rpc: -31098 },
  confirmation_unavailable: { status: 400, rpc: -31098 },
  session_not_found: { status: 404, rpc: -32001 },
  idp_unavailable: { status: 503, rpc: -31094 },
  rate_limited: { status: 429, rpc: -31093 },
  too_many_failures: { status: 429, rpc: -31093 },
  concurrency_limited: { status: 429, rpc: -31093 },
  limiter_unavailable: { status: 503, rpc: -31094 },
  draining: { status: 503, rpc: -31094 },
  upstream_unavailable: { status: 503, rpc: -31094 },
  upstream_unreachable: { status: 502, rpc: -31095 },
  upstream_rejected: { status: 502, rpc: -31095 },
  upstream_timeout: { status: 504, rpc: -31096 },
  response_too_large: { status: 502, rpc: -31097 },
  internal: { status: 500, rpc: -32603 },
};

/**
 * Codes from the reserved ranges that DESIGN.md ("Refusals") reuses because the meaning is theirs:
 * JSON-RPC's own, MCP's header mismatch (-32020), missing client capability (-32021), URL
 * elicitation required (-32042), and the SDKs' session-not-found (-32001). Every other code the
 * gateway emits is its own, in -31091…-31099.
 */
const REUSED_CODES = new Set([-32700, -32600, -32601, -32602, -32603, -32020, -32021, -32042, -32001]);

/** JSON-RPC 2.0 reserves -32768…-32000 (the 2026-07-28 MCP specification claims -32020…-32099 of it). */
const JSON_RPC_RESERVED = { min: -32768, max: -32000 };
/** The gateway's own codes (DESIGN.md, "Refusals"). */
const GATEWAY_OWN = { min: -31099, max: -31091 };

const reasons = Object.keys(REFUSALS) as RefusalReason[];
const rpcReasons = reasons.filter((reason) => REFUSALS[reason].rpc !== null);

describe('REFUSALS', () => {
  it('holds exactly the reasons of the DESIGN.md refusal table', () => {
    expect(reasons.sort()).toEqual(Object.keys(DESIGN_TABLE).sort());
  });

  it.each(Object.entries(DESIGN_TABLE))(
    'answers %s with the status and code DESIGN.md lists',
    (reason, row) => {
      const spec = REFUSALS[reason as RefusalReason];
      expect({ status: spec.status, rpc: spec.rpc }).toEqual(row);
    },
  );

  it('emits no code from the reserved range -32768…-32000 other than those DESIGN.md reuses', () => {
    for (const reason of rpcReasons) {
      const code = REFUSALS[reason].rpc as number;
      const reserved = code >= JSON_RPC_RESERVED.min && code <= JSON_RPC_RESERVED.max;
      expect(!reserved || REUSED_CODES.has(code), `${reason}: ${code} is reserved`).toBe(true);
    }
  });

  it('emits the reserved codes it reuses, or its own -31091…-31099, nothing else', () => {
    for (const reason of rpcReasons) {
      const code = REFUSALS[reason].rpc as number;
      const own = code >= GATEWAY_OWN.min && code <= GATEWAY_OWN.max;
      expect(REUSED_CODES.has(code) || own, `${reason}: ${code}`).toBe(true);
    }
  });

  it('emits in refusal bodies only the codes the catalogue allows (as a client sees them)', () => {
    for (const reason of rpcReasons) {
      const body = JSON.parse(refusalBody(refuse(reason, { ids: [1, 2], batch: true }))) as {
        error: { code: number; data: { reason: string } };
      }[];
      for (const { error } of body) {
        const reserved = error.code >= JSON_RPC_RESERVED.min && error.code <= JSON_RPC_RESERVED.max;
        expect(!reserved || REUSED_CODES.has(error.code), `${reason}: ${error.code}`).toBe(true);
        expect(error.data.reason).toBe(reason);
      }
    }
  });

  it('records rate-limit refusals as rate-limited, gateway and upstream failures as error, the rest as deny', () => {
    for (const reason of reasons) {
      const { status, decision } = REFUSALS[reason];
      const expected = status === 429 ? 'rate-limited' : status >= 500 ? 'error' : 'deny';
      expect(decision, reason).toBe(expected);
    }
  });

  it('has a short fixed message for every reason', () => {
    for (const reason of reasons) {
      const { message } = REFUSALS[reason];
      expect(message.length, reason).toBeGreaterThan(0);
      expect(message.length, reason).toBeLessThan(80);
    }
  });
});

describe('refuse and isRefusal', () => {
  it('builds a refusal with no ids by default', () => {
    expect(refuse('parse_error')).toEqual({ kind: 'refusal', reason: 'parse_error', ids: [] });
  });

  it('carries ids, headers, data and the batch flag only when given', () => {
    const refusal = refuse('insufficient_scope', {
      ids: [1],
      headers: { 'www-authenticate': 'Bearer error="insufficient_scope"' },
      data: { requiredScopes: ['files:write'] },
      batch: true,
    });
    expect(refusal).toEqual({
      kind: 'refusal',
      reason: 'insufficient_scope',
      ids: [1],
      headers: { 'www-authenticate': 'Bearer error="insufficient_scope"' },
      data: { requiredScopes: ['files:write'] },
      batch: true,
    });
    expect(refuse('internal', { batch: false })).not.toHaveProperty('batch');
  });

  it('recognizes refusals and nothing else', () => {
    expect(isRefusal(refuse('internal'))).toBe(true);
    for (const value of [null, undefined, 'refusal', {}, { kind: 'pass' }, [], { messages: [] }]) {
      expect(isRefusal(value)).toBe(false);
    }
  });
});

describe('refusalBody', () => {
  it.each(rpcReasons)('answers %s as a JSON-RPC error with its code, message and data.reason', (reason) => {
    const body = JSON.parse(refusalBody(refuse(reason, { ids: ['a'] })));
    expect(body).toEqual({
      jsonrpc: '2.0',
      id: 'a',
      error: { code: REFUSALS[reason].rpc, message: REFUSALS[reason].message, data: { reason } },
    });
  });

  it('answers with a null id when no id is known', () => {
    expect(JSON.parse(refusalBody(refuse('parse_error')))).toEqual({
      jsonrpc: '2.0',
      id: null,
      error: { code: -32700, message: 'Parse error', data: { reason: 'parse_error' } },
    });
  });

  it('answers a batch with an array of errors, one per id, in order', () => {
    const body = JSON.parse(refusalBody(refuse('method_denied', { ids: [1, 'two', 3], batch: true })));
    expect(Array.isArray(body)).toBe(true);
    expect(body.map((e: { id: unknown }) => e.id)).toEqual([1, 'two', 3]);
    for (const error of body) {
      expect(error).toMatchObject({
        jsonrpc: '2.0',
        error: { code: -31092, data: { reason: 'method_denied' } },
      });
    }
  });

  it('answers a batch without known ids with an array holding one null-id error', () => {
    expect(JSON.parse(refusalBody(refuse('invalid_request', { batch: true })))).toEqual([
      {
        jsonrpc: '2.0',
        id: null,
        error: { code: -32600, message: 'Invalid request', data: { reason: 'invalid_request' } },
      },
    ]);
  });

  it('answers a message that was not a batch with one object', () => {
    const body = JSON.parse(refusalBody(refuse('rate_limited', { ids: [7] })));
    expect(Array.isArray(body)).toBe(false);
    expect(body.id).toBe(7);
  });

  it('adds extra data such as requiredScopes beside the reason', () => {
    const body = JSON.parse(
      refusalBody(refuse('insufficient_scope', { ids: [1], data: { requiredScopes: ['files:write'] } })),
    );
    expect(body.error.data).toEqual({ reason: 'insufficient_scope', requiredScopes: ['files:write'] });
  });

  it('answers not_found with plain JSON, not JSON-RPC', () => {
    const body = JSON.parse(refusalBody(refuse('not_found', { ids: [1] })));
    expect(body).toEqual({ error: 'not_found', message: 'Not found' });
    expect(body).not.toHaveProperty('jsonrpc');
  });

  it('answers one error per id, each with the fixed message, whatever the ids', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...rpcReasons),
        fc.array(fc.oneof(fc.string(), fc.integer()), { maxLength: 4 }),
        (reason, ids) => {
          const parsed = JSON.parse(refusalBody(refuse(reason, { ids, batch: true })));
          expect(parsed).toHaveLength(Math.max(ids.length, 1));
          for (const [i, error] of parsed.entries()) {
            expect(error.id).toEqual(ids.length === 0 ? null : ids[i]);
            expect(error.error.message).toBe(REFUSALS[reason].message);
          }
        },
      ),
    );
  });
});
