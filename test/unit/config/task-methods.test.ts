import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { namesTaskMethods } from '../../../src/config/task-methods.js';
import { compileTable } from '../../../src/policy/compile.js';
import { configProblems, MINIMAL_POLICY } from '../../support/config.js';

const TASK_METHODS = ['tasks/get', 'tasks/result', 'tasks/list', 'tasks/cancel'];

const policy = (methods: string) => `${MINIMAL_POLICY}    methods: ${methods}
`;

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
  ])(
    '%s can grant a tasks method: the route loads, and its task ids are bound (the router wraps it)',
    (name) => {
      expect(namesTaskMethods(name)).toBe(true);
      expect(configProblems(policy(`{ ${JSON.stringify(name)}: tasks:read }`))).toEqual([]);
    },
  );

  it.each(['vendor/export', 'notes/*', 'task', 'tasks', 'task*', '*', 'tasksx/get', 'x/tasks/get', 't*'])(
    '%s can match no tasks/ method (`*` never crosses `/`): the route keeps its fast path',
    (name) => {
      expect(namesTaskMethods(name)).toBe(false);
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

describe('a federated route’s methods naming tasks/', () => {
  it('loads: a federated route seals task ids to the identity that created the task', () => {
    const federated = MINIMAL_POLICY.replace(
      / {4}upstream: (\S+)\n/,
      (_all, url: string) => `    servers: { only: { upstream: ${url} } }\n`,
    );
    expect(federated).toContain('servers:');
    expect(configProblems(`${federated}    methods: { "tasks/*": tasks:read }\n`)).toEqual([]);
  });
});
