/**
 * The strict exposition-format reader the metrics tests rely on (test/support/prometheus.ts): it
 * reads back what prom-client writes — escaped label values and help text, NaN and the infinities,
 * histograms and summaries — value for value, and refuses every malformed line it is shown.
 */
import { Counter, Gauge, Histogram, Registry, Summary } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { Exposition, ExpositionError, parsePrometheusText } from '../../support/prometheus.js';

describe('parsePrometheusText', () => {
  it("reads prom-client's own output back exactly, escapes included", async () => {
    const registry = new Registry();
    const counter = new Counter({
      name: 'demo_total',
      help: 'A help text with a backslash \\ and a\nnewline',
      labelNames: ['name'],
      registers: [registry],
    });
    const tricky = ['plain', 'a "quoted" name', 'back\\slash', 'two\nlines', 'a,b=c{d}', 'ünïcødé 名前'];
    tricky.forEach((name, i) => {
      counter.inc({ name }, i + 1);
    });
    const gauge = new Gauge({ name: 'demo_gauge', help: 'g', labelNames: ['v'], registers: [registry] });
    gauge.set({ v: 'nan' }, Number.NaN);
    gauge.set({ v: 'inf' }, Number.POSITIVE_INFINITY);
    gauge.set({ v: 'ninf' }, Number.NEGATIVE_INFINITY);
    gauge.set({ v: 'small' }, 1.5e-7);
    const histogram = new Histogram({
      name: 'demo_seconds',
      help: 'h',
      labelNames: ['route'],
      buckets: [0.1, 1],
      registers: [registry],
    });
    for (const v of [0.05, 0.5, 5]) histogram.observe({ route: '/a' }, v);
    const summary = new Summary({
      name: 'demo_summary',
      help: 's',
      percentiles: [0.5, 0.9],
      registers: [registry],
    });
    summary.observe(3);

    const exposition = new Exposition(await registry.metrics());
    const family = exposition.family('demo_total');
    expect(family.type).toBe('counter');
    expect(family.help).toBe('A help text with a backslash \\ and a\nnewline');
    tricky.forEach((name, i) => {
      expect(exposition.value('demo_total', { name })).toBe(i + 1);
    });
    expect(exposition.labelValues('demo_total', 'name')).toEqual(new Set(tricky));
    expect(exposition.value('demo_gauge', { v: 'nan' })).toBeNaN();
    expect(exposition.value('demo_gauge', { v: 'inf' })).toBe(Number.POSITIVE_INFINITY);
    expect(exposition.value('demo_gauge', { v: 'ninf' })).toBe(Number.NEGATIVE_INFINITY);
    expect(exposition.value('demo_gauge', { v: 'small' })).toBe(1.5e-7);
    expect(exposition.histogram('demo_seconds', { route: '/a' })).toEqual({
      buckets: [
        { le: 0.1, count: 1 },
        { le: 1, count: 2 },
        { le: Number.POSITIVE_INFINITY, count: 3 },
      ],
      sum: 5.55,
      count: 3,
    });
    expect(exposition.family('demo_summary').type).toBe('summary');
    expect(exposition.value('demo_summary_count')).toBe(1);
  });

  it('reads timestamps, untyped samples, blanks and free comments', () => {
    const families = parsePrometheusText(
      '# a free comment\n\nup 1 1700000000000\n# HELP x_total Total.\n# TYPE x_total counter\nx_total{a="1",} 2\n',
    );
    expect(families.get('up')).toEqual({
      name: 'up',
      type: 'untyped',
      help: undefined,
      samples: [{ name: 'up', labels: {}, value: 1, timestamp: 1700000000000 }],
    });
    expect(families.get('x_total')?.samples[0]?.labels).toEqual({ a: '1' });
  });

  const HIST = '# TYPE h histogram\n';
  it.each([
    ['no final line feed', 'up 1', 'line feed'],
    ['a carriage return', 'up 1\r\n', 'carriage return'],
    ['an invalid metric name', '1up 1\n', 'invalid metric name'],
    ['an invalid label name', 'up{1a="x"} 1\n', 'invalid label name'],
    ['a reserved label name', 'up{__name__="x"} 1\n', 'reserved label name'],
    ['an unquoted label value', 'up{a=x} 1\n', 'quoted label value'],
    ['an unterminated label value', 'up{a="x} 1\n', 'unterminated'],
    ['an invalid escape in a label value', 'up{a="\\t"} 1\n', 'invalid escape in a label value'],
    ['a label named twice', 'up{a="1",a="2"} 1\n', 'label a twice'],
    ['a missing comma between labels', 'up{a="1" b="2"} 1\n', 'expected , or }'],
    ['no value', 'up\n', 'blank before the value'],
    ['no value after labels', 'up{a="1"}\n', 'blank before the value'],
    ['no blank before the value', 'up{a="1"}1\n', 'blank before the value'],
    ['a value that is not a number', 'up one\n', 'invalid value'],
    ['a hexadecimal value', 'up 0x10\n', 'invalid value'],
    ['a fractional timestamp', 'up 1 1.5\n', 'invalid timestamp'],
    ['a third token', 'up 1 2 3\n', 'optional timestamp'],
    ['an unknown type', '# TYPE up meter\nup 1\n', 'unknown metric type'],
    ['a TYPE without a type', '# TYPE up\nup 1\n', 'unknown metric type'],
    ['a second TYPE', '# TYPE up gauge\n# TYPE up gauge\nup 1\n', 'second TYPE'],
    ['a TYPE after the samples', 'up 1\n# TYPE up gauge\n', 'TYPE after'],
    ['a second HELP', '# HELP up a\n# HELP up b\nup 1\n', 'second HELP'],
    ['an invalid escape in HELP', '# HELP up a \\t b\nup 1\n', 'invalid escape in HELP'],
    ['a duplicate series', 'up{a="1"} 1\nup{a="1"} 2\n', 'same series appears twice'],
    ['interleaved families', 'a 1\nb 1\na{x="1"} 1\n', 'not contiguous'],
    ['a negative counter', '# TYPE c_total counter\nc_total -1\n', 'negative counter'],
    ['a bucket without le', `${HIST}h_bucket 1\nh_sum 1\nh_count 1\n`, 'without le'],
    [
      'a bucket with a non-numeric le',
      `${HIST}h_bucket{le="x"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n`,
      'le is not a number',
    ],
    ['a histogram without +Inf', `${HIST}h_bucket{le="1"} 1\nh_sum 1\nh_count 1\n`, 'without a +Inf bucket'],
    [
      'buckets out of order',
      `${HIST}h_bucket{le="2"} 1\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n`,
      'increasing le order',
    ],
    [
      'non-cumulative buckets',
      `${HIST}h_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n`,
      'not cumulative',
    ],
    [
      '+Inf differing from _count',
      `${HIST}h_bucket{le="+Inf"} 2\nh_sum 1\nh_count 1\n`,
      'differs from _count',
    ],
    [
      'a histogram without _count',
      `${HIST}h_bucket{le="+Inf"} 1\nh_sum 1\n`,
      'without buckets, _sum and _count',
    ],
    [
      'an le label on _sum',
      `${HIST}h_bucket{le="+Inf"} 1\nh_sum{le="1"} 1\nh_count 1\n`,
      'le label outside a bucket',
    ],
    ['a summary sample without quantile', '# TYPE s summary\ns 1\ns_sum 1\ns_count 1\n', 'numeric quantile'],
  ])('refuses %s', (_, text, why) => {
    expect(() => parsePrometheusText(text)).toThrow(ExpositionError);
    expect(() => parsePrometheusText(text)).toThrow(why);
  });
});
