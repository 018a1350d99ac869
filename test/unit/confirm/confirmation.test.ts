import { describe, expect, it } from 'vitest';
import {
  argumentSummary,
  argumentsHashOf,
  confirmationRequest,
  shownArguments,
  takesForm,
} from '../../../src/confirm/confirmation.js';

import { createUsedNonces } from '../../../src/confirm/used-nonces.js';

describe('what a caller is shown', () => {
  it('quotes and escapes names and values: no name poses as another argument, no control character acts', () => {
    const summary = argumentSummary({
      'table="scratch", note': 'x'.repeat(700),
      table: 'production',
      'a\u001b[2Kb': 'c\u202ed\u009be\u2028f\u200bg',
    }) as string;
    // Every top-level name is there, the long value cut with a count, the real table visible.
    expect(summary).toContain('"table"="production"');
    expect(summary).toContain('…(542 more characters)');
    expect(summary).toContain('"table=\\"scratch\\", note"=');
    // Escape, bidi override, C1 control, line separator and zero-width space: all escaped.
    expect(summary).toContain('"a\\u001b[2Kb"="c\\u202ed\\u009be\\u2028f\\u200bg"');
    for (const raw of ['\u001b', '\u202e', '\u009b', '\u2028', '\u200b']) expect(summary).not.toContain(raw);
  });

  it('masks names that are secrets by whole words, and shows the ones that only look alike', () => {
    const summary = argumentSummary({
      password: 'p',
      api_key: 'k',
      apiKey: 'k',
      clientSecret: 's',
      'db-password': 'p',
      primary_key: 42,
      author: 'ann',
      session_id: 's-1',
      keyspace: 'ks',
    }) as string;
    for (const hidden of ['password', 'api_key', 'apiKey', 'clientSecret', 'db-password'])
      expect(summary).toContain(`"${hidden}"=•••`);
    for (const shown of ['"primary_key"=42', '"author"="ann"', '"session_id"="s-1"', '"keyspace"="ks"'])
      expect(summary).toContain(shown);
  });

  it('says when there are no arguments, and refuses to ask when the whole call cannot be shown', () => {
    expect(argumentSummary(undefined)).toBe('(no arguments)');
    expect(argumentSummary({})).toBe('(no arguments)');
    const many = Object.fromEntries(Array.from({ length: 400 }, (_, i) => [`argument_${i}`, i]));
    expect(argumentSummary(many)).toBeUndefined();
    expect(confirmationRequest('drop', many)).toBeUndefined();
    expect(confirmationRequest('x'.repeat(129), {})).toBeUndefined();
  });
});

describe('used nonces in process', () => {
  it('takes a nonce once, refuses new ones when full of live ones, and makes room as they expire', () => {
    const used = createUsedNonces(2);
    expect(used.consume('a', 100, 0)).toBe(true);
    expect(used.consume('a', 100, 0)).toBe(false);
    expect(used.consume('b', 200, 0)).toBe(true);
    expect(used.consume('c', 200, 50)).toBe('full');
    // 'a' expired at 100: swept when room is needed.
    expect(used.consume('c', 200, 100)).toBe(true);
    expect(used.scope).toMatch(/^process:/);
    expect(createUsedNonces().scope).not.toBe(used.scope);
  });
});

describe('confirmationRequest on 2025-06-18', () => {
  it('says no mode (that version has none); from 2025-11-25 on it says form', () => {
    const modeOf = (request: Record<string, unknown> | undefined) =>
      (request?.params as { mode?: unknown } | undefined)?.mode;
    expect(confirmationRequest('drop', {}, false)).toBeDefined();
    expect(modeOf(confirmationRequest('drop', {}, false))).toBeUndefined();
    expect(modeOf(confirmationRequest('drop', {}))).toBe('form');
  });
});

describe('takesForm', () => {
  it('a form is taken by elicitation: {} (before modes) or with form; never by URL mode alone', () => {
    expect(takesForm({})).toBe(true);
    expect(takesForm({ form: {} })).toBe(true);
    expect(takesForm({ form: {}, url: {} })).toBe(true);
    expect(takesForm({ url: {} })).toBe(false);
    expect(takesForm(undefined)).toBe(false);
    expect(takesForm(true)).toBe(false);
    expect(takesForm([])).toBe(false);
    expect(takesForm(null)).toBe(false);
  });
});

describe('shownArguments (what an approver sees)', () => {
  it('shows the whole call: deep values, long values and secret-looking names, nothing cut or masked', () => {
    const deep = { a: { b: { c: { d: { e: { f: 'DROP TABLE users' } } } } } };
    const long = `SELECT 1 /*${' '.repeat(170)}*/; DROP TABLE users`;
    const text = shownArguments({ deep, long, api_key: 'sk-live-1' }) as string;
    expect(text).toContain('DROP TABLE users');
    expect(text).toContain(long);
    expect(text).toContain('sk-live-1');
  });

  it('escapes control, bidi and zero-width characters; keeps its own line breaks', () => {
    const text = shownArguments({ name: 'a\u202Eb\u200Bc\u0007' }) as string;
    expect(text).toContain('a\\u202eb\\u200bc\\u0007');
    expect(text.split('\n')).toHaveLength(3);
  });

  it('is undefined past 64 KiB: such a call is not asked', () => {
    expect(shownArguments({ big: 'x'.repeat(70_000) })).toBeUndefined();
    expect(shownArguments(undefined)).toBe('{}');
  });
});

describe('argumentsHashOf', () => {
  it('binds arguments with no canonical form (a lone surrogate) too: the same ones alike, others apart', () => {
    const lone = JSON.parse('{"text":"\\ud800"}') as unknown;
    expect(argumentsHashOf(lone)).toBe(argumentsHashOf(JSON.parse('{"text":"\\ud800"}')));
    expect(argumentsHashOf(lone)).not.toBe(argumentsHashOf(JSON.parse('{"text":"\\ud801"}')));
    expect(argumentsHashOf(lone)).not.toBe(argumentsHashOf({ text: '' }));
    // Canonical ones do not depend on key order.
    expect(argumentsHashOf({ a: 1, b: 2 })).toBe(argumentsHashOf({ b: 2, a: 1 }));
  });
});
