import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isRefusal, type Refusal, refusalBody } from '../../../src/errors.js';
import { foldKey } from '../../../src/jsonrpc/case-fold.js';
import { MAX_BATCH_MESSAGES, type ParsedBody, parseJsonRpc } from '../../../src/jsonrpc/parse.js';
import { checkStrictJson, numberSurvives, type ScannedText } from '../../../src/jsonrpc/strict-json.js';

const single = { allowBatch: false } as const;
const batches = { allowBatch: true } as const;

function refused(text: string | ScannedText, opts: { allowBatch: boolean } = single): Refusal {
  const result = parseJsonRpc(text, opts);
  if (!isRefusal(result)) throw new Error(`expected a refusal for ${text}`);
  return result;
}

function parsed(text: string | ScannedText, opts: { allowBatch: boolean } = single): ParsedBody {
  const result = parseJsonRpc(text, opts);
  if (isRefusal(result)) throw new Error(`expected ${text} to parse, got ${result.reason}`);
  return result;
}

/** What the client would read: the refusal's body as JSON. */
function answer(refusal: Refusal): unknown {
  return JSON.parse(refusalBody(refusal));
}

const MAX_SAFE = '9007199254740991';

/** A JSON number that survives re-serialization: a safe integer or any double JSON.stringify can write. */
const survivingNumber = fc.oneof(
  fc.maxSafeInteger(),
  fc
    .double({ noNaN: true, noDefaultInfinity: true })
    .filter((d) => !Number.isInteger(d) || Number.isSafeInteger(d) || Math.abs(d) >= 1e21),
);

/** An object whose keys (any Unicode, escapes included) are distinct even after case folding. */
function objectOf(value: fc.Arbitrary<unknown>): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .uniqueArray(fc.tuple(fc.string({ unit: 'binary' }), value), {
      maxLength: 5,
      selector: ([key]) => foldKey(key),
    })
    .map((entries) => Object.fromEntries(entries));
}

/** JSON values with unique keys and numbers that survive. */
const { json: strictJsonValue } = fc.letrec<{ json: unknown }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', maxDepth: 4 },
    fc.constant(null),
    fc.boolean(),
    survivingNumber,
    fc.string({ unit: 'binary' }),
    fc.array(tie('json'), { maxLength: 5 }),
    objectOf(tie('json')),
  ),
}));

const jsonObject = objectOf(strictJsonValue);
const rpcId = fc.oneof(fc.string(), fc.maxSafeInteger());

describe('checkStrictJson: duplicate keys', () => {
  it.each([
    ['at the top level', '{"a":1,"a":2}'],
    ['with the same value', '{"a":1,"a":1}'],
    ['one level down', '{"p":{"a":1,"a":2}}'],
    ['inside an array inside an object', '{"p":[1,{"x":{"a":1,"b":2,"a":3}}]}'],
    ['after a nested object closes', '{"a":{"b":1},"a":2}'],
    ['after a nested array closes', '{"a":[{"a":1}],"b":1,"a":2}'],
    ['with whitespace around the colon and commas', '{ "a" : 1 ,\n\t"a" : 2 }'],
    ['written once plainly and once as \\u0061', '{"a":1,"\\u0061":2}'],
    ['written with upper- and lower-case hex escapes', '{"\\u004a":1,"\\u004A":2}'],
    ['written once with an escaped slash', '{"a/b":1,"a\\/b":2}'],
    ['written as a surrogate pair and as the literal character', '{"😀":1,"\\ud83d\\ude00":2}'],
    ['in the empty key', '{"":1,"":2}'],
    ['named __proto__', '{"__proto__":1,"__proto__":2}'],
  ])('refuses a key repeated %s', (_, text) => {
    expect(checkStrictJson(text)).toBe('duplicate_key');
  });

  it.each([
    ['the same key in sibling objects', '[{"a":1},{"a":2}]'],
    ['the same key in a parent and a child', '{"a":{"a":{"a":1}}}'],
    ['a value equal to its key', '{"a":"a","b":"a"}'],
    ['array elements equal to a key', '{"a":["a","a"],"b":1}'],
    ['a string value that contains a duplicate-key object', '{"a":"{\\"a\\":1,\\"a\\":2}"}'],
    ['a string value that looks like a key and colon', '{"a":"\\",\\"a\\":","b":1}'],
    ['a string ending in an escaped backslash', '{"a":"\\\\","b":"\\\\\\"","c":1}'],
    ['keys that differ only by Unicode normalization', '{"é":1,"e\\u0301":2}'],
    ['an empty object followed by more keys', '{"a":{},"b":[],"c":{}}'],
  ])('accepts %s', (_, text) => {
    expect(checkStrictJson(text)).toBeUndefined();
  });
});

