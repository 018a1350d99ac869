import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../../../src/config/load.js';
import { type StdioUpstreamConfig, stdioUpstreamSchema } from '../../../../src/config/schema.js';
import {
  accountProblems,
  childEnvironment,
  makeProcessDirs,
  type ProcessDirs,
  removeProcessDirs,
  resolveAccount,
} from '../../../../src/upstream/stdio/environment.js';

const spec = (over: Record<string, unknown> = {}): StdioUpstreamConfig =>
  stdioUpstreamSchema.parse({ command: ['server'], ...over });

const DIRS: ProcessDirs = { root: '/state/p-1', home: '/state/p-1/home', tmp: '/state/p-1/tmp' };

const GATEWAY: NodeJS.ProcessEnv = {
  PATH: '/usr/local/bin:/usr/bin',
  LANG: 'C.UTF-8',
  HOME: '/root',
  TMPDIR: '/var/tmp',
  PORTCULLIS_SEAL_KEY: 'secret-key',
  REDIS_URL: 'redis://:password@redis:6379',
  AWS_SECRET_ACCESS_KEY: 'aws',
  LC_ALL: 'C',
  NODE_OPTIONS: '--require /tmp/evil.js',
};

/** A passwd entry whose primary group differs from its uid (Debian: `sync`, 4 → 65534). */
function userWithOtherGroup(): { name: string; uid: number; gid: number } {
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === undefined || uid === undefined || gid === undefined || uid === gid) continue;
    if (!/^[a-z_][a-z0-9_.-]*$/.test(name)) continue;
    return { name, uid: Number(uid), gid: Number(gid) };
  }
  throw new Error('no user in /etc/passwd whose primary group differs from its uid');
}

describe('childEnvironment', () => {
  it('is exactly env, PATH and LANG from the gateway, and the process’s own HOME and TMPDIR', () => {
    expect(childEnvironment(spec({ env: { GITHUB_TOKEN: 'ghp', MODE: 'ro' } }), DIRS, GATEWAY)).toEqual({
      GITHUB_TOKEN: 'ghp',
      MODE: 'ro',
      PATH: '/usr/local/bin:/usr/bin',
      LANG: 'C.UTF-8',
      HOME: '/state/p-1/home',
      TMPDIR: '/state/p-1/tmp',
    });
  });

  it('lets env set PATH and LANG, never HOME or TMPDIR', () => {
    const env = childEnvironment(
      spec({ env: { PATH: '/opt/server/bin', LANG: 'de_DE.UTF-8', HOME: '/root', TMPDIR: '/tmp' } }),
      DIRS,
      GATEWAY,
    );
    expect(env).toEqual({
      PATH: '/opt/server/bin',
      LANG: 'de_DE.UTF-8',
      HOME: '/state/p-1/home',
      TMPDIR: '/state/p-1/tmp',
    });
  });

  it('leaves PATH and LANG out when the gateway has none', () => {
    expect(childEnvironment(spec(), DIRS, { SECRET: 'x' })).toEqual({ HOME: DIRS.home, TMPDIR: DIRS.tmp });
  });

  it('reads the gateway’s real environment by default, and passes none of its other variables', () => {
    const env = childEnvironment(spec(), DIRS);
    const expected: Record<string, string> = { HOME: DIRS.home, TMPDIR: DIRS.tmp };
    if (process.env.PATH !== undefined) expected.PATH = process.env.PATH;
    if (process.env.LANG !== undefined) expected.LANG = process.env.LANG;
    expect(env).toEqual(expected);
  });
});

