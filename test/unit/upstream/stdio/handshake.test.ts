import { afterEach, describe, expect, it, vi } from 'vitest';
import { LEGACY_VERSION, MODERN_VERSION } from '../../../../src/jsonrpc/protocol-version.js';
import {
  GATEWAY_CAPABILITIES,
  GATEWAY_CLIENT_INFO,
  modernMeta,
} from '../../../../src/upstream/gateway-client.js';
import { Connection } from '../../../../src/upstream/stdio/connection.js';
import { HandshakeError, handshake } from '../../../../src/upstream/stdio/handshake.js';

type Written = Record<string, unknown>;
/** What a child answers a request with: a result, an error, or nothing (silence). */
type Reply = { result: unknown } | { error: unknown } | undefined;

/** A connection whose "child" answers each request by method, a tick later, as a real one would. */
function child(replies: Record<string, Reply>) {
  const writes: Written[] = [];
  const connection: Connection = new Connection(
    {
      write: (message) => {
        const m = message as Written;
        writes.push(m);
        if (typeof m.method !== 'string' || m.id === undefined) return;
        const reply = replies[m.method];
        if (reply !== undefined)
          setImmediate(() => connection.receive({ jsonrpc: '2.0', id: m.id, ...reply }));
      },
      broadcast: () => undefined,
      dropped: () => undefined,
      pressure: () => undefined,
    },
    'latest',
  );
  return { connection, writes, methods: () => writes.map((w) => w.method) };
}

const discoverResult = (supportedVersions: unknown) => ({
  result: {
    supportedVersions,
    capabilities: { tools: { listChanged: true } },
    instructions: 'Use the echo tool.',
    _meta: { 'io.modelcontextprotocol/serverInfo': { name: 'modern-server', version: '3.0.0' } },
  },
});

const initializeResult = (protocolVersion: unknown) => ({
  result: {
    protocolVersion,
    capabilities: { prompts: {} },
    serverInfo: { name: 'legacy-server', version: '1.2.3' },
    instructions: 'Be nice.',
  },
});

const METHOD_NOT_FOUND = { error: { code: -32601, message: 'Method not found' } };

async function rejection(promise: Promise<unknown>): Promise<HandshakeError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof HandshakeError) return err;
    throw err;
  }
  throw new Error('the handshake succeeded');
}

afterEach(() => {
  vi.useRealTimers();
});