describe('checkStrictJson: numbers', () => {
  it.each([
    ['2^53 - 1', MAX_SAFE],
    ['-(2^53 - 1)', `-${MAX_SAFE}`],
    ['zero', '0'],
    ['negative zero', '-0'],
    ['negative zero with a fraction', '-0.0'],
    ['1.5', '1.5'],
    ['1e2', '1e2'],
    ['1E+2', '1E+2'],
    ['1.0', '1.0'],
    ['trailing zeros in the fraction', '2.50000'],
    ['0.1', '0.1'],
    ['the smallest subnormal', '5e-324'],
    ['the largest double', '1.7976931348623157e308'],
    ['an integer written with an exponent beyond 2^53 that is exact', '1e21'],
    ['zero with a huge exponent', '0e400'],
  ])('accepts %s, which survives the round trip', (_, token) => {
    expect(numberSurvives(token)).toBe(true);
    expect(checkStrictJson(`{"n":${token}}`)).toBeUndefined();
  });

  it.each([
    ['2^53 + 1', '9007199254740993'],
    ['-(2^53 + 1)', '-9007199254740993'],
    ['a 20-digit integer', '12345678901234567890'],
    ['an overflow', '1e400'],
    ['a negative overflow', '-1e400'],
    ['an underflow that becomes zero', '1e-400'],
    ['a float with more precision than a double', '0.1000000000000000055511151231257827'],
    ['0.10000000000000001', '0.10000000000000001'],
    ['2^53 + 1 written with a fraction', '9007199254740993.0'],
  ])('refuses %s, which would change on the round trip', (_, token) => {
    expect(numberSurvives(token)).toBe(false);
    expect(checkStrictJson(`{"n":${token}}`)).toBe('unsafe_number');
    expect(checkStrictJson(`[1,[2,${token}]]`)).toBe('unsafe_number');
  });

  it('ignores digits inside strings and keys', () => {
    expect(checkStrictJson('{"9007199254740993":"1e400","n":"0.1000000000000000055511151231257827"}')).toBe(
      undefined,
    );
  });

  it('accepts every integer within ±(2^53 - 1) and refuses every one beyond it', () => {
    const limit = 2n ** 53n - 1n;
    fc.assert(fc.property(fc.bigInt({ min: -limit, max: limit }), (n) => numberSurvives(n.toString())));
    fc.assert(
      fc.property(fc.bigInt({ min: limit + 1n, max: 2n ** 80n }), fc.boolean(), (n, negative) => {
        const token = (negative ? -n : n).toString();
        return !numberSurvives(token) && checkStrictJson(`{"n":${token}}`) === 'unsafe_number';
      }),
    );
  });

  it('accepts every finite double as JavaScript writes it, unless it is an integer beyond 2^53 written out', () => {
    fc.assert(
      fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (d) => {
        const token = JSON.stringify(d);
        const unsafeInteger = Number.isInteger(d) && !Number.isSafeInteger(d) && !/e/i.test(token);
        return numberSurvives(token) === !unsafeInteger;
      }),
    );
  });

  it('accepts trailing zeros appended to a non-zero fraction and refuses extra significant digits', () => {
    const plainDouble = fc
      .double({ noNaN: true, noDefaultInfinity: true, min: -1e15, max: 1e15 })
      .map((d) => String(d))
      .filter((s) => !/e/i.test(s) && /[1-9]/.test(s));
    fc.assert(
      fc.property(plainDouble, (s) => {
        const withPoint = s.includes('.') ? s : `${s}.`;
        return numberSurvives(`${withPoint}000`) && !numberSurvives(`${withPoint}00000000000000000001`);
      }),
    );
  });
});

