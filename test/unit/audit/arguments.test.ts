/**
 * How a request's arguments appear in its audit record (src/audit/arguments.ts): `omit` drops them,
 * `full` keeps them as sent, `redact` masks the values of keys named in `redactKeys` (any case, any
 * depth, inside arrays too) and nothing else, and `hash` replaces each top-level argument with
 * `hmac-sha256:<hex>` — the HMAC, under the chain key, of the argument's JSON, as computed here with
 * node:crypto — so a suspected value can be confirmed but the value itself is never stored.
 */
import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createArgumentsView, jsonText, MAX_VIEW_DEPTH, TOO_DEEP } from '../../../src/audit/arguments.js';
import { verifyText } from '../../../src/audit/chain.js';

const KEY = 'arguments-test-chain-key-0123';
const OTHER_KEY = 'another-chain-key-456789';

/** Argument hashes are made under a key derived from the chain key, never the chain key itself. */
const derived = (key: string) => createHmac('sha256', key).update('portcullis audit arguments v1').digest();
const expectedHash = (key: string, value: unknown) =>
  `hmac-sha256:${createHmac('sha256', derived(key)).update(JSON.stringify(value)).digest('hex')}`;

describe('omit', () => {
  it('drops the arguments, whatever they are', () => {
    const view = createArgumentsView('omit', { redactKeys: ['password'] });
    expect(view({ path: '/etc/passwd', password: 'hunter2' })).toBeUndefined();
    expect(view(['a'])).toBeUndefined();
    expect(view('text')).toBeUndefined();
  });
});

describe('full', () => {
  it('keeps the arguments as sent, secrets included', () => {
    const view = createArgumentsView('full', { redactKeys: ['password'], key: KEY });
    const args = { path: '/etc/passwd', password: 'hunter2', nested: { token: 't' } };
    expect(view(args)).toEqual({ path: '/etc/passwd', password: 'hunter2', nested: { token: 't' } });
    expect(view('text')).toBe('text');
  });
});

describe('redact', () => {
  const view = createArgumentsView('redact', { redactKeys: ['password', 'apiKey', 'Token'] });

  it('masks matching keys case-insensitively at any depth and inside arrays, leaving the rest', () => {
    const args = {
      user: 'ann',
      PASSWORD: 'hunter2',
      nested: {
        apikey: 'pk_live_123',
        deeper: { TOKEN: 'tok-1', keep: 'visible', count: 3 },
      },
      list: [
        { Password: 'p-in-array', name: 'first' },
        'plain string',
        [{ ApiKey: 'k-in-nested-array' }],
        7,
        null,
      ],
      token: { an: 'object', whose: ['whole', 'value'] },
      passwordHint: 'the name of the dog',
    };
    expect(view(args)).toEqual({
      user: 'ann',
      PASSWORD: '[redacted]',
      nested: {
        apikey: '[redacted]',
        deeper: { TOKEN: '[redacted]', keep: 'visible', count: 3 },
      },
      list: [{ Password: '[redacted]', name: 'first' }, 'plain string', [{ ApiKey: '[redacted]' }], 7, null],
      token: '[redacted]',
      // The whole key must match: a key merely containing a secret word is kept.
      passwordHint: 'the name of the dog',
    });
    const written = JSON.stringify(view(args));
    for (const secret of ['hunter2', 'pk_live_123', 'tok-1', 'p-in-array', 'k-in-nested-array', 'whole'])
      expect(written).not.toContain(secret);
  });

  it('redacts inside a top-level array and leaves scalars alone', () => {
    expect(view([{ password: 'x' }, { other: 'y' }])).toEqual([{ password: '[redacted]' }, { other: 'y' }]);
    expect(view('password')).toBe('password');
    expect(view(42)).toBe(42);
  });

  it('does not change the arguments it was given', () => {
    const args = { password: 'hunter2', list: [{ token: 't' }] };
    const copy = structuredClone(args);
    view(args);
    expect(args).toEqual(copy);
  });
});

