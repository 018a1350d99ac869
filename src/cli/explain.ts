import { parseArgs } from 'node:util';
import { createApiKeyVerifier } from '../auth/api-key.js';
import { delegationChain, delegationDepth } from '../auth/delegation.js';
import type { Identity } from '../auth/identity.js';
import { createJwtVerifier } from '../auth/jwt.js';
import type { Config } from '../config/schema.js';
import { PROMPTS_GET, RESOURCES_READ, TOOLS_CALL } from '../jsonrpc/methods.js';
import type { RpcMessage } from '../jsonrpc/parse.js';
import { compilePolicy } from '../policy/compile.js';
import { type Decision, decide } from '../policy/decide.js';
import { loadFromArgs } from './config-arg.js';

const USAGE =
  'Usage: portcullis explain --config F --route R (--tool T [--args-stdin] | --resource U | --prompt P | --method M)\n' +
  '                          (--scopes a,b | --key-stdin | --token-stdin)\n' +
  "       --args-stdin: the call's arguments as JSON on stdin (with --scopes)\n";

/**
 * `portcullis explain`: what the policy decides for one call, and why. Keys and tokens are read
 * from stdin, never from the command line (where `ps` and shell history would keep them).
 */
export async function runExplain(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      config: { type: 'string' },
      route: { type: 'string' },
      tool: { type: 'string' },
      resource: { type: 'string' },
      prompt: { type: 'string' },
      method: { type: 'string' },
      scopes: { type: 'string' },
      'key-stdin': { type: 'boolean' },
      'token-stdin': { type: 'boolean' },
      'args-stdin': { type: 'boolean' },
    },
    strict: true,
  });
  const found = loadFromArgs(values.config === undefined ? [] : ['--config', values.config], 'explain');
  if (!found) return 2;
  const { config } = found.loaded;
  const route = config.routes.find((r) => r.route === values.route);
  const sources = [values.scopes !== undefined, values['key-stdin'] === true, values['token-stdin'] === true];
  // stdin carries one thing: the arguments, or a credential.
  const argsFromStdin =
    values['args-stdin'] === true && values.scopes !== undefined && values.tool !== undefined;
  let callArguments: Record<string, unknown> | undefined;
  if (argsFromStdin) {
    const parsed: unknown = JSON.parse((await readStdin()) || '{}');
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
      process.stderr.write(`the arguments on stdin must be a JSON object\n${USAGE}`);
      return 2;
    }
    callArguments = parsed as Record<string, unknown>;
  }
  const message = callOf({ ...values, args: callArguments });
  if (
    route === undefined ||
    message === undefined ||
    sources.filter(Boolean).length !== 1 ||
    (values['args-stdin'] === true && !argsFromStdin)
  ) {
    process.stderr.write(
      route === undefined && values.route !== undefined ? `no route ${values.route}\n${USAGE}` : USAGE,
    );
    return 2;
  }
  const identity = await identityFrom(values, config, route.resource);
  if (typeof identity === 'string') {
    process.stdout.write(`deny  (${identity}: the credential does not authenticate)\n`);
    return 1;
  }
  const max = route.maxDelegationDepth;
  if (max !== undefined && delegationDepth(identity.claims) > max) {
    process.stdout.write(
      `deny  (method_denied)\n  rule      maxDelegationDepth ${max}\n  caller    ${identity.key}\n  delegated ${describeChain(identity)}\n`,
    );
    return 1;
  }
  const decision = decide(compilePolicy(route), message, identity, false);
  process.stdout.write(describeDecision(decision, identity));
  return decision.effect === 'allow' ? 0 : 1;
}

/** The synthetic JSON-RPC request a call on the command line stands for. */
export function callOf(values: {
  tool?: string | undefined;
  resource?: string | undefined;
  prompt?: string | undefined;
  method?: string | undefined;
  /** A tool call's arguments (what its `when` rule reads). */
  args?: Readonly<Record<string, unknown>> | undefined;
}): RpcMessage | undefined {
  const given = [values.tool, values.resource, values.prompt, values.method].filter((v) => v !== undefined);
  if (given.length !== 1) return undefined;
  if (values.tool !== undefined)
    return {
      kind: 'request',
      id: 1,
      method: TOOLS_CALL,
      params: { name: values.tool, ...(values.args === undefined ? {} : { arguments: values.args }) },
    };
  if (values.resource !== undefined)
    return { kind: 'request', id: 1, method: RESOURCES_READ, params: { uri: values.resource } };
  if (values.prompt !== undefined)
    return { kind: 'request', id: 1, method: PROMPTS_GET, params: { name: values.prompt } };
  return { kind: 'request', id: 1, method: values.method as string };
}

async function identityFrom(
  values: { scopes?: string; 'key-stdin'?: boolean; 'token-stdin'?: boolean },
  config: Config,
  resource: string,
): Promise<Identity | string> {
  if (values.scopes !== undefined) {
    const scopes = new Set(
      values.scopes
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    );
    return { key: 'explain', subject: 'explain', methods: [], scopes };
  }
  const secret = (await readStdin()).trim();
  if (values['key-stdin']) {
    const result = createApiKeyVerifier(config.identities.apiKeys)(secret);
    return 'failure' in result ? result.failure : result;
  }
  const result = await createJwtVerifier(config.identities.jwt).verify(secret, resource, undefined);
  return 'failure' in result ? result.failure : result;
}

export function describeDecision(decision: Decision, identity: Identity): string {
  const lines = [
    `${decision.effect}${decision.reason === undefined ? '' : `  (${decision.reason})`}`,
    `  rule      ${decision.rule}`,
    `  requires  ${decision.required.length === 0 ? '(no scope)' : decision.required.join(' ')}`,
    `  caller    ${identity.key}: ${[...identity.scopes].join(' ') || '(no scope)'}`,
  ];
  if (delegationDepth(identity.claims) > 0) lines.push(`  delegated ${describeChain(identity)}`);
  if (decision.confirm !== undefined)
    lines.push(
      `  confirm   ${decision.confirm}: forwarded only after ${decision.confirm === 'caller' ? 'the caller confirms' : 'an approver approves'} it`,
    );
  if (decision.missing.length > 0) lines.push(`  missing   ${decision.missing.join(' ')}`);
  if (decision.reason === 'argument_denied')
    lines.push(
      `  when      ${decision.detail === 'evaluation_error' ? `could not be evaluated (${decision.evaluationError ?? 'evaluation error'}): denied` : 'false for these arguments'}`,
    );
  return `${lines.join('\n')}\n`;
}

/** The caller's delegation chain as `explain` prints it: `by agent-42, for orchestrator (2 actors)`. */
function describeChain(identity: Identity): string {
  const chain = delegationChain(identity.claims);
  return `through ${chain.join(' ← ')} (${chain.length} actor${chain.length === 1 ? '' : 's'}; identity.claims.act in when rules)`;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}
