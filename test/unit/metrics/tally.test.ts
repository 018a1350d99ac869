/**
 * The hot-path counter: what a scrape reads is exactly what prom-client's own counter would have
 * counted — per series, across scrapes, after a reset — and a wrong label still throws at `inc`.
 */
import { Counter, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { talliedCounter } from '../../../src/metrics/tally.js';

function pair() {
  const registry = new Registry();
  const config = { help: 'h', labelNames: ['route', 'status'] as const, registers: [registry] };
  return {
    registry,
    tallied: talliedCounter({ ...config, name: 'tallied_total' }),
    plain: new Counter({ ...config, name: 'plain_total' }),
  };
}

/** A metric's series as `labels → value`, read as a scrape reads them. */
async function series(counter: Counter<string>): Promise<Record<string, number>> {
  const { values } = await counter.get();
  return Object.fromEntries(values.map((v) => [JSON.stringify(v.labels), v.value]));
}

describe('talliedCounter', () => {
  it('reads exactly what a plain prom-client counter counts, scrape after scrape', async () => {
    const { tallied, plain } = pair();
    const incs: [Record<string, string | number>, number | undefined][] = [
      [{ route: '/mcp', status: 200 }, undefined],
      [{ route: '/mcp', status: 200 }, undefined],
      [{ route: '/mcp', status: 403 }, 2],
      [{ route: '/other', status: 200 }, 0.5],
    ];
    for (const [labels, value] of incs) {
      tallied.inc(labels, value);
      plain.inc(labels, value);
    }
    expect(await series(tallied)).toEqual(await series(plain));
    tallied.inc({ route: '/mcp', status: 200 });
    plain.inc({ route: '/mcp', status: 200 });
    expect(await series(tallied)).toEqual(await series(plain));
    expect((await series(tallied))['{"route":"/mcp","status":200}']).toBe(3);
  });

  it('appears in the registry text', async () => {
    const { registry, tallied } = pair();
    tallied.inc({ route: '/mcp', status: 200 });
    tallied.inc({ route: '/mcp', status: 200 });
    expect(await registry.metrics()).toContain('tallied_total{route="/mcp",status="200"} 2');
  });

  it('never merges two series, whatever their values hold', async () => {
    const { tallied, plain } = pair();
    for (const labels of [
      { route: 'a\u0000b', status: 'c' },
      { route: 'a', status: 'b\u0000c' },
      { route: 'a', status: 'b\u0000c' },
      { route: 'a', status: 200 },
      { route: 'a', status: '200' },
    ]) {
      tallied.inc(labels);
      plain.inc(labels);
    }
    expect(await series(tallied)).toEqual(await series(plain));
    // 200 and "200" are one series to prom-client, counted from two entries here.
    expect(Object.keys(await series(tallied))).toHaveLength(3);
  });

  it('forgets what it held on reset', async () => {
    const { tallied } = pair();
    tallied.inc({ route: '/mcp', status: 200 }, 5);
    tallied.reset();
    tallied.inc({ route: '/mcp', status: 200 });
    expect(await series(tallied)).toEqual({ '{"route":"/mcp","status":200}': 1 });
  });

  it('throws at inc for a label it does not have, and for a negative value', () => {
    const { tallied } = pair();
    expect(() => tallied.inc({ route: '/mcp', nope: 'x' } as never)).toThrow(/label/i);
    expect(() => tallied.inc({ route: '/mcp', status: 200 }, -1)).toThrow(/decrease/);
  });
});
