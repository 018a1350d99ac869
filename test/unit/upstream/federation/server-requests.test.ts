import { describe, expect, it } from 'vitest';
import { createSealer } from '../../../../src/proxy/seal.js';
import {
  ANSWER_TTL_MS,
  AnsweredRequests,
  openRequestId,
  sealRequestId,
  sealServerRequests,
} from '../../../../src/upstream/federation/server-requests.js';

const sealer = createSealer(undefined);
const scope = { route: '/mcp', identity: 'apiKey:a', session: 'srv-session' };

describe('server request ids', () => {
  it('open for the same route, identity and server session, in time', () => {
    const id = sealRequestId(sealer, scope, { server: 'files', id: 7 }, 1_000);
    const sessionOf = (server: string) => (server === 'files' ? 'srv-session' : undefined);
    expect(openRequestId(sealer, scope, id, sessionOf, 2_000)).toEqual({
      server: 'files',
      id: 7,
      expires: 1_000 + ANSWER_TTL_MS,
    });
    expect(openRequestId(sealer, { ...scope, identity: 'apiKey:b' }, id, sessionOf, 2_000)).toBeUndefined();
    expect(openRequestId(sealer, { ...scope, route: '/x' }, id, sessionOf, 2_000)).toBeUndefined();
    expect(openRequestId(sealer, scope, id, () => 'another-session', 2_000)).toBeUndefined();
    expect(openRequestId(sealer, scope, id, sessionOf, 1_000 + ANSWER_TTL_MS + 1)).toBeUndefined();
    expect(openRequestId(sealer, scope, 7, sessionOf, 2_000)).toBeUndefined();
  });

  it('are sealed in every server request of an event, and nothing else; another request’s answer is foreign', () => {
    const seal = (id: string | number) => `g-${id}`;
    const call = { id: 3, progressToken: undefined };
    expect(
      sealServerRequests('{"jsonrpc":"2.0","id":3,"method":"elicitation/create","params":{}}', seal, call),
    ).toBe('{"jsonrpc":"2.0","id":"g-3","method":"elicitation/create","params":{}}');
    expect(
      sealServerRequests('{"jsonrpc":"2.0","method":"notifications/progress","params":{}}', seal, call),
    ).toBeUndefined();
    expect(sealServerRequests('{"jsonrpc":"2.0","id":3,"result":{}}', seal, call)).toBeUndefined();
    expect(sealServerRequests('not json', seal, call)).toBeUndefined();
    expect(sealServerRequests('{"jsonrpc":"2.0","id":4,"result":{}}', seal, call)).toBe('foreign');
    expect(sealServerRequests('{"jsonrpc":"2.0","id":3,"result":{}}', seal, null)).toBe('foreign');
    // A request the client could not answer back to this server (null or object id): not relayed.
    expect(sealServerRequests('{"jsonrpc":"2.0","id":null,"method":"roots/list"}', seal, call)).toBe(
      'foreign',
    );
    expect(sealServerRequests('{"jsonrpc":"2.0","id":{},"method":"roots/list"}', seal, null)).toBe('foreign');
    expect(sealServerRequests('[{"id":1,"method":"roots/list"},{"id":3,"result":{}}]', seal, call)).toBe(
      '[{"id":"g-1","method":"roots/list"},{"id":3,"result":{}}]',
    );
  });

  it('are answered once: a replayed answer is refused until it would have expired anyway', () => {
    const answered = new AnsweredRequests();
    expect(answered.first('g-1', 5_000, 1_000)).toBe(true);
    expect(answered.first('g-1', 5_000, 2_000)).toBe(false);
    expect(answered.first('g-2', 5_000, 2_000)).toBe(true);
    // Past its expiry an id no longer opens at all; the ledger forgets it on a later sweep.
    expect(answered.first('g-3', 100_000, 60_000)).toBe(true);
    expect(answered.first('g-1', 5_000 + 100_000, 61_000)).toBe(true);
  });
});
