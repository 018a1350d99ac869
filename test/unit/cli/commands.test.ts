/**
 * The demo and its MCP SDK dependencies load only with the `demo` command: importing the gateway,
 * the `start` command or the command table loads neither `@modelcontextprotocol/*` nor `src/demo/`
 * nor `cli/demo`. Checked on the built `dist/` as it ships, by recording every module Node loads
 * in a child process (a `node:module` load hook); the demo command itself is the control that the
 * recording sees them.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const DIST = join(import.meta.dirname, '../../../dist');

/** Registers a load hook, imports each module, prints the URL of every module loaded, as JSON. */
const RECORDER = `
import { registerHooks } from 'node:module';
const loaded = [];
registerHooks({ load(url, context, nextLoad) { loaded.push(url); return nextLoad(url, context); } });
for (const target of process.argv.slice(1)) await import(target);
process.stdout.write(JSON.stringify(loaded));
`;

/** Every module URL loaded by importing `modules` (paths under dist/) in a fresh Node process. */
function modulesLoadedBy(...modules: string[]): Promise<string[]> {
  const targets = modules.map((module) => pathToFileURL(join(DIST, module)).href);
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--no-warnings', '--input-type=module', '-e', RECORDER, ...targets],
      (err, stdout, stderr) => {
        if (err) reject(new Error(`${err.message}\n${stderr}`));
        else resolve(JSON.parse(stdout) as string[]);
      },
    );
  });
}

/** What only the demo may load. */
const demoOnly = (url: string) =>
  url.includes('/node_modules/@modelcontextprotocol/') ||
  url.includes('/dist/demo/') ||
  url.endsWith('/dist/cli/demo.js');

describe('lazy loading of the demo', () => {
  it('importing the gateway, the start command and the command table loads no demo and no MCP SDK', async () => {
    const loaded = await modulesLoadedBy('server/gateway.js', 'cli/start.js', 'cli/commands.js');
    expect(loaded.some((url) => url.endsWith('/dist/server/gateway.js'))).toBe(true);
    expect(loaded.some((url) => url.endsWith('/dist/server/pipeline.js'))).toBe(true);
    expect(loaded.filter(demoOnly)).toEqual([]);
  });

  it('the demo command loads both (the control: the recording sees them)', async () => {
    const loaded = await modulesLoadedBy('cli/demo.js');
    expect(loaded.some((url) => url.includes('/node_modules/@modelcontextprotocol/server/'))).toBe(true);
    expect(loaded.some((url) => url.endsWith('/dist/demo/notes-server.js'))).toBe(true);
  });
});
