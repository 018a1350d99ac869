import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkNodeVersion, MINIMUM_NODE } from '../../../src/cli/node-version.js';

const ROOT = join(import.meta.dirname, '../../..');

describe('the Node version gate', () => {
  it('agrees with package.json engines, the one statement of what the gateway needs', () => {
    const engines = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).engines.node;
    expect(engines).toBe(`>=${MINIMUM_NODE.major}.${MINIMUM_NODE.minor}`);
  });

  it.each(['22.19.0', '22.23.5', '24.0.0', '26.12.1', '30.1.0'])('lets Node %s run', (version) => {
    expect(checkNodeVersion(version)).toBeUndefined();
  });

  it.each(['20.20.2', '22.18.9', '18.0.0', '21.99.0'])('refuses Node %s with what to install', (version) => {
    const message = checkNodeVersion(version);
    expect(message).toContain(`this is Node.js ${version}`);
    expect(message).toContain('22.19 or newer');
    expect(message).toContain('nodejs.org');
  });
});
