import type { ServerResponse } from 'node:http';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../../src/metrics/registry.js';
import { createContainment } from '../../../src/server/contain.js';

/** A response that only records whether it was destroyed. */
function fakeResponse(): ServerResponse & { destroyedBy: number } {
  const res = { destroyedBy: 0, destroy: () => res.destroyedBy++ };
  return res as unknown as ServerResponse & { destroyedBy: number };
}

describe('createContainment', () => {
  it('runs the handler with its arguments and leaves the exchange alone when it returns', () => {
    const metrics = createMetrics('test');
    const contain = createContainment(pino({ level: 'silent' }), metrics);
    const res = fakeResponse();
    const seen: unknown[] = [];
    contain.wrap('close', { requestId: 'r', res }, (a: number, b: string) => seen.push(a, b))(1, 'x');
    expect(seen).toEqual([1, 'x']);
    expect(res.destroyedBy).toBe(0);
  });

  it('turns a throw into a logged, counted end of that exchange only', async () => {
    const metrics = createMetrics('test');
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const contain = createContainment(logger, metrics);
    const res = fakeResponse();
    const other = fakeResponse();
    const handler = contain.wrap('timer', { requestId: 'r-1', res }, () => {
      throw new RangeError('Maximum call stack size exceeded');
    });
    expect(() => handler()).not.toThrow();
    expect(res.destroyedBy).toBe(1);
    expect(other.destroyedBy).toBe(0);
    const counted = await metrics.internalErrors.get();
    expect(counted.values.find((v) => v.labels.where === 'timer')?.value).toBe(1);
    const logged = JSON.parse(lines[0] ?? '{}') as {
      requestId: string;
      where: string;
      err: { stack: string };
    };
    expect(logged).toMatchObject({ requestId: 'r-1', where: 'timer' });
    expect(logged.err.stack).toContain('RangeError');
  });
});
