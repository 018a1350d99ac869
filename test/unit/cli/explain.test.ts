/** `portcullis explain`: as a user runs it (the built CLI, real files), and its parts in process. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../../src/auth/api-key.js';
import { callOf, describeDecision, runExplain } from '../../../src/cli/explain.js';
import type { Decision } from '../../../src/policy/decide.js';
import { runBuiltCli as run } from '../../support/cli.js';
import { runCommand } from '../../support/command.js';
import { createSigningKey, nowSec, type SigningKey, signJwt } from '../../support/jwks.js';

const ISSUER = 'https://idp.example.com/';

describe('portcullis explain, the built CLI', () => {
  let dir: string;
  let config: string;
  const key = newApiKey('pk_');
  let signer: SigningKey;
  beforeAll(async () => {
    signer = await createSigningKey('ES256');
    dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'));
    config = join(dir, 'portcullis.yaml');
    writeFileSync(
      config,
      `identities:
  apiKeys: [{ id: ci-bot, hash: "${key.hash}", scopes: [files:read] }]
  jwt: [{ issuer: "${ISSUER}", keys: [${JSON.stringify(signer.publicJwk)}] }]
routes:
  - route: /files/mcp
    resource: http://127.0.0.1/files/mcp
    upstream: http://127.0.0.1:1/mcp
    authentication: { methods: [apiKey] }
    tools:
      read_file: files:read
      delete_file: [files:write, files:admin]
      write_file: { scopes: files:read, when: 'args.path.startsWith("/srv/")' }
    resources: { "file:///public/**": files:read }
    prompts: { summarize: files:read }
    methods: { "files/reindex": files:admin }
  - route: /agents/mcp
    resource: http://127.0.0.1/agents/mcp
    upstream: http://127.0.0.1:1/mcp
    authentication: { methods: [jwt] }
    maxDelegationDepth: 2
    tools:
      read_file: { scopes: files:read, when: '!has(identity.claims.act) || identity.claims.act.sub == "agent-42"' }
`,
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('shows a token caller’s delegation chain, decides when rules on it, and refuses a chain past maxDelegationDepth', async () => {
    const tokenActing = (act: Record<string, unknown> | undefined) =>
      signJwt(signer, {
        iss: ISSUER,
        sub: 'alice',
        aud: 'http://127.0.0.1/agents/mcp',
        scope: 'files:read',
        iat: nowSec(),
        exp: nowSec() + 300,
        ...(act === undefined ? {} : { act }),
      });
    const args = [
      'explain',
      '--config',
      config,
      '--route',
      '/agents/mcp',
      '--tool',
      'read_file',
      '--token-stdin',
    ];
    const direct = await run(args, await tokenActing(undefined));
    expect(direct.code).toBe(0);
    expect(direct.stdout).not.toContain('delegated');
    const agent = await run(args, await tokenActing({ sub: 'agent-42', act: { sub: 'orchestrator' } }));
    expect(agent.code).toBe(0);
    expect(agent.stdout).toContain('delegated through agent-42 ← orchestrator (2 actors');
    const otherAgent = await run(args, await tokenActing({ sub: 'agent-7' }));
    expect(otherAgent.code).toBe(1);
    expect(otherAgent.stdout).toContain('argument_denied');
    const tooDeep = await run(
      args,
      await tokenActing({ sub: 'agent-42', act: { sub: 'orchestrator', act: { sub: 'scheduler' } } }),
    );
    expect(tooDeep.code).toBe(1);
    expect(tooDeep.stdout).toContain('rule      maxDelegationDepth 2');
    expect(tooDeep.stdout).toContain('agent-42 ← orchestrator ← scheduler (3 actors');
  });

  it('decides a when rule on the arguments given on stdin', async () => {
    const explainWrite = (args: string) =>
      run(
        [
          'explain',
          '--config',
          config,
          '--route',
          '/files/mcp',
          '--tool',
          'write_file',
          '--scopes',
          'files:read',
          '--args-stdin',
        ],
        args,
      );
    const allowed = await explainWrite('{"path":"/srv/a"}');
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toContain('allow');
    const denied = await explainWrite('{"path":"/etc/passwd"}');
    expect(denied.code).toBe(1);
    expect(denied.stdout).toContain('deny  (argument_denied)');
    expect(denied.stdout).toContain('when      false for these arguments');
    const missing = await explainWrite('{}');
    expect(missing.stdout).toContain('could not be evaluated');
    // stdin holds arguments or a credential, not both.
    const both = await run(
      [
        'explain',
        '--config',
        config,
        '--route',
        '/files/mcp',
        '--tool',
        'write_file',
        '--key-stdin',
        '--args-stdin',
      ],
      '{}',
    );
    expect(both.code).toBe(2);
  });

  it('explains a denial with the rule and the missing scopes, exit 1', async () => {
    const { code, stdout } = await run([
      'explain',
      '--config',
      config,
      '--route',
      '/files/mcp',
      '--tool',
      'delete_file',
      '--scopes',
      'files:write',
    ]);
    expect(code).toBe(1);
    expect(stdout).toContain('deny');
    expect(stdout).toContain('rule      tools.delete_file');
    expect(stdout).toContain('missing   files:admin');
  });

  it('explains with an API key read from stdin, never from the command line, exit 0', async () => {
    const { code, stdout } = await run(
      ['explain', '--config', config, '--route', '/files/mcp', '--tool', 'read_file', '--key-stdin'],
      `${key.key}\n`,
    );
    expect(code).toBe(0);
    expect(stdout).toMatch(/^allow/);
    expect(stdout).toContain('apiKey:ci-bot');
    expect(stdout).not.toContain(key.key);
  });

  it('explains a resource read with a JWT read from stdin, verified against the route', async () => {
    const token = await signJwt(signer, {
      iss: ISSUER,
      sub: 'alice',
      aud: 'http://127.0.0.1/files/mcp',
      scope: 'files:read',
      iat: nowSec(),
      exp: nowSec() + 300,
    });
    const args = [
      'explain',
      '--config',
      config,
      '--route',
      '/files/mcp',
      '--resource',
      'file:///public/q3.pdf',
    ];
    const allowed = await run([...args, '--token-stdin'], `${token}\n`);
    expect(allowed.code).toBe(0);
    expect(allowed.stdout).toMatch(/^allow/);
    expect(allowed.stdout).toContain(`jwt:${ISSUER}|alice`);
    expect(allowed.stdout).not.toContain(token);
    // A token for another audience does not authenticate: deny, exit 1.
    const other = await signJwt(signer, {
      iss: ISSUER,
      sub: 'alice',
      aud: 'https://elsewhere/',
      exp: nowSec() + 300,
    });
    const refused = await run([...args, '--token-stdin'], other);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain('the credential does not authenticate');
  });

  it('explains a prompt and a method beyond the method table, by scopes', async () => {
    const base = ['explain', '--config', config, '--route', '/files/mcp'];
    const prompt = await run([...base, '--prompt', 'summarize', '--scopes', 'files:read']);
    expect(prompt.code).toBe(0);
    expect(prompt.stdout).toContain('rule      prompts.summarize');
    const method = await run([...base, '--method', 'files/reindex', '--scopes', 'files:read']);
    expect(method.code).toBe(1);
    expect(method.stdout).toContain('missing   files:admin');
  });
});

describe('runExplain', () => {
  let dir: string;
  let config: string;
  const key = newApiKey('pk_');
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-explain-'));
    config = join(dir, 'portcullis.yaml');
    writeFileSync(
      config,
      `identities:
  apiKeys: [{ id: reader, hash: "${key.hash}", scopes: [notes:read] }]
  jwt: [{ issuer: "https://idp.example.com/", keys: [{ kty: EC, crv: P-256, x: "${'A'.repeat(43)}", y: "${'A'.repeat(43)}" }] }]
routes:
  - route: /notes/mcp
    resource: http://127.0.0.1/notes/mcp
    upstream: http://127.0.0.1:1/mcp
    authentication: { methods: [apiKey, jwt] }
    tools: { read_note: notes:read, "admin_*": [notes:write, notes:admin] }
    resources: { "notes://public/**": notes:read }
`,
    );
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const explain = (args: string[], input?: string) =>
    runCommand(runExplain, ['--config', config, '--route', '/notes/mcp', ...args], input);

  it('allows a call the scopes cover: exit 0, the rule and the scopes it requires', async () => {
    const { code, stdout } = await explain(['--tool', 'read_note', '--scopes', 'notes:read, other']);
    expect(code).toBe(0);
    expect(stdout).toBe(
      'allow\n  rule      tools.read_note\n  requires  notes:read\n  caller    explain: notes:read other\n',
    );
  });

  it('denies with every missing scope of a glob entry: exit 1', async () => {
    const { code, stdout } = await explain(['--tool', 'admin_purge', '--scopes', 'notes:write']);
    expect(code).toBe(1);
    expect(stdout).toMatch(/^deny/);
    // A pattern is quoted in the rule's path, as the policy file writes it.
    expect(stdout).toContain('  rule      tools."admin_*"\n');
    expect(stdout).toContain('  missing   notes:admin\n');
  });

  it('explains a resource read by its URI', async () => {
    const { code, stdout } = await explain(['--resource', 'notes://public/a', '--scopes', 'notes:read']);
    expect(code).toBe(0);
    expect(stdout).toContain('rule      resources."notes://public/**"');
  });

  it('reads an API key from stdin and names the identity it belongs to, never the key', async () => {
    const { code, stdout } = await explain(['--tool', 'read_note', '--key-stdin'], `${key.key}\n`);
    expect(code).toBe(0);
    expect(stdout).toContain('caller    apiKey:reader: notes:read');
    expect(stdout).not.toContain(key.key);
  });

  it('denies a key or token that does not authenticate, without echoing it: exit 1', async () => {
    const wrongKey = await explain(['--tool', 'read_note', '--key-stdin'], 'pk_not-a-key\n');
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stdout).toMatch(/^deny {2}\(.+: the credential does not authenticate\)\n$/);
    expect(wrongKey.stdout).not.toContain('pk_not-a-key');
    const badToken = await explain(['--tool', 'read_note', '--token-stdin'], 'not.a.jwt\n');
    expect(badToken.code).toBe(1);
    expect(badToken.stdout).toMatch(/^deny {2}\(.+: the credential does not authenticate\)\n$/);
  });

  it.each([
    ['no call', ['--scopes', 'a']],
    ['two calls', ['--tool', 'a', '--prompt', 'b', '--scopes', 'a']],
    ['no identity', ['--tool', 'a']],
    ['two identities', ['--tool', 'a', '--scopes', 'a', '--key-stdin']],
  ])('prints the usage for %s: exit 2', async (_what, args) => {
    const { code, stdout, stderr } = await explain(args);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain('Usage: portcullis explain');
  });

  it('names an unknown route: exit 2', async () => {
    const { code, stderr } = await runCommand(runExplain, [
      '--config',
      config,
      '--route',
      '/nope',
      '--tool',
      'a',
      '--scopes',
      'a',
    ]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^no route \/nope\nUsage/);
  });
});

describe('callOf', () => {
  it('stands for the request each kind of call would send', () => {
    expect(callOf({ tool: 't' })).toEqual({
      kind: 'request',
      id: 1,
      method: 'tools/call',
      params: { name: 't' },
    });
    expect(callOf({ resource: 'file:///a' })).toEqual({
      kind: 'request',
      id: 1,
      method: 'resources/read',
      params: { uri: 'file:///a' },
    });
    expect(callOf({ prompt: 'p' })).toEqual({
      kind: 'request',
      id: 1,
      method: 'prompts/get',
      params: { name: 'p' },
    });
    expect(callOf({ method: 'logging/setLevel' })).toEqual({
      kind: 'request',
      id: 1,
      method: 'logging/setLevel',
    });
  });

  it('is undefined unless exactly one call is named', () => {
    expect(callOf({})).toBeUndefined();
    expect(callOf({ tool: 't', method: 'ping' })).toBeUndefined();
  });
});

describe('describeDecision', () => {
  const identity = { key: 'apiKey:bot', subject: 'bot', methods: [], scopes: new Set<string>() };

  it('says (no scope) for a rule needing none and a caller holding none, and no missing line', () => {
    const allow: Decision = { effect: 'allow', rule: 'default', required: [], missing: [] };
    const text = describeDecision(allow, identity);
    expect(text).toBe(
      'allow\n  rule      default\n  requires  (no scope)\n  caller    apiKey:bot: (no scope)\n',
    );
  });

  it('says when a call is forwarded only after the caller confirms it', () => {
    const allow: Decision = {
      effect: 'allow',
      rule: 'tools.drop',
      required: [],
      missing: [],
      confirm: 'caller',
    };
    expect(describeDecision(allow, identity)).toContain(
      '  confirm   caller: forwarded only after the caller confirms it\n',
    );
  });

  it('says when a call is forwarded only after an approver approves it', () => {
    const allow: Decision = {
      effect: 'allow',
      rule: 'tools.purge',
      required: [],
      missing: [],
      confirm: 'approver',
    };
    expect(describeDecision(allow, identity)).toContain(
      '  confirm   approver: forwarded only after an approver approves it\n',
    );
  });

  it('prints the reason after the effect and the missing scopes last', () => {
    const deny: Decision = {
      effect: 'deny',
      reason: 'insufficient_scope',
      rule: 'tools.x',
      required: ['a', 'b'],
      missing: ['b'],
    };
    const text = describeDecision(deny, { ...identity, scopes: new Set(['a']) });
    expect(text.split('\n')).toEqual([
      'deny  (insufficient_scope)',
      '  rule      tools.x',
      '  requires  a b',
      '  caller    apiKey:bot: a',
      '  missing   b',
      '',
    ]);
  });
});
