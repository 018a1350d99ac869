import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REFUSALS } from '../../src/errors.js';

const README = readFileSync(join(import.meta.dirname, '../../README.md'), 'utf8');

function section(name: string): string {
  const start = README.indexOf(`<!-- ${name}:start -->`);
  const end = README.indexOf(`<!-- ${name}:end -->`);
  if (start === -1 || end === -1) throw new Error(`README has no ${name} section`);
  return README.slice(start, end);
}

describe('README', () => {
  it("error table lists exactly the catalogue's refusals with their status and code", () => {
    const rows = section('refusals')
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .map((line) => line.split('|').map((cell) => cell.trim()));
    const table = Object.fromEntries(
      rows.map(([, reason, status, code]) => [
        reason?.replaceAll('`', ''),
        { status: Number(status), rpc: code === '—' ? null : Number(code) },
      ]),
    );
    const catalogue = Object.fromEntries(
      Object.entries(REFUSALS).map(([reason, spec]) => [reason, { status: spec.status, rpc: spec.rpc }]),
    );
    expect(table).toEqual(catalogue);
  });

  it('shows the two commands a new user runs', () => {
    expect(README).toContain('npm install');
    expect(README).toContain('npm start');
    expect(README).toContain('npm test');
  });
});