describe('checkStrictJson: any serialized value', () => {
  it('accepts JSON.stringify of any value with unique keys and surviving numbers', () => {
    fc.assert(fc.property(strictJsonValue, (value) => checkStrictJson(JSON.stringify(value)) === undefined));
  });

  it('accepts the same value pretty-printed', () => {
    fc.assert(
      fc.property(strictJsonValue, (value) => checkStrictJson(JSON.stringify(value, null, 2)) === undefined),
    );
  });

  it('refuses any object once one of its keys is written twice', () => {
    fc.assert(
      fc.property(jsonObject, fc.string({ unit: 'binary' }), (object, key) => {
        const body = JSON.stringify(object).slice(1, -1);
        const repeated = `${JSON.stringify(key)}:1`;
        const text = `{${repeated}${body === '' ? '' : `,${body}`},${repeated}}`;
        return checkStrictJson(text) === 'duplicate_key';
      }),
    );
  });
});

describe('parseJsonRpc: classification', () => {
  it('classifies a request, keeping its id, method and params', () => {
    const body = parsed('{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}');
    expect(body.batch).toBe(false);
    expect(body.messages).toEqual([{ kind: 'request', id: 7, method: 'tools/call', params: { name: 'x' } }]);
  });

  it('classifies a request with a string id and no params', () => {
    expect(parsed('{"jsonrpc":"2.0","id":"a-1","method":"ping"}').messages).toEqual([
      { kind: 'request', id: 'a-1', method: 'ping' },
    ]);
  });

  it('classifies a message without an id as a notification', () => {
    expect(parsed('{"jsonrpc":"2.0","method":"notifications/initialized"}').messages).toEqual([
      { kind: 'notification', method: 'notifications/initialized' },
    ]);
  });

  it('classifies an answer with result or with error as a response', () => {
    expect(parsed('{"jsonrpc":"2.0","id":3,"result":{}}').messages).toEqual([{ kind: 'response', id: 3 }]);
    expect(parsed('{"jsonrpc":"2.0","id":"s","error":{"code":-1,"message":"no"}}').messages).toEqual([
      { kind: 'response', id: 's' },
    ]);
  });

  it('accepts a zero, negative or fractional numeric id', () => {
    for (const id of ['0', '-5', '1.5']) {
      expect(parsed(`{"jsonrpc":"2.0","id":${id},"method":"ping"}`).messages[0]).toMatchObject({
        kind: 'request',
        id: Number(id),
      });
    }
  });

  it.each([
    ['a non-object body', '"ping"'],
    ['null', 'null'],
    ['a number', '1'],
    ['no jsonrpc member', '{"id":1,"method":"ping"}'],
    ['jsonrpc "1.0"', '{"jsonrpc":"1.0","id":1,"method":"ping"}'],
    ['jsonrpc as the number 2.0', '{"jsonrpc":2.0,"id":1,"method":"ping"}'],
    ['an empty method', '{"jsonrpc":"2.0","id":1,"method":""}'],
    ['a numeric method', '{"jsonrpc":"2.0","id":1,"method":5}'],
    ['params as an array', '{"jsonrpc":"2.0","id":1,"method":"ping","params":[1]}'],
    ['params as a string', '{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}'],
    ['params as null', '{"jsonrpc":"2.0","id":1,"method":"ping","params":null}'],
    ['a null id', '{"jsonrpc":"2.0","id":null,"method":"ping"}'],
    ['a boolean id', '{"jsonrpc":"2.0","id":true,"method":"ping"}'],
    ['an object id', '{"jsonrpc":"2.0","id":{},"method":"ping"}'],
    ['a request that also carries result', '{"jsonrpc":"2.0","id":1,"method":"ping","result":{}}'],
    ['a request that also carries error', '{"jsonrpc":"2.0","id":1,"method":"ping","error":{}}'],
    ['a response with both result and error', '{"jsonrpc":"2.0","id":1,"result":{},"error":{}}'],
    ['a response with neither result nor error', '{"jsonrpc":"2.0","id":1}'],
    ['a response without an id', '{"jsonrpc":"2.0","result":{}}'],
  ])('refuses %s as invalid_request', (_, text) => {
    expect(refused(text).reason).toBe('invalid_request');
  });

  it('refuses text that is not JSON as parse_error with a null id', () => {
    for (const text of ['', '{', '{"jsonrpc":"2.0",}', "{'a':1}", 'NaN', '{"a":01}']) {
      const refusal = refused(text);
      expect(refusal.reason).toBe('parse_error');
      expect(refusal.ids).toEqual([]);
      expect(answer(refusal)).toMatchObject({ id: null, error: { code: -32700 } });
    }
  });

  it('refuses duplicate keys as parse_error, even where JSON.parse would keep the harmless one', () => {
    const refusal = refused(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_all","name":"read_file"}}',
    );
    expect(refusal.reason).toBe('parse_error');
    expect(answer(refusal)).toMatchObject({
      id: 1,
      error: { code: -32700, data: { reason: 'parse_error' } },
    });
  });

  it('refuses a duplicated method written with an escape', () => {
    expect(refused('{"jsonrpc":"2.0","id":1,"method":"ping","\\u006dethod":"tools/call"}').reason).toBe(
      'parse_error',
    );
  });

  it('refuses an integer beyond 2^53 in params as unsafe_number, answering with the request id', () => {
    const refusal = refused(
      '{"jsonrpc":"2.0","id":"r1","method":"tools/call","params":{"n":9007199254740993}}',
    );
    expect(refusal.reason).toBe('unsafe_number');
    expect(answer(refusal)).toMatchObject({
      id: 'r1',
      error: { code: -32600, data: { reason: 'unsafe_number' } },
    });
  });

  it('refuses an overflowing number as unsafe_number', () => {
    expect(refused('{"jsonrpc":"2.0","id":1,"method":"x","params":{"n":1e400}}').reason).toBe(
      'unsafe_number',
    );
  });

  it('forwards a body with 2^53 - 1 and -(2^53 - 1) unchanged', () => {
    const text = `{"jsonrpc":"2.0","id":${MAX_SAFE},"method":"x","params":{"a":${MAX_SAFE},"b":-${MAX_SAFE}}}`;
    expect(parsed(text).forward).toBe(text);
  });

  it('answers null, never a rounded id, when the id itself is an integer beyond 2^53', () => {
    const refusal = refused('{"jsonrpc":"2.0","id":9007199254740993,"method":"ping"}');
    expect(refusal.reason).toBe('unsafe_number');
    expect(answer(refusal)).toMatchObject({ id: null });
  });

  it('answers null, never a rounded id, when the id itself is a float that does not survive', () => {
    const refusal = refused('{"jsonrpc":"2.0","id":0.1000000000000000055511151231257827,"method":"ping"}');
    expect(refusal.reason).toBe('unsafe_number');
    expect(answer(refusal)).toMatchObject({ id: null });
  });
});

