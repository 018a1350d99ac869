/** `withoutDeniedUpdates`: a `resources/updated` reaches only a caller who may read its URI now. */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/auth/identity.js';
import { type CompiledPolicy, compileTable } from '../../../src/policy/compile.js';
import {
  mayNameUpdate,
  mayReceiveUpdate,
  withoutDeniedUpdates,
} from '../../../src/policy/resource-updates.js';

const policy = (mode: 'enforce' | 'shadow' = 'enforce'): CompiledPolicy => ({
  tools: compileTable('tools', {}),
  resources: compileTable('resources', { 'file:///public/**': 'read', 'file:///secret/**': 'secret' }),
  prompts: compileTable('prompts', {}),
  methods: compileTable('methods', {}),
  defaultEffect: 'deny',
  mode,
});
const reader: Identity = { key: 'apiKey:r', subject: 'r', methods: ['apiKey'], scopes: new Set(['read']) };
const may = (uri: unknown) => mayReceiveUpdate(policy(), uri, reader);
const check = (text: string) => withoutDeniedUpdates(text, may, 64);
const METHOD = 'notifications/resources/updated';
const updated = (uri: unknown) => JSON.stringify({ jsonrpc: '2.0', method: METHOD, params: { uri } });

describe('mayReceiveUpdate: decided as a resources/read of the URI', () => {
  it('allows what the caller may read, by canonical URI; denies the rest and every malformed URI', () => {
    expect(may('file:///public/a')).toBe(true);
    expect(may('FILE:///public/a')).toBe(true);
    expect(may('file:///secret/a')).toBe(false);
    expect(may('file:///public/../secret/a')).toBe(false);
    expect(may('file:///unlisted')).toBe(false);
    expect(may(7)).toBe(false);
    expect(may(undefined)).toBe(false);
  });

  it('does not enforce a scope denial in shadow mode, but never delivers a malformed URI', () => {
    expect(mayReceiveUpdate(policy('shadow'), 'file:///secret/a', reader)).toBe(true);
    expect(mayReceiveUpdate(policy('shadow'), 'file:///public/%2e%2e/secret', reader)).toBe(false);
    expect(mayReceiveUpdate(policy('shadow'), ['file:///public/a'], reader)).toBe(false);
  });
});

describe('withoutDeniedUpdates', () => {
  it('leaves events without a denied update as they came (undefined)', () => {
    expect(check(updated('file:///public/a'))).toBeUndefined();
    expect(
      check('{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"updated"}]}}'),
    ).toBeUndefined();
    expect(check('{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"x"}}')).toBeUndefined();
    expect(check('')).toBeUndefined();
  });

  it('drops an update the caller may not read, and one whose params or uri are malformed', () => {
    expect(check(updated('file:///secret/a'))).toBe('drop');
    expect(check(updated(null))).toBe('drop');
    expect(check(JSON.stringify({ jsonrpc: '2.0', method: METHOD }))).toBe('drop');
    expect(check(JSON.stringify({ jsonrpc: '2.0', method: METHOD, params: ['file:///public/a'] }))).toBe(
      'drop',
    );
  });

  it('drops what a case-insensitive decoder would read as the method, params or uri', () => {
    expect(
      check(JSON.stringify({ jsonrpc: '2.0', Method: METHOD, params: { uri: 'file:///secret/a' } })),
    ).toBe('drop');
    expect(
      check(
        JSON.stringify({
          method: METHOD,
          params: { uri: 'file:///public/a' },
          PARAMS: { uri: 'file:///secret/a' },
        }),
      ),
    ).toBe('drop');
    expect(
      check(JSON.stringify({ method: METHOD, params: { uri: 'file:///public/a', URI: 'file:///secret/a' } })),
    ).toBe('drop');
  });

  it('finds the method however it is escaped', () => {
    const escaped = `{"method":"notifications\\/resources\\/\\u0075pdated","params":{"uri":"file:\\/\\/\\/secret\\/a"}}`;
    expect(JSON.parse(escaped)).toMatchObject({ method: METHOD });
    expect(check(escaped)).toBe('drop');
  });

  it('drops data that might name the method but cannot be read: not JSON, too deep', () => {
    expect(check(`{"method":"${METHOD}",`)).toBe('drop');
    expect(withoutDeniedUpdates(`${'['.repeat(70)}"updated"${']'.repeat(70)}`, may, 64)).toBe('drop');
  });

  it('keeps the other members of a batch, and drops a batch of nothing but denied updates', () => {
    const batch = `[${updated('file:///secret/a')},${updated('file:///public/b')},{"jsonrpc":"2.0","id":3,"result":{}}]`;
    expect(JSON.parse(check(batch) as string)).toEqual([
      JSON.parse(updated('file:///public/b')),
      { jsonrpc: '2.0', id: 3, result: {} },
    ]);
    expect(check(`[${updated('file:///secret/a')},${updated(5)}]`)).toBe('drop');
    expect(check(`[${updated('file:///public/a')}]`)).toBeUndefined();
  });

  it('asks for nothing when the data cannot spell the method', () => {
    const asked: unknown[] = [];
    const text = '{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"a\\nb"}]}}';
    expect(
      withoutDeniedUpdates(
        text,
        (uri) => {
          asked.push(uri);
          return false;
        },
        64,
      ),
    ).toBeUndefined();
    expect(asked).toEqual([]);
  });
});

describe('mayNameUpdate: the raw-text pre-check', () => {
  /** Each character of `text` as JSON may write it in a string: itself, `\uXXXX` (any case), or its short escape. */
  const spelled = (text: string) =>
    fc.array(fc.nat(), { minLength: text.length, maxLength: text.length }).map((choices) =>
      [...text]
        .map((char, i) => {
          const choice = (choices[i] as number) % 4;
          const hex = char.charCodeAt(0).toString(16).padStart(4, '0');
          if (choice === 1) return `\\u${hex}`;
          if (choice === 2) return `\\u${hex.toUpperCase()}`;
          if (choice === 3 && char === '/') return '\\/';
          return char;
        })
        .join(''),
    );

  it('never misses a spelling of the method that JSON.parse reads as the method', () => {
    fc.assert(
      fc.property(spelled(METHOD), fc.boolean(), (method, asKey) => {
        const text = asKey
          ? `{"${method}":1}`
          : `{"jsonrpc":"2.0","method":"${method}","params":{"uri":"x"}}`;
        const parsed = JSON.parse(text) as Record<string, unknown>;
        expect(asKey ? Object.keys(parsed) : parsed.method).toEqual(asKey ? [METHOD] : METHOD);
        expect(mayNameUpdate(text)).toBe(true);
      }),
      { numRuns: 500 },
    );
  });

  it('is false for text with neither the last segment nor a \\u escape (a plain call answer)', () => {
    expect(
      mayNameUpdate('{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"a\\n\\"b\\""}]}}'),
    ).toBe(false);
  });
});
