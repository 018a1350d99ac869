import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Config, StdioUpstreamConfig } from '../../config/schema.js';
import { isStdioTarget, upstreamTargets } from '../../config/upstreams.js';

/** Where a process's own `HOME` and `TMPDIR` live; removed when it stops. */
export interface ProcessDirs {
  readonly root: string;
  readonly home: string;
  readonly tmp: string;
}

/** The uid and gid a stdio route's processes run under; both undefined: the gateway's own. */
export interface Account {
  readonly uid: number | undefined;
  readonly gid: number | undefined;
}

let stateRoot: string | undefined;

/**
 * The gateway's state directory for stdio processes: `$PORTCULLIS_STATE_DIR`, else a directory of
 * its own under the system's temporary directory, made once per gateway process (mode 0700).
 */
function stateDirectory(): string {
  if (stateRoot === undefined) {
    const base = process.env.PORTCULLIS_STATE_DIR ?? tmpdir();
    mkdirSync(base, { recursive: true });
    stateRoot = mkdtempSync(join(base, 'portcullis-stdio-'));
    // Traversable, not listable: a child running as another user reaches its own directories
    // inside, and cannot see which others exist.
    chmodSync(stateRoot, 0o711);
  }
  return stateRoot;
}

/** Fresh `HOME` and `TMPDIR` for one process, owned by the account it runs as. */
export function makeProcessDirs(account: Account): ProcessDirs {
  const root = mkdtempSync(join(stateDirectory(), 'p-'));
  const home = join(root, 'home');
  const tmp = join(root, 'tmp');
  mkdirSync(home, { mode: 0o700 });
  mkdirSync(tmp, { mode: 0o700 });
  if (account.uid !== undefined || account.gid !== undefined) {
    const uid = account.uid ?? process.getuid?.() ?? 0;
    const gid = account.gid ?? process.getgid?.() ?? 0;
    // The child must reach its own directories: the root is traversable, nothing more.
    for (const dir of [root, home, tmp]) chownSync(dir, uid, gid);
  }
  return { root, home, tmp };
}

export function removeProcessDirs(dirs: ProcessDirs): void {
  rmSync(dirs.root, { recursive: true, force: true });
}

/**
 * The child's whole environment (DESIGN.md, stdio "Details"): exactly `env`, plus `PATH` and
 * `LANG` from the gateway's own unless `env` sets them, plus its own `HOME` and `TMPDIR`. Nothing
 * else of the gateway's environment — its keys, tokens, Redis URL — ever reaches the child this way.
 */
export function childEnvironment(
  spec: StdioUpstreamConfig,
  dirs: ProcessDirs,
  gateway: NodeJS.ProcessEnv = process.env,
): Record<string, string> {
  const env: Record<string, string> = {};
  for (const name of ['PATH', 'LANG'] as const) {
    const value = gateway[name];
    if (value !== undefined) env[name] = value;
  }
  Object.assign(env, spec.env);
  env.HOME = dirs.home;
  env.TMPDIR = dirs.tmp;
  return env;
}

/**
 * The uid and gid of `user` and `group` (names or numbers), resolved once at load through the
 * system's own database (`id`, `getent`): an unknown name is a load error, never a child started
 * as root by mistake.
 */
export function resolveAccount(spec: StdioUpstreamConfig): Account {
  const uid = spec.user === undefined ? undefined : numericId(spec.user, ['id', '-u']);
  let gid = spec.group === undefined ? undefined : groupId(spec.group);
  // A user without a group runs with that user's primary group, not the gateway's; a numeric uid
  // with no account of its own runs with the group of the same number.
  if (gid === undefined && spec.user !== undefined) {
    try {
      gid = numericId(String(spec.user), ['id', '-g']);
    } catch (err) {
      if (typeof spec.user !== 'number') throw err;
      gid = spec.user;
    }
  }
  return { uid, gid };
}

/** The stdio routes whose `user` or `group` this machine does not know (start and reload refuse them). */
export function accountProblems(config: Config): string[] {
  const problems: string[] = [];
  config.routes.forEach((route, i) => {
    for (const target of upstreamTargets(route, i)) {
      if (!isStdioTarget(target)) continue;
      try {
        resolveAccount(target.upstream);
      } catch (err) {
        problems.push(`${target.field}: ${(err as Error).message}`);
      }
    }
  });
  return problems;
}

function numericId(name: string | number, command: readonly [string, string]): number {
  if (typeof name === 'number') return name;
  const [program, flag] = command;
  try {
    return Number(execFileSync(program, [flag, name], { encoding: 'utf8', stdio: 'pipe' }).trim());
  } catch {
    throw new Error(`unknown user ${JSON.stringify(name)}`);
  }
}

function groupId(name: string | number): number {
  if (typeof name === 'number') return name;
  let line: string;
  try {
    line = execFileSync('getent', ['group', name], { encoding: 'utf8', stdio: 'pipe' });
  } catch {
    throw new Error(`unknown group ${JSON.stringify(name)}`);
  }
  const gid = Number(line.split(':')[2]);
  if (!Number.isInteger(gid)) throw new Error(`unknown group ${JSON.stringify(name)}`);
  return gid;
}
