import type { IncomingHttpHeaders } from 'node:http';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION_META } from '../../../src/jsonrpc/protocol-version.js';
import { type McpRequest, parseMcpRequest } from '../../../src/jsonrpc/request.js';

const MODERN = '2026-07-28';

function call(name: string, version?: string): string {
  return JSON.stringify({
    jsonrpc: '2.0',
    id: 7,
    method: 'tools/call',
    params: {
      name,
      arguments: {},
      ...(version === undefined ? {} : { _meta: { [PROTOCOL_VERSION_META]: version } }),
    },
  });
}

function reasonOf(text: string, headers: IncomingHttpHeaders, sessionVersion?: string): string | undefined {
  const result = parseMcpRequest(text, headers, sessionVersion);
  return 'refusal' in result ? result.refusal.reason : undefined;
}

describe('parseMcpRequest: the MCP-Protocol-Version header', () => {
  it.each([
    ['empty', ''],
    ['two versions (a repeated header, joined)', '2025-06-18, 2026-07-28'],
    ['quoted', '"2025-06-18"'],
    ['longer than 32 characters', `2025-06-18${'x'.repeat(23)}`],
    ['non-ASCII digits', '２０２５-06-18'],
    ['surrounded by spaces', ' 2025-06-18'],
  ])('refuses a header that is %s as header_mismatch, answering the id', (_, value) => {
    const result = parseMcpRequest(call('echo'), { 'mcp-protocol-version': value });
    expect('refusal' in result && result.refusal).toMatchObject({ reason: 'header_mismatch', ids: [7] });
  });

  // An unknown version is the upstream's to refuse (with the versions it supports): the
  // conformance suite probes exactly this with `v999.0.0`.
  it.each(['v999.0.0', 'latest', '2025-06-18x'])(
    'reads the token %s as an unknown (modern) version, held to the modern checks',
    (value) => {
      const headers = { 'mcp-protocol-version': value, 'mcp-method': 'tools/call', 'mcp-name': 'echo' };
      expect((parseMcpRequest(call('echo', value), headers) as McpRequest).version).toBe(value);
      // Modern rules apply: the body must carry the same version.
      expect(reasonOf(call('echo'), headers)).toBe('invalid_params');
      expect(reasonOf(call('echo', MODERN), headers)).toBe('header_mismatch');
    },
  );

  it('refuses an empty header even when the body claims the modern protocol (no skipped check)', () => {
    expect(reasonOf(call('echo', MODERN), { 'mcp-protocol-version': '' })).toBe('header_mismatch');
  });

  it('accepts an absent header: the session version, else the spec default', () => {
    expect((parseMcpRequest(call('echo'), {}) as McpRequest).version).toBe('2025-03-26');
    expect((parseMcpRequest(call('echo'), {}, '2025-06-18') as McpRequest).version).toBe('2025-06-18');
  });

  it('refuses a body claiming another version than the legacy header says', () => {
    expect(reasonOf(call('echo', MODERN), { 'mcp-protocol-version': '2025-06-18' })).toBe('header_mismatch');
    expect(reasonOf(call('echo', MODERN), {}, '2025-06-18')).toBe('header_mismatch');
    expect(reasonOf(call('echo', MODERN), {})).toBe('header_mismatch');
  });
});

describe('parseMcpRequest: mirrored headers whatever the version', () => {
  const versions: readonly (string | undefined)[] = ['2025-03-26', '2025-06-18', '2025-11-25', undefined];

  it.each(versions.map((v) => [v ?? 'absent', v]))(
    'with MCP-Protocol-Version %s: refuses Mcp-Method or Mcp-Name that disagree with the body',
    (_, version) => {
      const base: IncomingHttpHeaders = version === undefined ? {} : { 'mcp-protocol-version': version };
      expect(reasonOf(call('echo'), { ...base, 'mcp-method': 'tools/list' })).toBe('header_mismatch');
      expect(reasonOf(call('echo'), { ...base, 'mcp-method': 'tools/call', 'mcp-name': 'admin_reset' })).toBe(
        'header_mismatch',
      );
      expect(reasonOf(call('echo'), { ...base, 'mcp-name': 'admin_reset' })).toBe('header_mismatch');
      // …and accepts them when they agree, or are absent (not required before 2026-07-28).
      expect(
        reasonOf(call('echo'), { ...base, 'mcp-method': 'tools/call', 'mcp-name': 'echo' }),
      ).toBeUndefined();
      expect(reasonOf(call('echo'), base)).toBeUndefined();
    },
  );

  it('refuses Mcp-Name on a method that mirrors no name, legacy or modern', () => {
    const list = (version?: string) =>
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'tools/list',
        ...(version === undefined ? {} : { params: { _meta: { [PROTOCOL_VERSION_META]: version } } }),
      });
    expect(reasonOf(list(), { 'mcp-protocol-version': '2025-06-18', 'mcp-name': 'x' })).toBe(
      'header_mismatch',
    );
    expect(
      reasonOf(list(MODERN), { 'mcp-protocol-version': MODERN, 'mcp-method': 'tools/list', 'mcp-name': 'x' }),
    ).toBe('header_mismatch');
  });

  it('checks Mcp-Name against params.taskId on the task methods (SEP-2663) when it is sent', () => {
    const get = JSON.stringify({
      jsonrpc: '2.0',
      id: 1,
      method: 'tasks/get',
      params: { taskId: 't-1', _meta: { [PROTOCOL_VERSION_META]: MODERN } },
    });
    const modern = { 'mcp-protocol-version': MODERN, 'mcp-method': 'tasks/get' };
    expect(reasonOf(get, { ...modern, 'mcp-name': 't-1' })).toBeUndefined();
    expect(reasonOf(get, { ...modern, 'mcp-name': 't-2' })).toBe('header_mismatch');
    expect(reasonOf(get, modern)).toBeUndefined();
  });

  it('refuses mirrored headers on a legacy JSON-RPC response, which names no method', () => {
    const answer = '{"jsonrpc":"2.0","id":"s1","result":{}}';
    expect(reasonOf(answer, { 'mcp-protocol-version': '2025-06-18' })).toBeUndefined();
    expect(reasonOf(answer, { 'mcp-protocol-version': '2025-06-18', 'mcp-method': 'tools/call' })).toBe(
      'header_mismatch',
    );
  });

  it('checks every message of a 2025-03-26 batch against a mirrored Mcp-Method', () => {
    const batch = JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'echo' } },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'admin_reset' } },
    ]);
    const headers = { 'mcp-protocol-version': '2025-03-26', 'mcp-method': 'tools/call' };
    expect(reasonOf(batch, headers)).toBeUndefined();
    expect(reasonOf(batch, { ...headers, 'mcp-name': 'echo' })).toBe('header_mismatch');
  });
});