describe('parseJsonRpc: batches', () => {
  const batch =
    '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/x"},{"jsonrpc":"2.0","id":"b","method":"tools/list"}]';

  it('parses a batch when batches are allowed', () => {
    const body = parsed(batch, batches);
    expect(body.batch).toBe(true);
    expect(body.messages.map((m) => m.kind)).toEqual(['request', 'notification', 'request']);
  });

  it('refuses a batch when batches are not allowed, answering every id in an array', () => {
    const refusal = refused(batch, single);
    expect(refusal.reason).toBe('invalid_request');
    expect(refusal.ids).toEqual([1, 'b']);
    expect(answer(refusal)).toEqual([
      {
        jsonrpc: '2.0',
        id: 1,
        error: { code: -32600, message: expect.any(String), data: { reason: 'invalid_request' } },
      },
      {
        jsonrpc: '2.0',
        id: 'b',
        error: { code: -32600, message: expect.any(String), data: { reason: 'invalid_request' } },
      },
    ]);
  });

  it('refuses a one-element batch when batches are not allowed', () => {
    expect(refused('[{"jsonrpc":"2.0","id":1,"method":"ping"}]', single).reason).toBe('invalid_request');
  });

  it('refuses an empty batch even when batches are allowed', () => {
    const refusal = refused('[]', batches);
    expect(refusal.reason).toBe('invalid_request');
    expect(refusal.ids).toEqual([]);
  });

  it('answers an empty batch with a single error object, not an array (JSON-RPC 2.0 §6)', () => {
    expect(answer(refused('[]', batches))).toMatchObject({
      jsonrpc: '2.0',
      id: null,
      error: { code: -32600 },
    });
  });

  it('refuses a whole batch when one element is malformed, answering every valid id', () => {
    const refusal = refused(
      '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":""},{"jsonrpc":"2.0","id":3}]',
      batches,
    );
    expect(refusal.reason).toBe('invalid_request');
    expect(refusal.ids).toEqual([1, 2, 3]);
  });

  it('refuses a batch of non-objects', () => {
    expect(refused('[1,2]', batches).reason).toBe('invalid_request');
  });

  it('refuses a batch with a duplicate key in one element as parse_error with the ids', () => {
    const refusal = refused(
      '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":2,"method":"a","method":"b"}]',
      batches,
    );
    expect(refusal.reason).toBe('parse_error');
    expect(refusal.ids).toEqual([1, 2]);
    expect(answer(refusal)).toHaveLength(2);
  });
});

