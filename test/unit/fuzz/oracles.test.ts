import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runTarget, streamOf, type Target } from '../../../fuzz/harness.js';
import { dispatchedData } from '../../../fuzz/oracles/event-stream.js';
import { foldCase, numberChanges, readJson } from '../../../fuzz/oracles/json-reference.js';
import { Prng } from '../../../fuzz/prng.js';
import { landsWell, zoneOf } from '../../../fuzz/targets/uri.js';

// The fuzzer is only as good as its oracles: these pin the reference readers to the standards
// they claim to follow, so a clean fuzz run means something.

describe('reference JSON reader', () => {
  it('says a text is JSON exactly when JSON.parse does', () => {
    const texts = fc.oneof(
      fc.json(),
      fc.string(),
      fc
        .tuple(fc.json(), fc.nat(), fc.constantFrom('', ',', '}', ']', '"', '\\', '\u0001', 'x'))
        .map(
          ([json, at, junk]) =>
            json.slice(0, at % (json.length + 1)) + junk + json.slice(at % (json.length + 1)),
        ),
    );
    fc.assert(
      fc.property(texts, (text) => {
        let valid = true;
        try {
          JSON.parse(text);
        } catch {
          valid = false;
        }
        expect(readJson(text).valid).toBe(valid);
      }),
      { numRuns: 2000 },
    );
  });

  it('finds a repeated key however it is escaped, and keys equal after case folding', () => {
    expect(readJson('{"a":1,"\\u0061":2}').duplicateKey).toBe(true);
    expect(readJson('{"a":{"b":1},"b":2}').duplicateKey).toBe(false);
    expect(readJson('{"params":1,"param\u017f":2}').foldedDuplicateKey).toBe(true);
    expect(readJson('{"name":1,"NAME":2}').foldedDuplicateKey).toBe(true);
    expect(readJson('{"k":1,"\u212a":2}').foldedDuplicateKey).toBe(true);
    expect(readJson('{"ss":1,"\u00df":2}').foldedDuplicateKey).toBe(false);
    expect(foldCase('Method')).toBe('method');
  });

  it('measures nesting and spots numbers that change on a round trip', () => {
    expect(readJson(`${'['.repeat(5000)}${']'.repeat(5000)}`).maxDepth).toBe(5000);
    expect(readJson('{"a":[{}]}').maxDepth).toBe(3);
    for (const same of ['1', '1.0', '-0', '0.1', '1e3', '12.50e-1', '9007199254740991', '1e21'])
      expect(numberChanges(same), same).toBe(false);
    for (const changed of [
      '9007199254740993',
      '1e400',
      '2e-324',
      '1.00000000000000000001',
      '0.30000000000000004441',
    ])
      expect(numberChanges(changed), changed).toBe(true);
  });
});

describe('reference event-stream reader (HTML, interpreting an event stream)', () => {
  const read = (text: string) => dispatchedData(Buffer.from(text, 'utf8'));

  it('joins data lines with LF and dispatches on a blank line', () => {
    expect(read('data: YHOO\ndata: +2\ndata: 10\n\n')).toEqual(['YHOO\n+2\n10']);
    expect(read('data:test\n\ndata: test\n\n')).toEqual(['test', 'test']);
    expect(read('data\n\ndata\ndata\n\ndata:')).toEqual(['', '\n']);
    expect(read(': comment\nevent: x\nid: 1\nData: no\ndata : no\n\n')).toEqual([]);
  });

  it('ends lines at CRLF, LF or a lone CR, also at the end of the stream', () => {
    expect(read('data: a\r\n\r\ndata: b\r\rdata: c\n\r')).toEqual(['a', 'b', 'c']);
    expect(read('data: a\n')).toEqual([]);
    expect(read('\ufeffdata: a\n\n')).toEqual(['a']);
  });
});

describe('resource URI oracle', () => {
  it('places a URI where a WHATWG parser resolves it', () => {
    expect(zoneOf(new URL('file:///public/.\t./secret/a'))).toBe('deny');
    expect(zoneOf(new URL('file:///public/a'))).toBe('allow');
    expect(zoneOf(new URL('https://INTERNAL.example.com:443/x'))).toBe('deny');
    expect(landsWell('file:///public/%2e%2e/secret/a', 'allow')).toBe('file:///secret/a');
    expect(landsWell('file:///public/a', 'deny')).toBeUndefined();
  });
});

describe('harness', () => {
  const target = (check: (n: number) => string | undefined): Target<number> => ({
    name: 'probe',
    weight: 1,
    generate: (rng) => rng.int(1000),
    check: (n, clock) => clock.time(() => check(n)),
    describe: String,
  });

  it('reports a throw and an oracle failure with seed and iteration, and replays the same input', async () => {
    const inputs: number[] = [];
    for (let i = 0; i < 20; i++) inputs.push(new Prng(7, streamOf('probe'), i).int(1000));
    const failures: { iteration: number; message: string; input: string }[] = [];
    const result = await runTarget(
      target((n) => {
        if (n === inputs[3]) throw new Error('boom');
        return n === inputs[5] ? 'oracle: wrong' : undefined;
      }),
      { seed: 7, inputs: 6, from: 0, limitMs: 100, maxFailures: 10, onFailure: (f) => failures.push(f) },
    );
    expect(result.failures).toBe(2);
    expect(failures.map((f) => f.iteration)).toEqual([3, 5]);
    expect(failures[0]?.message).toMatch(/^threw Error: boom/);
    expect(failures[1]?.input).toBe(String(inputs[5]));
  });

  it('fails an input whose call takes longer than the limit', async () => {
    const failures: string[] = [];
    // Spin on CPU time, not wall time: on a busy machine a wall-clock spin may get little CPU.
    const spin = () => {
      const start = process.cpuUsage();
      for (;;) {
        const used = process.cpuUsage(start);
        if (used.user + used.system > 40_000) return undefined;
      }
    };
    await runTarget(target(spin), {
      seed: 1,
      inputs: 1,
      from: 0,
      limitMs: 10,
      maxFailures: 1,
      onFailure: (f) => failures.push(f.message),
    });
    expect(failures[0]).toMatch(/^slow: /);
  });
});