describe('hash', () => {
  const view = createArgumentsView('hash', { redactKeys: [], key: KEY });

  it('replaces each top-level argument by the HMAC-SHA-256 of its JSON under the key', () => {
    const args = {
      path: '/etc/shadow',
      count: 3,
      flags: { recursive: true, patterns: ['*.key', '*.pem'] },
      nothing: null,
      ok: false,
      text: 'héllo wörld ✓',
    };
    const out = view(args) as Record<string, string>;
    expect(Object.keys(out)).toEqual(Object.keys(args));
    for (const [name, value] of Object.entries(args)) {
      expect(out[name]).toMatch(/^hmac-sha256:[0-9a-f]{64}$/);
      expect(out[name]).toBe(expectedHash(KEY, value));
    }
  });

  it('never contains the plain values', () => {
    const secrets = {
      password: 'correct-horse-battery-staple',
      pin: 480_151_623,
      nested: { inner: 'inner-secret' },
    };
    const written = JSON.stringify(view(secrets));
    expect(written).not.toContain('correct-horse-battery-staple');
    expect(written).not.toContain('480151623');
    expect(written).not.toContain('inner-secret');
    expect(written).not.toContain('inner');
  });

  it('is the same for the same value (so a suspected value can be confirmed) and differs under another key', () => {
    const other = createArgumentsView('hash', { redactKeys: [], key: OTHER_KEY });
    const a = view({ q: 'same value' }) as Record<string, string>;
    const b = view({ q: 'same value' }) as Record<string, string>;
    const c = other({ q: 'same value' }) as Record<string, string>;
    expect(a.q).toBe(b.q);
    expect(c.q).toBe(expectedHash(OTHER_KEY, 'same value'));
    expect(c.q).not.toBe(a.q);
    // Distinct values under one key hash differently, including a string and the number it spells.
    const d = view({ q: 'other value', n: 1, s: '1' }) as Record<string, string>;
    expect(d.q).not.toBe(a.q);
    expect(d.n).not.toBe(d.s);
  });

  it('hashes non-object arguments whole', () => {
    const list = ['a', { b: 'c' }];
    expect(view(list)).toBe(expectedHash(KEY, list));
    expect(view('just a string')).toBe(expectedHash(KEY, 'just a string'));
    expect(view(42)).toBe(expectedHash(KEY, 42));
    expect(view(null)).toBe(expectedHash(KEY, null));
    expect(JSON.stringify(view(list))).not.toContain('"b"');
  });

  it('leaves absent arguments absent', () => {
    expect(view(undefined)).toBeUndefined();
  });

  it('refuses to be created without a key', () => {
    expect(() => createArgumentsView('hash', { redactKeys: [] })).toThrow(/chainKey/);
    expect(() => createArgumentsView('hash', { redactKeys: [], key: undefined })).toThrow(/chainKey/);
  });

  // Were argument hashes made under the chain key itself, a client could send an argument shaped
  // like a first record and find a valid seq-1 MAC for it in the audit file.
  it('an argument hash is never a valid chain MAC (domain separation) is never a valid chain MAC (domain separation)', () => {
    const forged = { seq: 1, time: '2026-01-01T00:00:00.000Z', tool: 'nothing_to_see', decision: 'allow' };
    const audited = view({ smuggled: forged }) as { smuggled: string };
    const mac = audited.smuggled.slice('hmac-sha256:'.length);
    const line = `${JSON.stringify(forged).slice(0, -1)},"mac":"${mac}"}`;
    expect(verifyText(`${line}\n`, KEY).broken).toBeDefined();
  });
});

/** `{"a":{"a":…{"leaf":1}}}` with `depth` objects, built without recursion. */
function nested(depth: number, key = 'a'): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1, password: 'deep-secret' };
  for (let i = 1; i < depth; i++) value = { [key]: value };
  return value;
}

