import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../../../src/config/load.js';
import { PinStore } from '../../../src/integrity/pin-store.js';
import { pinsOf, serializePins } from '../../../src/integrity/pins.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const config = (volatile: string) =>
  parseConfig(
    `identities: { anonymous: { scopes: [] } }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: http://127.0.0.1:1/mcp
    authentication: { methods: [anonymous] }
    pins: pins.json
    volatileMeta: [${volatile}]
`,
    { env: {} },
  );

describe('the pin store', () => {
  it('reads a route’s pin file relative to its base; a missing file pins nothing; a bad one keeps the pins in force', () => {
    const dir = mkdtempSync(join(tmpdir(), 'portcullis-pin-store-'));
    dirs.push(dir);
    const store = new PinStore(dir, pino({ level: 'silent' }), undefined);
    store.sync(config(''));
    expect(store.get('pins.json').size).toBe(0);
    const definition = { name: 'echo', _meta: { 'vendor/rev': 1 } };
    writeFileSync(
      join(dir, 'pins.json'),
      serializePins('/mcp', pinsOf([{ kind: 'tool', server: undefined, definition }], new Set()).pins),
    );
    store.sync(config(''));
    expect(store.get('pins.json').get('tool', undefined, 'echo')).toBeDefined();
    writeFileSync(join(dir, 'pins.json'), '{ not json');
    store.sync(config(''));
    expect(store.get('pins.json').size).toBe(1);
    // A reload that changes volatileMeta re-reads the file under the new set.
    writeFileSync(
      join(dir, 'pins.json'),
      serializePins(
        '/mcp',
        pinsOf([{ kind: 'tool', server: undefined, definition }], new Set(['vendor/rev'])).pins,
      ),
    );
    store.sync(config('"vendor/rev"'));
    expect(store.get('pins.json').get('tool', undefined, 'echo')?.definition).toEqual({ name: 'echo' });
  });
});
