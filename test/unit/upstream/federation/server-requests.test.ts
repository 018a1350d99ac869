import { describe, expect, it } from 'vitest';
import { createSealer } from '../../../../src/proxy/seal.js';
import {
  ANSWER_TTL_MS,
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
    expect(openRequestId(sealer, scope, id, sessionOf, 2_000)).toEqual({ server: 'files', id: 7 });
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
    expect(sealServerRequests('[{"id":1,"method":"roots/list"},{"id":3,"result":{}}]', seal, call)).toBe(
      '[{"id":"g-1","method":"roots/list"},{"id":3,"result":{}}]',
    );
  });
});