/** How many containers deep `value` goes, counted without recursion. */
function depthOf(value: unknown): number {
  let depth = 0;
  let level: unknown[] = [value];
  while (level.length > 0) {
    const next: unknown[] = [];
    for (const v of level)
      if (typeof v === 'object' && v !== null) for (const c of Object.values(v)) next.push(c);
    if (level.some((v) => typeof v === 'object' && v !== null)) depth++;
    level = next;
  }
  return depth;
}

// Arguments nested as deep as a 4 MB body allows: the attacker's choice. A recursive walk threw
// RangeError inside the exchange's close listener — the process died and the record was lost.
describe('arguments nested beyond any sensible depth', () => {
  const DEPTHS = [3_000, 200_000];

  it.each(DEPTHS)(
    'redact shows %i levels to the bound, then [too deep], and the record serializes',
    (depth) => {
      const view = createArgumentsView('redact', { redactKeys: ['password'] });
      const shown = view({ password: 'top-secret', deep: nested(depth) });
      const text = JSON.stringify(shown);
      expect(text).toContain(`"${TOO_DEEP}"`);
      expect(text).not.toContain('top-secret');
      expect(depthOf(shown)).toBe(MAX_VIEW_DEPTH);
    },
  );

  it.each(DEPTHS)(
    'full shows %i levels to the bound, then [too deep], and the record serializes',
    (depth) => {
      const view = createArgumentsView('full', { redactKeys: [] });
      const args = [nested(depth, 'x')];
      const shown = view(args);
      expect(JSON.stringify(shown)).toContain(`"${TOO_DEEP}"`);
      expect(depthOf(shown)).toBe(MAX_VIEW_DEPTH);
      // The client's value itself is left as it was.
      expect(depthOf(args)).toBe(depth + 1);
    },
  );

  it.each(DEPTHS)('hash hashes all %i levels: the HMAC of exactly the JSON the client sent', (depth) => {
    const view = createArgumentsView('hash', { redactKeys: [], key: KEY });
    const deep = nested(depth);
    // The expected JSON text built by hand, without JSON.stringify (which would overflow here).
    const text = `${'{"a":'.repeat(depth - 1)}{"leaf":1,"password":"deep-secret"}${'}'.repeat(depth - 1)}`;
    const expected = `hmac-sha256:${createHmac('sha256', derived(KEY)).update(text).digest('hex')}`;
    expect((view({ deep }) as { deep: string }).deep).toBe(expected);
    expect(jsonText(deep)).toBe(text);
  });

  it('keeps arguments exactly at the bound whole, in every mode that shows them', () => {
    const atBound = nested(MAX_VIEW_DEPTH);
    for (const mode of ['full', 'redact'] as const) {
      const shown = createArgumentsView(mode, { redactKeys: [] })(atBound);
      expect(JSON.stringify(shown), mode).not.toContain(TOO_DEEP);
      expect(depthOf(shown), mode).toBe(MAX_VIEW_DEPTH);
    }
    expect(createArgumentsView('full', { redactKeys: [] })(atBound)).toBe(atBound);
  });

  it('keeps an argument named __proto__ as a plain member', () => {
    const args = JSON.parse('{"__proto__":{"password":"p"},"x":1}') as unknown;
    const shown = createArgumentsView('redact', { redactKeys: ['password'] })(args) as Record<
      string,
      unknown
    >;
    expect(JSON.stringify(shown)).toBe('{"__proto__":{"password":"[redacted]"},"x":1}');
    expect(Object.getPrototypeOf(shown)).toBe(Object.prototype);
  });
});

describe('jsonText', () => {
  it('writes what JSON.stringify writes for any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(jsonText(value)).toBe(JSON.stringify(value));
      }),
      { numRuns: 2_000, seed: 2 },
    );
  });

  it('matches JSON.stringify on values without a JSON form', () => {
    for (const value of [
      undefined,
      [undefined, () => 1],
      { a: undefined, b: 1, c: Symbol('s') },
      { a: undefined },
    ])
      expect(jsonText(value)).toBe(JSON.stringify(value));
  });
});
