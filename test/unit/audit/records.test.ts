/**
 * The audit recorder (src/audit/records.ts) writes one audit record per message whatever the
 * client sent: arguments nested far beyond any bound, in every `audit.arguments` mode, still give
 * a record that serializes and chains — and a view that fails (a bug) costs the record its
 * arguments, never the record itself. Real audit stream to a real file; the chain is verified.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type ArgumentsMode, createArgumentsView, TOO_DEEP } from '../../../src/audit/arguments.js';
import { verifyText } from '../../../src/audit/chain.js';
import { ARGUMENTS_UNAVAILABLE, createAuditRecorder } from '../../../src/audit/records.js';
import { createAuditStream } from '../../../src/audit/stream.js';
import type { Identity } from '../../../src/auth/identity.js';
import type { FinishedExchange } from '../../../src/exchange.js';

const KEY = 'outcome-test-chain-key-000000001';
const DEPTH = 200_000;

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-outcome-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** `depth` nested arrays around a secret, built without recursion. */
function deepArguments(): Record<string, unknown> {
  let value: unknown = { password: 'deep-secret' };
  for (let i = 0; i < DEPTH; i++) value = [value];
  return { path: '/etc/shadow', deep: value };
}

const caller = {
  key: 'apiKey:reader',
  subject: 'reader',
  methods: ['apiKey'],
  scopes: [],
} as unknown as Identity;

function deniedCall(args: unknown): FinishedExchange {
  return {
    requestId: 'req-1',
    startedAt: performance.now(),
    durationMs: 1,
    clientAddress: '127.0.0.1',
    httpMethod: 'POST',
    route: { path: '/mcp' },
    identity: caller,
    authFailure: undefined,
    sessionId: undefined,
    body: {
      batch: false,
      forward: '',
      messages: [{ kind: 'request', id: 7, method: 'tools/call', params: { name: 'add', arguments: args } }],
    },
    decisions: [
      { effect: 'deny', rule: 'tools.add', required: ['w'], missing: ['w'], reason: 'insufficient_scope' },
    ],
    status: 403,
    upstreamStatus: undefined,
    decision: 'deny',
    reason: 'insufficient_scope',
    refusalRule: undefined,
    confirmation: undefined,
    answers: undefined,
    sse: false,
    span: undefined,
    failedOpen: false,
    upstreamError: undefined,
    upstreamMs: undefined,
    servers: undefined,
    pinned: undefined,
    invalidResults: undefined,
    cut: undefined,
  };
}

async function record(view: (args: unknown) => unknown, args: unknown): Promise<Record<string, unknown>> {
  const file = join(dir, 'audit.jsonl');
  const logger = pino({ level: 'silent' });
  const audit = createAuditStream({ destination: file, chainKey: KEY, logger });
  const recordAudit = createAuditRecorder({
    audit,
    argumentsView: view,
    logger,
    onViewError: () => undefined,
  });
  recordAudit?.(deniedCall(args));
  await audit.close();
  const text = readFileSync(file, 'utf8');
  const verified = verifyText(text, KEY);
  expect(verified.broken).toBeUndefined();
  expect(verified.records).toBe(1);
  const written = text.split('\n').filter(Boolean);
  expect(written).toHaveLength(1);
  return JSON.parse(written[0] as string) as Record<string, unknown>;
}

describe('a denied call with arguments nested 200 000 deep', () => {
  it.each(['redact', 'full', 'hash', 'omit'] as ArgumentsMode[])(
    'leaves its chained record under audit.arguments: %s',
    async (mode) => {
      const view = createArgumentsView(mode, { redactKeys: ['password'], key: KEY });
      const written = await record(view, deepArguments());
      expect(written).toMatchObject({
        tool: 'add',
        decision: 'deny',
        reason: 'insufficient_scope',
        status: 403,
      });
      const args = JSON.stringify(written.arguments);
      if (mode === 'omit') expect(written.arguments).toBeUndefined();
      else if (mode === 'hash')
        expect(written.arguments).toMatchObject({ deep: expect.stringMatching(/^hmac-sha256:/) });
      else expect(args).toContain(TOO_DEEP);
      expect(args ?? '').not.toContain('deep-secret');
    },
  );
});

describe('a view that throws (a bug)', () => {
  it('costs the record its arguments, not the record', async () => {
    const written = await record(
      () => {
        throw new RangeError('Maximum call stack size exceeded');
      },
      { a: 1 },
    );
    expect(written).toMatchObject({ tool: 'add', decision: 'deny', arguments: ARGUMENTS_UNAVAILABLE });
  });
});

describe('audit.destination: none', () => {
  it('gives no recorder at all: the finish step builds no record', () => {
    const logger = pino({ level: 'silent' });
    const audit = createAuditStream({ destination: 'none', logger });
    expect(
      createAuditRecorder({ audit, argumentsView: (a) => a, logger, onViewError: () => undefined }),
    ).toBeUndefined();
  });
});