describe('handshake', () => {
  it('a DiscoverResult listing the gateway’s version: a modern process, no initialize', async () => {
    const { connection, writes, methods } = child({
      'server/discover': discoverResult(['2025-01-01', MODERN_VERSION]),
    });
    const facts = await handshake(connection, 2_000);
    expect(facts).toEqual({
      era: 'modern',
      version: MODERN_VERSION,
      capabilities: { tools: { listChanged: true } },
      serverInfo: { name: 'modern-server', version: '3.0.0' },
      instructions: 'Use the echo tool.',
    });
    expect(methods()).toEqual(['server/discover']);
    expect(writes[0]).toEqual({
      jsonrpc: '2.0',
      id: 1,
      method: 'server/discover',
      params: { _meta: modernMeta() },
    });
    expect(modernMeta()).toEqual({
      'io.modelcontextprotocol/protocolVersion': '2026-07-28',
      'io.modelcontextprotocol/clientInfo': GATEWAY_CLIENT_INFO,
      'io.modelcontextprotocol/clientCapabilities': GATEWAY_CAPABILITIES,
    });
  });

  it('a modern process without the gateway’s version is not used, and never falls back to initialize', async () => {
    const { connection, methods } = child({
      'server/discover': discoverResult(['2027-01-01']),
      initialize: initializeResult(LEGACY_VERSION),
    });
    const err = await rejection(handshake(connection, 2_000));
    expect(err.message).toContain('supports none');
    expect(err.timedOut).toBe(false);
    expect(methods()).toEqual(['server/discover']);
  });

  it('an unsupported-version error listing data.supported: HandshakeError, no initialize', async () => {
    const { connection, methods } = child({
      'server/discover': {
        error: { code: -32602, message: 'Unsupported protocol version', data: { supported: ['2027-01-01'] } },
      },
      initialize: initializeResult(LEGACY_VERSION),
    });
    const err = await rejection(handshake(connection, 2_000));
    expect(err.message).toBe('modern server refused the gateway protocol version');
    expect(err.timedOut).toBe(false);
    expect(methods()).toEqual(['server/discover']);
  });

  it('any other error: a legacy process, initialize then notifications/initialized', async () => {
    const { connection, writes, methods } = child({
      'server/discover': METHOD_NOT_FOUND,
      initialize: initializeResult('2025-06-18'),
    });
    const facts = await handshake(connection, 2_000);
    expect(facts).toEqual({
      era: 'legacy',
      version: '2025-06-18',
      capabilities: { prompts: {} },
      serverInfo: { name: 'legacy-server', version: '1.2.3' },
      instructions: 'Be nice.',
    });
    expect(methods()).toEqual(['server/discover', 'initialize', 'notifications/initialized']);
    expect(writes[1]).toEqual({
      jsonrpc: '2.0',
      id: 2,
      method: 'initialize',
      params: {
        protocolVersion: LEGACY_VERSION,
        capabilities: GATEWAY_CAPABILITIES,
        clientInfo: GATEWAY_CLIENT_INFO,
      },
    });
    expect(writes[2]).toEqual({ jsonrpc: '2.0', method: 'notifications/initialized' });
  });

  it('an error whose data.supported is not a list is just an error: legacy', async () => {
    const { connection, methods } = child({
      'server/discover': { error: { code: -32602, message: 'bad', data: { supported: '2027-01-01' } } },
      initialize: initializeResult(LEGACY_VERSION),
    });
    expect((await handshake(connection, 2_000)).era).toBe('legacy');
    expect(methods()).toEqual(['server/discover', 'initialize', 'notifications/initialized']);
  });

  it('silence: initialize is sent after half the start budget', async () => {
    vi.useFakeTimers();
    const { connection, methods } = child({ initialize: initializeResult(LEGACY_VERSION) });
    const facts = handshake(connection, 1_000);
    await vi.advanceTimersByTimeAsync(499);
    expect(methods()).toEqual(['server/discover']);
    await vi.advanceTimersByTimeAsync(1);
    expect(methods()).toEqual(['server/discover', 'initialize']);
    await vi.advanceTimersByTimeAsync(1);
    await expect(facts).resolves.toMatchObject({ era: 'legacy', version: LEGACY_VERSION });
    expect(methods()).toEqual(['server/discover', 'initialize', 'notifications/initialized']);
  });

  it('silence throughout: HandshakeError with timedOut once the whole budget is spent', async () => {
    vi.useFakeTimers();
    const { connection, methods } = child({});
    let settled: HandshakeError | undefined;
    void rejection(handshake(connection, 1_000)).then((err) => {
      settled = err;
    });
    await vi.advanceTimersByTimeAsync(999);
    expect(settled).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(settled?.timedOut).toBe(true);
    expect(settled?.message).toBe('no answer to the legacy handshake');
    expect(methods()).toEqual(['server/discover', 'initialize']);
  });

  it('a late legacy answer to discover only shortens what initialize has left of the budget', async () => {
    vi.useFakeTimers();
    // Discover answered with an error after 400 ms of a 1000 ms budget: initialize gets the 600 left.
    const writes: Written[] = [];
    const connection: Connection = new Connection(
      {
        write: (message) => {
          const m = message as Written;
          writes.push(m);
          if (m.method === 'server/discover')
            setTimeout(() => connection.receive({ jsonrpc: '2.0', id: m.id, ...METHOD_NOT_FOUND }), 400);
        },
        broadcast: () => undefined,
        dropped: () => undefined,
        pressure: () => undefined,
      },
      'latest',
    );
    let settled: HandshakeError | undefined;
    void rejection(handshake(connection, 1_000)).then((err) => {
      settled = err;
    });
    await vi.advanceTimersByTimeAsync(400);
    expect(writes.map((w) => w.method)).toEqual(['server/discover', 'initialize']);
    await vi.advanceTimersByTimeAsync(599);
    expect(settled).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(settled?.timedOut).toBe(true);
  });

  it('a legacy answer agreeing on an unknown version: HandshakeError, no initialized notification', async () => {
    for (const version of ['2026-07-28', '1999-01-01', 20250618, undefined]) {
      const { connection, methods } = child({
        'server/discover': METHOD_NOT_FOUND,
        initialize: initializeResult(version),
      });
      const err = await rejection(handshake(connection, 2_000));
      expect(err.message).toBe('the legacy handshake agreed on an unknown protocol version');
      expect(err.timedOut).toBe(false);
      expect(methods()).toEqual(['server/discover', 'initialize']);
    }
  });

  it('initialize answered with an error: HandshakeError, not a timeout', async () => {
    const { connection } = child({
      'server/discover': METHOD_NOT_FOUND,
      initialize: { error: { code: -32603, message: 'boom' } },
    });
    const err = await rejection(handshake(connection, 2_000));
    expect(err.message).toBe('the legacy handshake failed');
    expect(err.timedOut).toBe(false);
    expect(err.name).toBe('HandshakeError');
  });

  it('a process that exits during the handshake fails it (its own requests are answered with an error)', async () => {
    const { connection } = child({});
    const started = handshake(connection, 60_000);
    setImmediate(() => connection.close());
    const err = await rejection(started);
    expect(err.message).toBe('the legacy handshake failed');
    expect(err.timedOut).toBe(false);
  });

  it('keeps only object-shaped facts: odd capabilities, serverInfo and instructions become empty', async () => {
    const { connection } = child({
      'server/discover': METHOD_NOT_FOUND,
      initialize: {
        result: {
          protocolVersion: LEGACY_VERSION,
          capabilities: ['tools'],
          serverInfo: 'me',
          instructions: 7,
        },
      },
    });
    expect(await handshake(connection, 2_000)).toEqual({
      era: 'legacy',
      version: LEGACY_VERSION,
      capabilities: {},
      serverInfo: {},
      instructions: undefined,
    });
  });
});
