import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { Identity } from '../auth/identity.js';
import type { Config } from '../config/schema.js';
import { compilePolicy } from '../policy/compile.js';
import { decide } from '../policy/decide.js';
import { loadFromArgs } from './config-arg.js';
import { callOf, describeDecision } from './explain.js';

/** One expected decision: who (scopes, or a configured API key / mTLS identity), what, and the verdict. */
const caseSchema = z.strictObject({
  name: z.string().optional(),
  route: z.string(),
  scopes: z.array(z.string()).optional(),
  identity: z.string().optional(),
  tool: z.string().optional(),
  resource: z.string().optional(),
  prompt: z.string().optional(),
  method: z.string().optional(),
  /** A tool call's arguments, as its `when` rule reads them. */
  args: z.record(z.string(), z.unknown()).optional(),
  expect: z.enum(['allow', 'deny']),
  /**
   * Whether an allowed tool call needs a human's yes: `caller` or `approver` (its entry's
   * `confirm`), or `none`.
   * Omitted: not checked.
   */
  confirm: z.enum(['caller', 'approver', 'none']).optional(),
});
const fileSchema = z.strictObject({ tests: z.array(caseSchema).min(1) });

/**
 * `portcullis test --config F policy-tests.yaml`: policy as tested code. Each case names a route,
 * an identity (`scopes`, or `identity: apiKey:<id>` / `mtls:<name>` from the policy) and a call,
 * and the decision expected; any mismatch is printed and the exit code is 1.
 */
export async function runPolicyTests(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { config: { type: 'string' } },
    allowPositionals: true,
    strict: true,
  });
  const found = loadFromArgs(values.config === undefined ? [] : ['--config', values.config], 'test');
  if (!found || positionals.length !== 1) {
    if (found) process.stderr.write('Usage: portcullis test --config F policy-tests.yaml\n');
    return 2;
  }
  const parsed = fileSchema.safeParse(parseYaml(readFileSync(positionals[0] as string, 'utf8')));
  if (!parsed.success) {
    process.stderr.write(
      `${positionals[0]}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('\n')}\n`,
    );
    return 2;
  }
  const { config } = found.loaded;
  let failures = 0;
  parsed.data.tests.forEach((test, index) => {
    const label = test.name ?? `tests[${index}]`;
    const route = config.routes.find((r) => r.route === test.route);
    const message = callOf(test);
    const identity = identityOf(test, config);
    if (route === undefined || message === undefined || identity === undefined) {
      process.stdout.write(
        `ERROR ${label}: ${route === undefined ? `no route ${test.route}` : message === undefined ? 'name exactly one of tool, resource, prompt, method' : 'give scopes or a known identity'}\n`,
      );
      failures++;
      return;
    }
    const decision = decide(compilePolicy(route), message, identity, false);
    const confirm = decision.confirm ?? 'none';
    if (test.confirm !== undefined && decision.effect === 'allow' && confirm !== test.confirm) {
      failures++;
      process.stdout.write(`FAIL  ${label}: expected confirm ${test.confirm}, got ${confirm}\n`);
    } else if (decision.effect === test.expect) {
      process.stdout.write(`ok    ${label}: ${decision.effect}\n`);
    } else {
      failures++;
      process.stdout.write(
        `FAIL  ${label}: expected ${test.expect}, got ${describeDecision(decision, identity)}`,
      );
    }
  });
  process.stdout.write(`${parsed.data.tests.length - failures} passed, ${failures} failed\n`);
  return failures === 0 ? 0 : 1;
}

function identityOf(test: z.infer<typeof caseSchema>, config: Config): Identity | undefined {
  if (test.scopes !== undefined)
    return { key: 'test', subject: 'test', methods: [], scopes: new Set(test.scopes) };
  const [kind, name] = (test.identity ?? '').split(':');
  const scopes =
    kind === 'apiKey'
      ? config.identities.apiKeys.find((k) => k.id === name)?.scopes
      : kind === 'mtls'
        ? config.identities.mtls.find((m) => m.name === name)?.scopes
        : kind === 'anonymous'
          ? config.identities.anonymous?.scopes
          : undefined;
  return scopes === undefined
    ? undefined
    : { key: test.identity as string, subject: name ?? '', methods: [], scopes: new Set(scopes) };
}
