/**
 * README's first commands as written: `npm start -- --port P --admin-port A` runs the package's
 * start script (its prestart check of Node and of the build, then `portcullis demo`) and the demo
 * answers on the ports it was given.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/gateway.js';

const ROOT = join(import.meta.dirname, '../..');

describe('npm start', () => {
  let child: ChildProcess;
  let stdout = '';
  let port: number;
  let adminPort: number;

  beforeAll(async () => {
    [port, adminPort] = [await freePort(), await freePort()];
    // Its own process group: npm runs the demo as a grandchild, and the whole group is stopped.
    child = spawn('npm', ['start', '--', '--port', String(port), '--admin-port', String(adminPort)], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout?.setEncoding('utf8');
    child.stdout?.on('data', (chunk: string) => {
      stdout += chunk;
    });
    for (let i = 0; i < 400 && !stdout.includes('Ctrl-C') && child.exitCode === null; i++)
      await new Promise((r) => setTimeout(r, 50));
  });

  afterAll(async () => {
    if (child.pid !== undefined && child.exitCode === null) {
      const exited = once(child, 'exit');
      process.kill(-child.pid, 'SIGTERM');
      await exited;
    }
  });

  it('starts the demo on the ports given after --, ready, and prints the curl line', async () => {
    expect(stdout).toContain(`http://127.0.0.1:${port}/notes/mcp`);
    expect(stdout).toContain('curl -s ');
    const ready = await fetch(`http://127.0.0.1:${adminPort}/readyz`);
    expect(ready.status).toBe(200);
  });
});