describe('parseJsonRpc: what is forwarded', () => {
  const request = fc.record(
    {
      jsonrpc: fc.constant('2.0'),
      id: rpcId,
      method: fc.string({ minLength: 1 }),
      params: jsonObject,
    },
    { requiredKeys: ['jsonrpc', 'id', 'method'] },
  );

  it('forwards a re-serialization that parses to the same value as the client sent', () => {
    fc.assert(
      fc.property(request, (message) => {
        const text = JSON.stringify(message, null, 1);
        const body = parsed(text);
        expect(JSON.parse(body.forward)).toEqual(JSON.parse(text));
        expect(body.forward).toBe(JSON.stringify(JSON.parse(text)));
      }),
    );
  });

  it('forwards a batch that parses to the same array', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(request, { minLength: 1, maxLength: 4, selector: (m) => String(m.id) }),
        (messages) => {
          const text = JSON.stringify(messages);
          const body = parsed(text, batches);
          expect(body.messages).toHaveLength(messages.length);
          expect(JSON.parse(body.forward)).toEqual(JSON.parse(text));
        },
      ),
    );
  });

  it('forwards the parsed value, not the client bytes: escapes and whitespace are normalized', () => {
    const body = parsed(
      '{ "jsonrpc" : "2.0", "id" : 1, "method" : "tools\\/call", "params" : { "a" : 1.0 } }',
    );
    expect(body.forward).toBe('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"a":1}}');
  });
});

describe('parseJsonRpc: batch size', () => {
  const pings = (n: number) =>
    JSON.stringify(Array.from({ length: n }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'ping' })));

  it(`accepts a batch of ${MAX_BATCH_MESSAGES} messages and refuses one more, with one error object`, () => {
    const largest = parseJsonRpc(pings(MAX_BATCH_MESSAGES), batches);
    expect(isRefusal(largest)).toBe(false);
    expect((largest as ParsedBody).messages).toHaveLength(MAX_BATCH_MESSAGES);
    const over = refused(pings(MAX_BATCH_MESSAGES + 1), batches);
    expect(over.reason).toBe('invalid_request');
    expect(JSON.parse(refusalBody(over))).toMatchObject({ id: null, error: { code: -32600 } });
  });
});

