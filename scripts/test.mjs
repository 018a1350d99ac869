// `npm test`: vitest under the Node that runs npm when it is a supported one, else under the Node
// this script runs on. npm puts node_modules/.bin first on a script's PATH, and the dev dependency
// `node22` links a `node` there, so a bare `node` in a script is always that Node 22: CI's second
// pass (Node 26 first on PATH) and anyone testing on their own Node 24 or 26 would silently test
// on 22. npm records the Node it runs under in npm_node_execpath.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

const engines = JSON.parse(readFileSync('package.json', 'utf8')).engines.node;
const [needMajor, needMinor] = engines.replace('>=', '').split('.').map(Number);
const supported = (version) => {
  const [major, minor] = version.replace(/^v/, '').split('.').map(Number);
  return major > needMajor || (major === needMajor && minor >= needMinor);
};

const outer = process.env.npm_node_execpath;
const outerVersion = outer ? spawnSync(outer, ['--version'], { encoding: 'utf8' }).stdout?.trim() : undefined;
const node = outerVersion && supported(outerVersion) ? outer : process.execPath;
const version = node === process.execPath ? process.version : outerVersion;
if (outerVersion && node !== outer)
  process.stderr.write(
    `npm test: Node ${outerVersion} is not supported (${engines}); testing on ${version}\n`,
  );
process.stderr.write(`npm test: Node ${version} (${node})\n`);

const child = spawn(node, ['node_modules/vitest/vitest.mjs', 'run', ...process.argv.slice(2)], {
  stdio: 'inherit',
  // Child processes the tests spawn by name (`node …`) find the same Node first.
  env: { ...process.env, PATH: `${node.slice(0, node.lastIndexOf('/'))}:${process.env.PATH}` },
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
