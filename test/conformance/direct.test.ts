/**
 * The official MCP conformance suite against the fixture server, with nothing in between: the
 * baseline the gateway runs are compared with. Each requirement set takes a few seconds.
 */
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type ConformanceServer, startConformanceServer } from '../fixtures/conformance-server.js';
import { type Requirements, runConformance, type ScenarioResult, scoredScenarios } from './suite.js';

/**
 * "Not scored" scenarios the suite runs for visibility that cannot pass against an SDK v2 server:
 * they exercise the `io.modelcontextprotocol/tasks` extension (SEP-2663), which
 * `@modelcontextprotocol/server` 2.4.0 does not implement (no `tasks/get|update|cancel`, no
 * task-augmented `tools/call`). `tasks-status-notifications` is absent because it skips all its
 * checks (0/0). Every other not-scored scenario (SSE resumption, JSON Schema 2020-12, SEP-2243
 * header validation, session lifecycle) passes and is asserted to.
 */
const KNOWN_UNSCORED_FAILURES: Record<Requirements, string[]> = {
  '2025-11-25': [],
  '2026-07-28': [
    'tasks-capability-negotiation',
    'tasks-dispatch-and-envelope',
    'tasks-lifecycle',
    'tasks-mrtr-composition',
    'tasks-mrtr-input',
    'tasks-request-headers',
    'tasks-request-state-removal',
    'tasks-required-task-error',
    'tasks-wire-fields',
  ],
};

/**
 * `scenario: check ids` for every scored scenario that is not clean. WARNINGs count: some scored
 * scenarios consist only of a SHOULD-level check, so without them a dead server would pass.
 */
function scoredShortfalls(results: Map<string, ScenarioResult>): string[] {
  return [...results]
    .filter(
      ([, result]) => result.scored && (result.failed > 0 || result.warnings > 0 || result.passed === 0),
    )
    .map(([name, result]) => {
      const checks = [...result.failedChecks, ...result.warningChecks];
      return `${name}: ${checks.join(', ') || 'no passing check'}`;
    });
}

function unscoredFailures(results: Map<string, ScenarioResult>): string[] {
  return [...results]
    .filter(([, result]) => !result.scored && result.failed > 0)
    .map(([name]) => name)
    .sort();
}

describe('MCP conformance suite, directly against the fixture server', () => {
  let server: ConformanceServer;

  beforeAll(async () => {
    server = await startConformanceServer();
  });

  afterAll(async () => {
    await server?.close();
  });

  for (const requirements of ['2025-11-25', '2026-07-28'] as const) {
    test(`every scenario required by ${requirements} passes`, { timeout: 150_000 }, async () => {
      const results = await runConformance(server.url, requirements);

      const ran = [...results].filter(([, result]) => result.scored).map(([name]) => name);
      expect(ran.sort()).toEqual((await scoredScenarios(requirements)).sort());
      expect(scoredShortfalls(results)).toEqual([]);
      expect(unscoredFailures(results)).toEqual(KNOWN_UNSCORED_FAILURES[requirements]);
    });
  }
});
