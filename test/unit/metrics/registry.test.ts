import { describe, expect, it } from 'vitest';
import {
  createMetrics,
  INTERNAL_ERROR_SITES,
  KNOWN_METHODS,
  methodLabel,
} from '../../../src/metrics/registry.js';
import { VERSION } from '../../../src/version.js';
import { parsePrometheusText } from '../../support/prometheus.js';

describe('methodLabel', () => {
  it.each(['tools/call', 'initialize', 'notifications/initialized', 'GET', 'DELETE', 'batch', 'none'])(
    'keeps the known method %s as its own label',
    (method) => {
      expect(methodLabel(method)).toBe(method);
    },
  );

  it.each([
    ['an unknown method', 'tools/explode'],
    ['a case variant of a known one', 'Tools/Call'],
    ['a known one with a suffix', 'tools/call '],
    ['an empty name', ''],
    ['a client-chosen long name', 'x'.repeat(10_000)],
  ])('counts %s as other', (_what, method) => {
    expect(methodLabel(method)).toBe('other');
  });

  it('never gives more label values than the known methods and other', async () => {
    const metrics = createMetrics(VERSION);
    for (let i = 0; i < 500; i++)
      metrics.requests.inc({ route: '/mcp', method: methodLabel(`spam/${i}`), status: '200' });
    metrics.requests.inc({ route: '/mcp', method: methodLabel('tools/list'), status: '200' });
    const family = parsePrometheusText(await metrics.registry.metrics()).get('portcullis_requests_total');
    const methods = new Set(family?.samples.map((sample) => sample.labels.method));
    expect(methods).toEqual(new Set(['other', 'tools/list']));
    const other = family?.samples.find((sample) => sample.labels.method === 'other');
    expect(other?.value).toBe(500);
    expect(KNOWN_METHODS.has('other')).toBe(false);
  });
});

describe('createMetrics', () => {
  it('registers the build info and zeroes the counters an alert watches from their first step', async () => {
    const metrics = createMetrics('1.2.3');
    const families = parsePrometheusText(await metrics.registry.metrics());
    expect(families.get('portcullis_build_info')?.samples).toEqual([
      expect.objectContaining({ labels: { version: '1.2.3', node: process.version }, value: 1 }),
    ]);
    const reloads = families.get('portcullis_policy_reloads_total')?.samples ?? [];
    expect(Object.fromEntries(reloads.map((s) => [s.labels.result, s.value]))).toEqual({
      applied: 0,
      invalid: 0,
      refused: 0,
    });
    const internal = families.get('portcullis_internal_errors_total')?.samples ?? [];
    expect(internal.map((s) => s.labels.where).sort()).toEqual([...INTERNAL_ERROR_SITES].sort());
    expect(internal.every((s) => s.value === 0)).toBe(true);
  });

  it('keeps each gateway’s instruments on its own registry', async () => {
    const one = createMetrics(VERSION);
    const two = createMetrics(VERSION);
    one.refusals.inc({ route: '/mcp', reason: 'rate_limited' });
    const count = async (registry: typeof one.registry) =>
      parsePrometheusText(await registry.metrics()).get('portcullis_refusals_total')?.samples.length ?? 0;
    expect(await count(one.registry)).toBe(1);
    expect(await count(two.registry)).toBe(0);
  });
});
