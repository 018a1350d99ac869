/** `portcullis schema` prints the JSON Schema that is published in `schema/`. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runBuiltCli } from '../../support/cli.js';

describe('schema', () => {
  it('prints the published schema/portcullis.schema.json', async () => {
    const { code, stdout } = await runBuiltCli(['schema']);
    expect(code).toBe(0);
    const published = readFileSync(
      join(import.meta.dirname, '../../../schema/portcullis.schema.json'),
      'utf8',
    );
    expect(JSON.parse(stdout)).toEqual(JSON.parse(published));
    expect(JSON.parse(stdout)).toMatchObject({ title: 'Portcullis policy file', required: ['routes'] });
  });
});
