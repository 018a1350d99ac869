import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { stdioUpstreamSchema } from '../../../../src/config/schema.js';
import { isRefusal, type Refusal } from '../../../../src/errors.js';
import { ProcessPool, type Ready } from '../../../../src/upstream/stdio/pool.js';
import type { Listener } from '../../../../src/upstream/stdio/process.js';

/**
 * A legacy stdio server in a few lines: answers `initialize` (after `SERVER_DELAY_MS`, when set)
 * and refuses everything else it is asked, `server/discover` included.
 */
const SERVER = `const delay = Number(process.env.SERVER_DELAY_MS ?? 0);
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  let n;
  while ((n = buf.indexOf('\\n')) !== -1) {
    const m = JSON.parse(buf.slice(0, n));
    buf = buf.slice(n + 1);
    if (m.id === undefined) continue;
    const answer = m.method === 'initialize'
      ? { jsonrpc: '2.0', id: m.id, result: { protocolVersion: m.params.protocolVersion, capabilities: {}, serverInfo: { name: 'tiny', version: '1' } } }
      : { jsonrpc: '2.0', id: m.id, error: { code: -32601, message: 'Method not found' } };
    setTimeout(() => process.stdout.write(JSON.stringify(answer) + '\\n'), m.method === 'initialize' ? delay : 0);
  }
});
process.stdin.on('end', () => process.exit(0));`;

const pools: ProcessPool[] = [];

function pool(
  over: Record<string, unknown> = {},
  command: string[] = [process.execPath, '-e', SERVER],
): ProcessPool {
  const created = new ProcessPool({
    route: '/mcp',
    spec: stdioUpstreamSchema.parse({ command, ...over }),
    account: { uid: undefined, gid: undefined },
    maxLineBytes: 1 << 20,
    maxJsonDepth: 64,
    logger: pino({ level: 'silent' }),
    metrics: undefined,
  });
  pools.push(created);
  return created;
}

function ready(value: Ready | Refusal): Ready {
  if (isRefusal(value)) throw new Error(`expected a process, got ${value.reason}`);
  return value;
}

function refusal(value: Ready | Refusal): Refusal {
  if (!isRefusal(value)) throw new Error('expected a refusal, got a process');
  return value;
}