describe('makeProcessDirs and removeProcessDirs', () => {
  it('makes fresh 0700 HOME and TMPDIR under a traversable, unlistable state directory, and removes them', () => {
    const a = makeProcessDirs({ uid: undefined, gid: undefined });
    const b = makeProcessDirs({ uid: undefined, gid: undefined });
    expect(a.root).not.toBe(b.root);
    expect(dirname(a.root)).toBe(dirname(b.root));
    expect(statSync(dirname(a.root)).mode & 0o777).toBe(0o711);
    expect(a.home).toBe(`${a.root}/home`);
    expect(a.tmp).toBe(`${a.root}/tmp`);
    expect(statSync(a.home).mode & 0o777).toBe(0o700);
    expect(statSync(a.tmp).mode & 0o777).toBe(0o700);
    removeProcessDirs(a);
    expect(existsSync(a.root)).toBe(false);
    expect(existsSync(b.home)).toBe(true);
    removeProcessDirs(b);
    removeProcessDirs(b);
    expect(existsSync(b.root)).toBe(false);
  });

  it('gives the directories to the account the process runs as', () => {
    // Only root may give a file away; anyone may "give" it to themselves.
    const uid = process.getuid?.() === 0 ? 65534 : (process.getuid?.() ?? 0);
    const gid = process.getuid?.() === 0 ? 65533 : (process.getgid?.() ?? 0);
    const dirs = makeProcessDirs({ uid, gid });
    for (const dir of [dirs.root, dirs.home, dirs.tmp]) {
      expect(statSync(dir).uid).toBe(uid);
      expect(statSync(dir).gid).toBe(gid);
    }
    removeProcessDirs(dirs);
  });
});

describe('resolveAccount', () => {
  it('is the gateway’s own account (both undefined) without user or group', () => {
    expect(resolveAccount(spec())).toEqual({ uid: undefined, gid: undefined });
  });

  it('takes numeric ids as they are when both are given', () => {
    expect(resolveAccount(spec({ user: 12345, group: 23456 }))).toEqual({ uid: 12345, gid: 23456 });
    expect(resolveAccount(spec({ group: 0 }))).toEqual({ uid: undefined, gid: 0 });
  });

  it('resolves names through the system database: nobody, root, and a group name', () => {
    const nobody = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
    const nobodyGroup = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
    expect(resolveAccount(spec({ user: 'nobody' }))).toEqual({ uid: nobody, gid: nobodyGroup });
    expect(resolveAccount(spec({ user: 'root', group: 'root' }))).toEqual({ uid: 0, gid: 0 });
    expect(resolveAccount(spec({ user: 'nobody', group: 'root' }))).toEqual({ uid: nobody, gid: 0 });
  });

  it('runs a named user without a group under that user’s primary group', () => {
    const user = userWithOtherGroup();
    expect(resolveAccount(spec({ user: user.name }))).toEqual({ uid: user.uid, gid: user.gid });
  });

  it('runs a numeric user without a group under that user’s primary group, not a group numbered like the uid', () => {
    // Debian's `sync` is uid 4 with primary group 65534; gid 4 is `adm`, which reads /var/log.
    const user = userWithOtherGroup();
    expect(resolveAccount(spec({ user: user.uid }))).toEqual({ uid: user.uid, gid: user.gid });
  });

  it('throws on an unknown user or group name, never falling back to the gateway’s account', () => {
    expect(() => resolveAccount(spec({ user: 'no-such-user-xyz' }))).toThrow(
      'unknown user "no-such-user-xyz"',
    );
    expect(() => resolveAccount(spec({ group: 'no-such-group-xyz' }))).toThrow(
      'unknown group "no-such-group-xyz"',
    );
    expect(() => resolveAccount(spec({ user: 'root', group: 'no-such-group-xyz' }))).toThrow(
      'unknown group "no-such-group-xyz"',
    );
  });
});

describe('accountProblems', () => {
  const config = (upstreams: string[]) =>
    parseConfig(
      `identities: { anonymous: { scopes: [] } }
routes:
${upstreams
  .map(
    (upstream, i) => `  - route: /r${i}/mcp
    resource: http://127.0.0.1/r${i}/mcp
    upstream: ${upstream}
    authentication: { methods: [anonymous] }
`,
  )
  .join('')}`,
      { env: {} },
    );

  it('names every stdio route whose user or group this machine does not know, and only those', () => {
    const problems = accountProblems(
      config([
        'http://127.0.0.1:9/mcp',
        '{ command: [server], user: nobody }',
        '{ command: [server], user: no-such-user-xyz }',
        '{ command: [server] }',
        '{ command: [server], user: root, group: no-such-group-xyz }',
      ]),
    );
    expect(problems).toEqual([
      'routes[2].upstream: unknown user "no-such-user-xyz"',
      'routes[4].upstream: unknown group "no-such-group-xyz"',
    ]);
  });

  it('is empty when every account resolves', () => {
    expect(accountProblems(config(['{ command: [server], user: 0, group: root }']))).toEqual([]);
  });
});
