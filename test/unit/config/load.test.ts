import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { configProblems, MINIMAL_POLICY } from '../../support/config.js';

const minimal = MINIMAL_POLICY;

/** The problems the loader reports for a file these tests expect it to refuse. */
function problemsOf(text: string, env: NodeJS.ProcessEnv = {}): string[] {
  const problems = configProblems(text, env);
  if (problems.length === 0) throw new Error('expected the file to be refused');
  return problems;
}

describe('parseConfig', () => {
  it('applies defaults to a minimal file and freezes the result', () => {
    const config = parseConfig(minimal, { env: {} });
    expect(config.listen).toEqual({ host: '0.0.0.0', port: 8443 });
    expect(config.limits.maxBodyBytes).toBe(4_194_304);
    expect(config.routes[0]?.default).toBe('deny');
    expect(config.routes[0]?.mode).toBe('enforce');
    expect(Object.isFrozen(config.routes[0])).toBe(true);
  });

  it('names file, line, column and field path for a bad upstream', () => {
    const text = minimal.replace('upstream: http://127.0.0.1:3000/mcp', 'upstream: ftp://example.com/mcp');
    expect(problemsOf(text)).toEqual(['portcullis.yaml:6:15 routes[0].upstream: must be an http(s) URL']);
  });

  it('reports every problem at once, unknown keys included', () => {
    const text = `${minimal}    tols: { a: b }\nlisten: { port: "x" }\n`;
    expect(problemsOf(text)).toEqual([
      'portcullis.yaml:8:5 routes[0].tols: unknown key',
      'portcullis.yaml:9:17 listen.port: must be a number',
    ]);
  });

  it('refuses a resources pattern that is not canonical, naming the spelling to write', () => {
    const text = `${minimal}    resources:\n      "FILE://localhost/secret/**": a\n      "file:///public/../x/**": b\n      "file:///ok/**": c\n`;
    expect(problemsOf(text)).toEqual([
      'portcullis.yaml:9:37 routes[0].resources.FILE://localhost/secret/**: is not in canonical form, so it would never match; write "file:///secret/**"',
      'portcullis.yaml:10:33 routes[0].resources.file:///public/../x/**: is not a resource URI the gateway accepts (no scheme, a dot-segment or empty segment, a control, space or backslash, a refused escape, userinfo, or a bad host or port), so it could never match',
    ]);
  });

  it('reports a required field that is missing at its parent', () => {
    const text = minimal.replace('    upstream: http://127.0.0.1:3000/mcp\n', '');
    expect(problemsOf(text)).toEqual([
      'portcullis.yaml:4:5 routes[0].upstream: is required (or servers, for a federated route)',
    ]);
  });

  it('substitutes ${VAR} inside scalars and types plain scalars', () => {
    const text = minimal
      .replace('routes:', 'listen:\n  port: ${PORT}\nroutes:')
      .replace('upstream: http://127.0.0.1:3000/mcp', 'upstream: "${UPSTREAM}"');
    const config = parseConfig(text, { env: { PORT: '9000', UPSTREAM: 'http://up:1/mcp' } });
    expect(config.listen.port).toBe(9000);
    expect(config.routes[0]?.upstream).toBe('http://up:1/mcp');
  });

  it('never substitutes into YAML syntax: a value cannot add keys', () => {
    const text = minimal.replace('routes:', 'log: { level: "${LEVEL}" }\nroutes:');
    const problems = problemsOf(text, { LEVEL: 'info", requests: true, x: "' });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^portcullis\.yaml:\d+:\d+ log\.level: must be one of/);
  });

  it('names a missing variable and never prints a secret value', () => {
    const secret = 'hunter2-super-secret-value';
    const text = minimal
      .replace('routes:', 'audit: { chainKey: "${CHAIN}" }\nsessions: { keys: ["${KEY}"] }\nroutes:')
      .replace('upstream: http://127.0.0.1:3000/mcp', 'upstream: ${UP}');
    const problems = problemsOf(text, { KEY: secret });
    expect(problems.join('\n')).not.toContain(secret);
    expect(problems).toContain('portcullis.yaml:3:20 audit.chainKey: environment variable CHAIN is not set');
    expect(problems.some((p) => p.includes('routes[0].upstream: environment variable UP is not set'))).toBe(
      true,
    );
  });

  it('never echoes a bad secret value in a validation error', () => {
    const secret = 'not-base64-but-secret!';
    const text = minimal.replace('routes:', 'sessions: { keys: ["${KEY}"] }\nroutes:');
    const problems = problemsOf(text, { KEY: secret });
    expect(problems).toEqual(['portcullis.yaml:3:20 sessions.keys[0]: must be a base64-encoded 32-byte key']);
  });

  it('refuses cross-field mistakes', () => {
    const text = minimal
      .replace('methods: [anonymous] }', 'methods: [anonymous, jwt], require: all }')
      .replace('routes:', 'audit: { arguments: hash }\nroutes:');
    const problems = problemsOf(text);
    expect(problems.some((p) => p.includes('audit.arguments: hash needs audit.chainKey'))).toBe(true);
    expect(
      problems.some((p) => p.includes('routes[0].authentication.methods: anonymous cannot be combined')),
    ).toBe(true);
    expect(
      problems.some((p) => p.includes('routes[0].authentication.methods[1]: jwt needs identities.jwt')),
    ).toBe(true);
  });

  it('requires failMode with rateLimits and rejects duplicate routes', () => {
    const route = minimal.slice(minimal.indexOf('  - route'));
    const text = `${minimal}      rateLimits: [{ per: identity, limit: 10/minute }]\n${route}`;
    const problems = problemsOf(text.replace('      rateLimits', '    rateLimits'));
    expect(problems.some((p) => p.includes('routes[0].failMode: is required when rateLimits is set'))).toBe(
      true,
    );
    expect(problems.some((p) => p.includes('routes[1].route: duplicates routes[0].route'))).toBe(true);
  });

  it('reports YAML syntax errors with their position', () => {
    expect(problemsOf('routes: [\n')[0]).toMatch(/^portcullis\.yaml:\d+:\d+ /);
    expect(problemsOf('a: 1\na: 2\n')[0]).toMatch(/^portcullis\.yaml:2:1 /);
  });
});
