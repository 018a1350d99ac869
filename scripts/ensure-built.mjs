// `npm start` on a fresh clone: build once if dist/ is missing or older than src/.
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

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