describe('parseJsonRpc: nesting depth', () => {
  const deepCall = (depth: number) =>
    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"a":${'['.repeat(depth)}${']'.repeat(depth)}}}}`;

  it('refuses a body nesting deeper than maxDepth as too_deep with a null id, before parsing it', () => {
    // Three levels are the envelope, params and arguments.
    expect(isRefusal(parseJsonRpc(deepCall(61), { allowBatch: false, maxDepth: 64 }))).toBe(false);
    const refusal = refused(deepCall(62));
    expect(refusal.reason).toBe('too_deep');
    expect(answer(refusal)).toMatchObject({
      id: null,
      error: { code: -32600, data: { reason: 'too_deep' } },
    });
  });

  it('refuses 5000- and 100000-deep requests as too_deep, never a crash', () => {
    for (const depth of [5000, 100_000]) expect(refused(deepCall(depth)).reason).toBe('too_deep');
  });

  it('takes the verdict of a scan made as the body arrived', () => {
    const text = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
    expect(refused({ text, problem: 'too_deep' }).reason).toBe('too_deep');
    expect(parsed({ text, problem: undefined }).messages).toHaveLength(1);
  });
});

describe('parseJsonRpc: keys a case-insensitive decoder reads as one', () => {
  it.each([
    [
      'Method beside method',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"admin_reset","params":{"name":"echo"}}',
    ],
    [
      'NAME beside name',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","NAME":"admin_reset"}}',
    ],
    [
      'paramſ beside params',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo"},"param\\u017f":{"name":"admin_reset"}}',
    ],
    [
      'two spellings of an argument',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"path":"/a","Path":"/etc"}}}',
    ],
    [
      'arguments beside ARGUMENTS',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{},"ARGUMENTS":{"x":1}}}',
    ],
  ])('refuses %s as invalid_request, answering the id', (_, text) => {
    const refusal = refused(text);
    expect(refusal.reason).toBe('invalid_request');
    expect(refusal.ids).toEqual([1]);
  });

  it.each([
    [
      'a "response" carrying Method (Go would run it as a request)',
      '{"jsonrpc":"2.0","id":1,"Method":"tools/call","params":{"name":"admin_reset"},"result":{}}',
    ],
    [
      'PARAMS instead of params',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","PARAMS":{"name":"admin_reset"}}',
    ],
    ['Jsonrpc instead of jsonrpc', '{"jsonrpc":"2.0","Jsonrpc":"2.0","id":1,"method":"ping"}'],
    [
      'Arguments instead of arguments',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","Arguments":{"path":"/etc"}}}',
    ],
    [
      'Name instead of name',
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"Name":"admin_reset"}}',
    ],
    ['ſ-spelled _meta', '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{},"_META":{}}}'],
  ])('refuses a member spelled in another case, alone: %s', (_, text) => {
    expect(refused(text).reason).toBe('invalid_request');
  });

  it('keeps an exact duplicate a parse_error', () => {
    expect(refused('{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}').reason).toBe('parse_error');
  });

  it('accepts case variants of keys the gateway does not interpret, in different objects', () => {
    const body = parsed(
      '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"Path":"/a","items":[{"path":1},{"PATH":2}]}}}',
    );
    expect(body.messages).toHaveLength(1);
  });
});

describe('parseJsonRpc: request methods without an id', () => {
  it.each(['tools/call', 'tools/list', 'initialize', 'ping', 'resources/read', 'x/unknown'])(
    'refuses %s without an id as invalid_request',
    (method) => {
      const refusal = refused(`{"jsonrpc":"2.0","method":"${method}","params":{"name":"echo"}}`);
      expect(refusal.reason).toBe('invalid_request');
      expect(answer(refusal)).toMatchObject({ id: null, error: { code: -32600 } });
    },
  );

  it('accepts any notifications/* method without an id as a notification', () => {
    for (const method of ['notifications/initialized', 'notifications/cancelled', 'notifications/x/y']) {
      expect(parsed(`{"jsonrpc":"2.0","method":"${method}"}`).messages[0]).toMatchObject({
        kind: 'notification',
      });
    }
  });

  it('refuses a batch holding an id-less tools/call, answering the other ids', () => {
    const refusal = refused(
      '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x"}}]',
      batches,
    );
    expect(refusal.reason).toBe('invalid_request');
    expect(refusal.ids).toEqual([1]);
  });
});

describe('parseJsonRpc: ids repeated in a batch', () => {
  it.each([
    [
      'two requests with one id',
      '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":1,"method":"ping"}]',
    ],
    [
      'one id as a number and as a string',
      '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":"1","method":"ping"}]',
    ],
    [
      'one id spelled 1 and 1.0',
      '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":1.0,"method":"ping"}]',
    ],
    [
      'two responses with one id',
      '[{"jsonrpc":"2.0","id":"s1","result":{}},{"jsonrpc":"2.0","id":"s1","result":{}}]',
    ],
  ])('refuses %s as invalid_request with one error and a null id', (_, text) => {
    const refusal = refused(text, batches);
    expect(refusal.reason).toBe('invalid_request');
    expect(answer(refusal)).toMatchObject({ id: null, error: { code: -32600 } });
  });

  it('accepts a request and a response sharing an id (the client and the server number apart)', () => {
    const body = parsed(
      '[{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","id":1,"result":{}},{"jsonrpc":"2.0","method":"notifications/x"}]',
      batches,
    );
    expect(body.messages).toHaveLength(3);
  });

  it('refuses every batch with a repeated request id and accepts every batch without', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constantFrom('0', '1', 'a')), {
          minLength: 1,
          maxLength: 8,
        }),
        (ids) => {
          const text = JSON.stringify(ids.map((id) => ({ jsonrpc: '2.0', id, method: 'ping' })));
          const repeated = new Set(ids.map(String)).size < ids.length;
          const result = parseJsonRpc(text, batches);
          expect(isRefusal(result)).toBe(repeated);
        },
      ),
    );
  });
});
