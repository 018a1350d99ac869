const USAGE = `Usage: portcullis <command> [options]

Commands:
  start  --config FILE     run the gateway
  check  --config FILE [--connect]
                           validate a policy file; print routes, upstreams, methods, tools and scopes;
                           --connect: list every server's tools and prompts as clients will see them
  demo [--port P] [--admin-port A]
                           start a demo MCP server and the gateway in front of it (npm start)
  keys new [--prefix P] [--id ID]
                           a new API key and the sha256 line for the policy
  keys jwks --config FILE  the JSON Web Key Set of gatewayIdentity.signingKeys (what upstreams verify with)
  explain --config F --route R (--tool T|--resource U|--prompt P|--method M) (--scopes a,b|--key-stdin|--token-stdin)
                           what the policy decides for one call, and why
  test --config F TESTS    expected decisions from a YAML file; exit 1 on a mismatch
  pin --config F --route R [--write | --check]
                           list the route's tools and prompts and diff them against its pin file;
                           --write: write it; --check: exit 1 on any drift
  schema                   print the policy file's JSON Schema
  audit verify FILE [--key-env VAR] [--after SEQ:MAC]
                           check an audit file's HMAC chain; exit 1 at the first broken link
`;

type Command = (args: string[]) => Promise<number>;

/**
 * Each command is loaded only when it runs: `start` never loads the demo upstream and its MCP SDK
 * dependencies, and `keys` or `schema` start no faster than they need to.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  start: async () => (await import('./start.js')).runStart,
  check: async () => (await import('./check.js')).runCheck,
  demo: async () => (await import('./demo.js')).runDemo,
  keys: async () => (await import('./keys.js')).runKeys,
  explain: async () => (await import('./explain.js')).runExplain,
  test: async () => (await import('./test.js')).runPolicyTests,
  pin: async () => (await import('./pin.js')).runPin,
  schema: async () => (await import('./schema.js')).runSchema,
  audit: async () => (await import('./audit.js')).runAudit,
};

/** Runs one command line (`argv` without node and the script); resolves to the exit code. */
export async function runCli(argv: readonly string[]): Promise<number> {
  const [name, ...args] = argv;
  const load = name === undefined ? undefined : COMMANDS[name];
  if (load === undefined) {
    process.stderr.write(USAGE);
    return name === undefined || name === '--help' || name === 'help' ? 0 : 2;
  }
  try {
    return await (await load())(args);
  } catch (err) {
    process.stderr.write(
      `portcullis ${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    return 1;
  }
}
