/**
 * README's metrics table and example alerts name only metrics a running gateway exports, and the
 * table lists every family the gateway exports: checked against a real `/metrics` scrape.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { parsePrometheusText } from '../support/prometheus.js';
import { readmeSection } from '../support/readme.js';
import { metricsText } from '../support/wire.js';

const section = readmeSection('### Metrics');

let gateway: TestGateway;
let exported: Set<string>;
let scrape: string;

beforeAll(async () => {
  gateway = await startTestGateway({ routes: [{ upstream: 'http://127.0.0.1:9/mcp' }] });
  scrape = await metricsText(gateway);
  exported = new Set(parsePrometheusText(scrape).keys());
});
afterAll(async () => {
  await gateway?.close();
});

/** A family name, or what a sample name of a histogram belongs to. */
function familyOf(name: string): string {
  return name.replace(/_(bucket|sum|count)$/, '');
}

describe('README metrics', () => {
  it('every metric the README names (table and PromQL) is exported', () => {
    const named = new Set(
      [...section.matchAll(/portcullis_[a-z0-9_]+(?!\*)\b/g)]
        .map((m) => m[0])
        .filter((n) => !n.endsWith('_')),
    );
    expect(named.size).toBeGreaterThan(10);
    const missing = [...named].filter((name) => !exported.has(name) && !exported.has(familyOf(name)));
    expect(missing).toEqual([]);
  });

  it('the table lists every family the gateway exports (Node defaults by their prefixes)', () => {
    const rows = section.split('\n').filter((line) => line.startsWith('| `portcullis_'));
    const listed = rows.flatMap((row) =>
      [...(row.split('|')[1] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1] ?? ''),
    );
    const covered = (name: string) =>
      listed.some((entry) => (entry.endsWith('*') ? name.startsWith(entry.slice(0, -1)) : name === entry));
    expect([...exported].filter((name) => !covered(name))).toEqual([]);
  });

  it('a fresh gateway exports every reload result at 0, so an alert sees the first failure', () => {
    for (const result of ['applied', 'invalid', 'refused'])
      expect(scrape).toContain(`portcullis_policy_reloads_total{result="${result}"} 0`);
  });
});
