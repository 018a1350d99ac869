import { describe, expect, it } from 'vitest';
import {
  BUDGET,
  type Condition,
  type ConditionProblem,
  compileCondition,
  isConditionProblem,
} from '../../../src/policy/conditions.js';

const IDENTITY = {
  subject: 'alice',
  key: 'apiKey:alice',
  scopes: ['files:write'],
  claims: {},
  methods: ['apiKey'],
};

function compiled(source: string): Condition {
  const condition = compileCondition(source);
  if (isConditionProblem(condition)) throw new Error(condition.message);
  return condition;
}
const problem = (source: string) => compileCondition(source) as ConditionProblem;

describe('when rules', () => {
  it('allow and deny on the arguments, the identity and the route', () => {
    const path = compiled('args.path.startsWith("/srv/shared/") && !args.path.contains("..")');
    expect(path.evaluate({ args: { path: '/srv/shared/a.txt' }, identity: IDENTITY, route: '/r' })).toBe(
      true,
    );
    expect(
      path.evaluate({ args: { path: '/srv/shared/../etc/passwd' }, identity: IDENTITY, route: '/r' }),
    ).toBe(false);
    expect(path.evaluate({ args: { path: '/etc/passwd' }, identity: IDENTITY, route: '/r' })).toBe(false);
    const owner = compiled('args.owner == identity.subject');
    expect(owner.evaluate({ args: { owner: 'alice' }, identity: IDENTITY, route: '/r' })).toBe(true);
    expect(owner.evaluate({ args: { owner: 'bob' }, identity: IDENTITY, route: '/r' })).toBe(false);
    const scoped = compiled('"files:write" in identity.scopes && route == "/r" && args.count <= 10');
    expect(scoped.evaluate({ args: { count: 3 }, identity: IDENTITY, route: '/r' })).toBe(true);
    expect(scoped.evaluate({ args: { count: 30 }, identity: IDENTITY, route: '/r' })).toBe(false);
  });

  it('fail closed: a missing argument, a type mismatch or a non-boolean is an error', () => {
    const rule = compiled('args.path.startsWith("/srv/")');
    expect(rule.evaluate({ args: {}, identity: IDENTITY, route: '/r' })).toEqual({
      error: 'a field the rule reads is missing',
    });
    expect(rule.evaluate({ args: { path: 5 }, identity: IDENTITY, route: '/r' })).toEqual({
      error: 'an operation applied to the wrong types',
    });
    expect(compiled('args.path').evaluate({ args: { path: 'x' }, identity: IDENTITY, route: '/r' })).toEqual({
      error: 'the rule did not evaluate to a boolean',
    });
  });

  it('say why they failed in fixed words, never quoting the caller’s values', () => {
    const input = (args: Record<string, unknown>) => ({ args, identity: IDENTITY, route: '/r' });
    const secret = 'secretVALUE42';
    const cases: [string, Record<string, unknown>, string][] = [
      ['int(args.x) > 0', { x: secret }, 'a conversion failed'],
      ['args.m[args.x] == 1', { x: secret, m: {} }, 'a field the rule reads is missing'],
      ['args.l[5] == 1', { l: [secret] }, 'an index out of range'],
      ['timestamp(args.x) > timestamp("2020-01-01T00:00:00Z")', { x: secret }, 'a conversion failed'],
      ['args.x + 1 == 2', { x: secret }, 'an operation applied to the wrong types'],
    ];
    for (const [source, args, kind] of cases) {
      const result = compiled(source).evaluate(input(args));
      expect(result, source).toEqual({ error: kind });
      expect(JSON.stringify(result)).not.toContain(secret);
    }
  });

  it('are refused at load with where: syntax, unknown variables, nesting', () => {
    expect(problem('args.path.startsWith("x"')).toMatchObject({ offset: expect.any(Number) });
    const unknown = problem('argz.path == "x"');
    expect(unknown.message).toContain("unknown variable 'argz'");
    expect(unknown.offset).toBe(0);
    expect(problem('args.a == "x" && secret == 1')).toMatchObject({ offset: 17 });
    expect(problem('args.a.all(x, args.a.all(y, args.a.all(z, true)))').message).toContain('nested deeper');
    // A comprehension's own variables are known inside it.
    expect(isConditionProblem(compileCondition('args.items.all(i, i.size() < 64)'))).toBe(false);
  });

  it('stop a nested all over 10 000 elements within the budget, denying it', () => {
    const rule = compiled('args.a.all(x, args.a.all(y, x == y || true))');
    const started = performance.now();
    const result = rule.evaluate({
      args: { a: Array.from({ length: 10_000 }, (_, i) => i) },
      identity: IDENTITY,
      route: '/r',
    });
    expect(result).toEqual({ error: 'evaluation budget exceeded' });
    expect(performance.now() - started).toBeLessThan(5_000);
    // An `||` that would absorb the error does not: exhausted is denied whatever came back.
    const absorbing = compiled('args.a.exists(x, args.a.exists(y, x == y) && false) || true');
    expect(
      absorbing.evaluate({
        args: { a: Array.from({ length: 10_000 }, (_, i) => i) },
        identity: IDENTITY,
        route: '/r',
      }),
    ).toEqual({
      error: 'evaluation budget exceeded',
    });
    expect(BUDGET).toBeGreaterThan(1_000);
  });

  it('run matches() in linear time', () => {
    const rule = compiled('args.tag.matches("^(a+)+$")');
    const started = performance.now();
    expect(rule.evaluate({ args: { tag: `${'a'.repeat(50_000)}!` }, identity: IDENTITY, route: '/r' })).toBe(
      false,
    );
    expect(rule.evaluate({ args: { tag: 'aaa' }, identity: IDENTITY, route: '/r' })).toBe(true);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('deny an argument key that differs from a field the rule reads only in case (a Go server would take it)', () => {
    const rule = compiled('!has(args.recursive) || args.recursive == false');
    expect(rule.evaluate({ args: { path: '/x' }, identity: IDENTITY, route: '/r' })).toBe(true);
    expect(rule.evaluate({ args: { Recursive: true }, identity: IDENTITY, route: '/r' })).toEqual({
      error: 'an argument key differs from a field the rule reads only in case',
    });
    expect(
      rule.evaluate({ args: { opts: [{ RECURSIVE: true }] }, identity: IDENTITY, route: '/r' }),
    ).toMatchObject({
      error: expect.any(String),
    });
  });

  it('charge a string read by its length: a rule re-reading megabytes is stopped', () => {
    const rule = compiled('args.tags.all(t, args.d.size() > 0)');
    const started = performance.now();
    const result = rule.evaluate({
      args: { tags: Array.from({ length: 1_000 }, () => 'x'), d: 'y'.repeat(3_000_000) },
      identity: IDENTITY,
      route: '/r',
    });
    expect(result).toEqual({ error: 'evaluation budget exceeded' });
    expect(performance.now() - started).toBeLessThan(2_000);
    // A normal path is cheap.
    expect(
      compiled('args.path.size() < 256').evaluate({
        args: { path: '/srv/a' },
        identity: IDENTITY,
        route: '/r',
      }),
    ).toBe(true);
  });
});
