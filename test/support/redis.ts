/** A real `redis-server` on a free loopback port, started by the test (CI installs the Debian package). */
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './gateway.js';

export interface RedisServer {
  readonly port: number;
  readonly url: string;
  stop(): Promise<void>;
  /** Starts it again on the same port (after `stop`). */
  start(): Promise<void>;
}

export async function startRedis(opts: { readonly args?: readonly string[] } = {}): Promise<RedisServer> {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error('redis-server is not installed: apt-get install -y redis-server (.ci/run does this)');
  }
  const port = await freePort();
  const extra = opts.args ?? [];
  let child: ChildProcess | undefined;
  const start = async () => {
    const proc = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extra],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    child = proc;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`redis-server did not start: ${out}`)), 10_000);
      proc.stdout?.setEncoding('utf8');
      proc.stdout?.on('data', (chunk: string) => {
        out += chunk;
        if (out.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      proc.once('exit', (code) => reject(new Error(`redis-server exited (${code}): ${out}`)));
    });
  };
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    start,
    async stop() {
      if (child === undefined || child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
    },
  };
}

export interface RedisCluster {
  /** `127.0.0.1:port` of every master, as the policy's `redis.cluster.nodes` takes them. */
  readonly nodes: readonly string[];
  readonly servers: readonly RedisServer[];
  stop(): Promise<void>;
}

const execFileAsync = promisify(execFile);

/** A redis-server with cluster mode on and no slots yet; its files under `dir`. */
export async function startClusterNode(
  dir: string,
  name: string,
): Promise<RedisServer & { readonly bus: number }> {
  // The bus port is chosen too: the default (port + 10000) may be past 65535.
  const bus = await freePort();
  const server = await startRedis({
    args: [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(dir, `${name}.conf`),
      '--cluster-port',
      String(bus),
      '--cluster-node-timeout',
      '5000',
      '--dir',
      dir,
    ],
  });
  return Object.assign(server, { bus });
}

/**
 * A Redis Cluster of `size` masters (no replicas) on free loopback ports, made with
 * `redis-cli --cluster create`; resolves once every node reports `cluster_state:ok`.
 */
export async function startRedisCluster(size = 3): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-redis-cluster-'));
  const servers: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(servers.map((s) => s.stop()));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < size; i++) servers.push(await startClusterNode(dir, `nodes-${i}`));
    const nodes = servers.map((s) => `127.0.0.1:${s.port}`);
    await execFileAsync(
      'redis-cli',
      ['--cluster', 'create', ...nodes, '--cluster-replicas', '0', '--cluster-yes'],
      { timeout: 30_000 },
    );
    const deadline = Date.now() + 15_000;
    for (const server of servers) {
      for (;;) {
        const { stdout } = await execFileAsync('redis-cli', ['-p', String(server.port), 'cluster', 'info']);
        if (stdout.includes('cluster_state:ok')) break;
        if (Date.now() > deadline) throw new Error(`redis cluster not ok: ${stdout}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    return { nodes, servers, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Waits until a Redis limiter reports its connection ready (its first command would reach Redis). */
export async function untilHealthy(limiter: { healthy(): boolean }, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!limiter.healthy()) {
    if (Date.now() > deadline) throw new Error('the Redis limiter never connected');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