/** Keeps a process from being idle, as an open GET stream does. */
function holdOpen(ready: Ready): Listener {
  const listener: Listener = { session: 'test', push: () => undefined, end: () => undefined };
  ready.process.listeners.add(listener);
  return listener;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

describe('ProcessPool', () => {
  it('starts one process per key on first need and hands it out again after', async () => {
    const p = pool();
    const a = ready(await p.acquire('alice'));
    expect(a.facts).toEqual({
      era: 'legacy',
      version: '2025-11-25',
      capabilities: {},
      serverInfo: { name: 'tiny', version: '1' },
      instructions: undefined,
    });
    expect(a.process.key).toBe('alice');
    expect(ready(await p.acquire('alice')).process).toBe(a.process);
    const b = ready(await p.acquire('bob'));
    expect(b.process).not.toBe(a.process);
    expect(b.process.pid).not.toBe(a.process.pid);
    expect(p.size).toBe(2);
    expect(p.running('alice')).toBe(a.process);
    expect(p.running('carol')).toBeUndefined();
  });

  it('at maxProcesses stops the least recently used idle process for a new key', async () => {
    const p = pool({ maxProcesses: 2 });
    const a = ready(await p.acquire('a'));
    const b = ready(await p.acquire('b'));
    p.settled(a.process);
    await sleep(5);
    p.settled(b.process);
    const c = ready(await p.acquire('c'));
    expect(p.size).toBe(2);
    expect(a.process.usable).toBe(false);
    expect(p.running('a')).toBeUndefined();
    expect(p.running('b')).toBe(b.process);
    expect(p.running('c')).toBe(c.process);
  });

  it('counts least recently used from when a process was last settled, not when it started', async () => {
    const p = pool({ maxProcesses: 2 });
    const a = ready(await p.acquire('a'));
    const b = ready(await p.acquire('b'));
    p.settled(b.process);
    await sleep(5);
    p.settled(a.process);
    ready(await p.acquire('c'));
    expect(p.running('a')).toBe(a.process);
    expect(b.process.usable).toBe(false);
  });

  it('never evicts a busy process: with none idle a new key gets 429 concurrency_limited', async () => {
    const p = pool({ maxProcesses: 2 });
    const a = ready(await p.acquire('a'));
    const b = ready(await p.acquire('b'));
    holdOpen(a);
    const listener = holdOpen(b);
    const full = refusal(await p.acquire('c'));
    expect(full.reason).toBe('concurrency_limited');
    expect(full.headers).toEqual({ 'retry-after': '1' });
    expect(p.size).toBe(2);
    expect(a.process.usable).toBe(true);
    expect(b.process.usable).toBe(true);
    // Once b is idle again it is the one to go.
    b.process.listeners.delete(listener);
    ready(await p.acquire('c'));
    expect(b.process.usable).toBe(false);
    expect(a.process.usable).toBe(true);
  });

  it('never evicts a process still starting', async () => {
    const p = pool({ maxProcesses: 1, env: { SERVER_DELAY_MS: '400' } });
    const starting = p.acquire('a');
    await sleep(50);
    expect(refusal(await p.acquire('b')).reason).toBe('concurrency_limited');
    const a = ready(await starting);
    expect(a.process.usable).toBe(true);
  });

  it('answers upstream_timeout when the process never completes its handshake in startTimeoutMs', async () => {
    const p = pool({ startTimeoutMs: 300, env: { SERVER_DELAY_MS: '5000' } });
    const began = Date.now();
    const answer = refusal(await p.acquire('a'));
    expect(answer.reason).toBe('upstream_timeout');
    expect(Date.now() - began).toBeGreaterThanOrEqual(290);
    expect(p.running('a')).toBeUndefined();
  });

  it('stops a process idle for idleTimeoutSec, and not one in use', async () => {
    const p = pool({ idleTimeoutSec: 1 });
    const a = ready(await p.acquire('a'));
    const b = ready(await p.acquire('b'));
    holdOpen(b);
    p.settled(a.process);
    p.settled(b.process);
    await sleep(1_300);
    expect(a.process.usable).toBe(false);
    expect(p.running('a')).toBeUndefined();
    expect(p.running('b')).toBe(b.process);
    expect(p.size).toBe(1);
  });

  it('a process used again before its idle timeout fires is kept', async () => {
    const p = pool({ idleTimeoutSec: 1 });
    const a = ready(await p.acquire('a'));
    p.settled(a.process);
    await sleep(600);
    ready(await p.acquire('a'));
    holdOpen(a);
    await sleep(700);
    expect(p.running('a')).toBe(a.process);
  });

  it('after close: every process stopped, and new calls refused as draining', async () => {
    const p = pool();
    const a = ready(await p.acquire('a'));
    const b = ready(await p.acquire('b'));
    await p.close();
    expect(a.process.usable).toBe(false);
    expect(b.process.usable).toBe(false);
    expect(p.size).toBe(0);
    const late = refusal(await p.acquire('a'));
    expect(late.reason).toBe('draining');
    expect(late.headers).toEqual({ 'retry-after': '1' });
  });

  it('restarts a process that crashed at once the first time', async () => {
    const p = pool();
    const a = ready(await p.acquire('a'));
    const pid = a.process.pid as number;
    process.kill(pid, 'SIGKILL');
    for (let i = 0; i < 100 && a.process.usable; i++) await sleep(10);
    expect(a.process.usable).toBe(false);
    const again = ready(await p.acquire('a'));
    expect(again.process).not.toBe(a.process);
  });

  it('in a crash loop: the first restart at once, then backoffMs doubling, then maxBackoffMs for as long as it lasts', async () => {
    const p = pool({ restart: { backoffMs: 100, maxBackoffMs: 400 } }, [
      process.execPath,
      '-e',
      'process.exit(3)',
    ]);
    const crash = async () => expect(refusal(await p.acquire('k')).reason).toBe('upstream_unreachable');
    const waiting = async () => {
      const answer = refusal(await p.acquire('k'));
      expect(answer.reason).toBe('upstream_unavailable');
      expect(answer.headers).toEqual({ 'retry-after': '1' });
    };
    await crash(); // 1st crash: the next start is immediate
    await crash(); // 2nd: 100 ms
    await waiting();
    await sleep(130);
    await crash(); // 3rd: 200 ms
    await waiting();
    await sleep(230);
    await crash(); // 4th: 400 ms
    await waiting();
    await sleep(430);
    await crash(); // 5th: still 400 ms — the loop goes on
    await waiting();
  });
});
