import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../../src/config/load.js';
import { namesTaskMethods, TASKS_IN_METHODS } from '../../../src/config/task-methods.js';
import { compileTable } from '../../../src/policy/compile.js';

const TASK_METHODS = ['tasks/get', 'tasks/result', 'tasks/list', 'tasks/cancel'];

const policy = (methods: string) => `identities:
  anonymous: {}
routes:
  - route: /mcp
    resource: http://127.0.0.1:8443/mcp
    upstream: http://127.0.0.1:3000/mcp
    authentication: { methods: [anonymous] }
    methods: ${methods}
`;

function problemsOf(text: string): string[] {
  try {
    parseConfig(text, { file: 'portcullis.yaml', env: {} });
  } catch (err) {
    if (err instanceof ConfigError) return err.message.split('\n');
    throw err;
  }
  return [];
}

describe('a route’s methods naming tasks/', () => {
  it.each([
    ...TASK_METHODS,
    'tasks/*',
    'tasks/**',
    '**',
    '*/**',
    't*/get',
    '*/get',
    '*/cancel',
    'task*/*',
    'tas**',
    '**/cancel',
    '***',
    'Tasks/get',
    'TASKS/*',
    'ta\u017Fks/get', // ſ folds to s
    'tas\u212As/*', // K (Kelvin sign) folds to k
  ])('refuses %s at load, saying why', (name) => {
    const problems = problemsOf(policy(`{ ${JSON.stringify(name)}: tasks:read }`));
    expect(problems).toHaveLength(1);
    expect(problems[0]).toBe(
      `portcullis.yaml:8:${problemColumn(name)} routes[0].methods.${name}: ${TASKS_IN_METHODS}`,
    );
    expect(problems[0]).toContain('task ids are not bound to identities');
    expect(problems[0]).toContain("another caller's task");
  });

  it('refuses each tasks entry and keeps the others, reporting all at once', () => {
    const problems = problemsOf(policy('{ "vendor/export": a, "tasks/get": b, "**": c }'));
    expect(problems.map((p) => p.replace(/^\S+ /, '').split(':')[0])).toEqual([
      'routes[0].methods.tasks/get',
      'routes[0].methods.**',
    ]);
  });

  it.each(['vendor/export', 'notes/*', 'task', 'tasks', 'task*', '*', 'tasksx/get', 'x/tasks/get', 't*'])(
    'accepts %s, which can match no tasks/ method (`*` never crosses `/`)',
    (name) => {
      expect(problemsOf(policy(`{ ${JSON.stringify(name)}: tasks:read }`))).toEqual([]);
    },
  );

  it('agrees with the policy matcher: a pattern that matches a tasks method is always refused', () => {
    // Glob alphabet weighted towards the characters of `tasks/`, so matches are frequent.
    const piece = fc.constantFrom('t', 'a', 's', 'k', '/', '*', '**', 'g', 'e', 'x', 'tasks', 'tasks/', 'T');
    const glob = fc.array(piece, { minLength: 1, maxLength: 8 }).map((parts) => parts.join(''));
    const method = fc.oneof(
      fc.constantFrom(...TASK_METHODS),
      fc.stringMatching(/^[a-z/]{0,6}$/).map((rest) => `tasks/${rest}`),
    );
    let matched = 0;
    fc.assert(
      fc.property(glob, method, (pattern, name) => {
        const lookedUp = compileTable('methods', { [pattern]: 'x' }).lookup(name) !== undefined;
        if (lookedUp) {
          matched++;
          expect(namesTaskMethods(pattern), `${pattern} matches ${name}`).toBe(true);
        }
      }),
      { numRuns: 5_000, seed: 13 },
    );
    // The property must have been exercised, not vacuously true.
    expect(matched).toBeGreaterThan(100);
  });
});

/** The column YAML reports: the value of the offending pair. */
function problemColumn(name: string): number {
  return '    methods: { '.length + JSON.stringify(name).length + ': '.length + 1;
}
