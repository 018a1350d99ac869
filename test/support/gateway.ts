import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfigFile, parseConfig } from '../../src/config/load.js';
import { createLogger } from '../../src/logger.js';
import { type Gateway, startGateway } from '../../src/server/gateway.js';

export interface TestGateway extends Gateway {
  /** Audit records written so far (the audit file, flushed and parsed). */
  auditRecords(): Promise<Record<string, unknown>[]>;
  /** The audit file's path. */
  readonly auditFile: string;
}

export interface TestRoute {
  readonly route?: string;
  readonly upstream: string;
  /** Extra YAML lines for the route, indented by the caller's 4 spaces. */
  readonly extra?: string;
}

/**
 * Starts a real gateway on loopback port 0 from a YAML policy built around `routes` (each an
 * `anonymous` route allowing every name — `default: allow` — unless `extra` says otherwise),
 * auditing to a temp file.
 */
export async function startTestGateway(opts: {
  routes?: readonly TestRoute[];
  top?: string;
  env?: NodeJS.ProcessEnv;
  /** Main listener port; default 0 (any free port). */
  port?: number;
  /**
   * The policy's own `identities:`, `routes:` (and any other top-level sections), written in full
   * by the test; the harness adds only `listen`, `admin`, `audit` (and `limits` unless given).
   * Replaces `routes`/`top`.
   */
  policy?: string;
  /** More of the `audit:` section, e.g. `chainKey: "…", arguments: hash`. */
  audit?: string;
  /** The audit file to use (to continue one across restarts); default a new temp file. */
  auditFile?: string;
  /** Where the operational log goes (every level from `info`), to search it; default nowhere. */
  log?: NodeJS.WritableStream;
}): Promise<TestGateway> {
  const port = opts.port ?? 0;
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-test-'));
  const auditFile = opts.auditFile ?? join(dir, 'audit.jsonl');
  const routes = (opts.routes ?? [])
    .map(
      (r) => `  - route: ${r.route ?? '/mcp'}
    resource: http://127.0.0.1${port === 0 ? '' : `:${port}`}${r.route ?? '/mcp'}
    upstream: ${r.upstream}
    authentication: { methods: [anonymous] }
${r.extra?.includes('default:') ? '' : '    default: allow\n'}${r.extra ?? ''}`,
    )
    .join('\n');
  const head = `listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: ${JSON.stringify(auditFile)}${opts.audit === undefined ? '' : `, ${opts.audit}`} }
`;
  const own = opts.policy ?? opts.top ?? '';
  const yaml =
    opts.policy !== undefined
      ? `${head}${own.includes('limits:') ? '' : 'limits: { drainTimeoutMs: 2000 }\n'}${opts.policy}`
      : `${head}${own.includes('limits:') ? '' : 'limits: { drainTimeoutMs: 2000 }'}
${opts.top ?? ''}
identities:
  anonymous: { scopes: [] }
routes:
${routes}`;
  const config = parseConfig(yaml, { env: opts.env ?? {} });
  const logger =
    opts.log === undefined
      ? pino({ level: process.env.TEST_LOG ?? 'silent' })
      : createLogger('info', opts.log);
  const gateway = await startGateway({ config, logger });
  return {
    ...gateway,
    auditFile,
    async close() {
      await gateway.close();
      rmSync(dir, { recursive: true, force: true });
    },
    async auditRecords() {
      // The audit destination gathers records for up to 100 ms: give it time to reach the file.
      await new Promise((resolve) => setTimeout(resolve, 250));
      let text = '';
      try {
        text = readFileSync(auditFile, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      return text
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>);
    },
  };
}

/** A TCP port free at the time of the call, for tests that must know the URL before listening. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * Starts a real gateway from the policy file at `file`, as `portcullis start --config` does: the
 * file is watched, so a test can rewrite it (or swap a symlink) and see the reload. Logs nowhere.
 */
export async function startWatchedGateway(file: string): Promise<Gateway> {
  const loaded = loadConfigFile(file);
  return startGateway({
    config: loaded.config,
    configPath: file,
    configSource: loaded.source,
    logger: pino({ level: 'silent' }),
  });
}
