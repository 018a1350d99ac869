/**
 * The official MCP conformance suite through the gateway on an `anonymous` route, compared check
 * by check with the same suite run directly against the same fixture server: every check that
 * passes directly must pass through the gateway. `npm run conformance` prints the table.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type ConformanceServer, startConformanceServer } from '../fixtures/conformance-server.js';
import { freePort, startTestGateway, type TestGateway } from '../support/gateway.js';
import { formatTable, type Requirements, runConformance, type ScenarioResult } from './suite.js';

/** `scenario/check` ids that end in SUCCESS (a WARNING is not a pass). */
function passing(results: Map<string, ScenarioResult>): string[] {
  return [...results].flatMap(([name, result]) =>
    result.checks.filter((c) => c.status === 'SUCCESS').map((c) => `${name}/${c.id}`),
  );
}

describe('MCP conformance suite through the gateway', () => {
  let server: ConformanceServer;
  let gateway: TestGateway;
  const tables: string[] = [];

  beforeAll(async () => {
    server = await startConformanceServer();
    // The route's resource is the gateway's own URL: the suite's same-origin request must pass, a
    // rebinding origin must not.
    gateway = await startTestGateway({ routes: [{ upstream: server.url }], port: await freePort() });
  });

  afterAll(async () => {
    await gateway?.close();
    await server?.close();
    if (tables.length > 0) {
      mkdirSync('.tmp', { recursive: true });
      writeFileSync('.tmp/conformance.md', `${tables.join('\n\n')}\n`);
      process.stdout.write(`\n${tables.join('\n\n')}\n`);
    }
  });

  for (const requirements of ['2025-11-25', '2026-07-28'] as const satisfies Requirements[]) {
    test(`loses no check of ${requirements}`, { timeout: 300_000 }, async () => {
      const direct = await runConformance(server.url, requirements);
      const through = await runConformance(`${gateway.url}/mcp`, requirements);
      tables.push(`### --requirements ${requirements}\n\n${formatTable(direct, through)}`);
      const lost = passing(direct).filter((check) => !new Set(passing(through)).has(check));
      expect(lost).toEqual([]);
    });
  }
});
