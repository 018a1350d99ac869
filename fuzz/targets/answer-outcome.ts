import {
  type AnswerOutcome,
  type AnswerScanner,
  createJsonAnswerScanner,
  createSseAnswerScanner,
  MAX_OUTCOMES,
} from '../../src/audit/answer-outcome.js';
import {
  breakFraming,
  deepText,
  hugeNumber,
  type JsonNode,
  num,
  replaceSlot,
  slots,
  style,
  write,
} from '../gen/json.js';
import { answer } from '../gen/mcp.js';
import { type Clock, shown, type Target, type Verdict } from '../harness.js';
import { dispatchedData } from '../oracles/event-stream.js';
import type { Prng } from '../prng.js';

/** The code under test, one line each. */
const jsonScanner = (): AnswerScanner => createJsonAnswerScanner();
const sseScanner = (): AnswerScanner => createSseAnswerScanner();

/** The scanner keeps tokens up to this many bytes: a longer id is documented as not read. */
const MAX_TOKEN = 256;

interface OutcomeInput {
  readonly bytes: Buffer;
  readonly sse: boolean;
  /** Valid: the outcomes must agree with `JSON.parse`. */
  readonly valid: boolean;
  readonly cuts: readonly number[];
}

const IDS = ['1', '0', '-7', '1.5', 'null', '"a"', '""', '"\\u0041b"', '"id-\\"q\\""', '"π"', '"😀"', '1e2'];

function answerText(rng: Prng, valid: boolean): string {
  const idText = rng.chance(0.05) ? JSON.stringify('x'.repeat(rng.range(200, 300))) : rng.pick(IDS);
  const node = answer(rng, { t: 'raw', v: idText });
  if (!valid) mutate(node, rng);
  return write(node, rng, style(rng));
}

function mutate(node: JsonNode, rng: Prng): void {
  const all = slots(node);
  if (all.length === 0) return;
  const slot = rng.pick(all);
  switch (rng.int(3)) {
    case 0:
      replaceSlot(slot, { t: 'raw', v: deepText(rng) });
      break;
    case 1:
      replaceSlot(slot, num(hugeNumber(rng)));
      break;
    default:
      if (node.t === 'obj') node.e.push([rng.pick(['result', 'error', 'id', 'isError']), num(1)]);
  }
}

function generate(rng: Prng): OutcomeInput {
  const valid = rng.chance(0.6);
  const sse = rng.chance(0.4);
  let text: string;
  if (!sse) {
    const batch = rng.chance(0.25);
    const count = batch ? rng.range(0, 6) : 1;
    const items: string[] = [];
    for (let i = 0; i < count; i++) items.push(answerText(rng, valid || rng.chance(0.5)));
    text = batch ? `[${items.join(',')}]` : (items[0] ?? '');
  } else {
    const events: string[] = [];
    const huge = rng.chance(0.0001);
    const count = huge ? 1 : rng.range(1, 5);
    for (let i = 0; i < count; i++) {
      const end = rng.pick(['\n', '\r\n', '\r']);
      // Many answers in one event: the outcome list must not be spread into a call.
      const data = huge
        ? `[${'{"jsonrpc":"2.0","id":1,"result":{}},'.repeat(rng.range(125_000, 140_000))}{"id":2,"result":1}]`
        : answerText(rng, valid || rng.chance(0.5));
      const pretty = rng.chance(0.3) && valid ? JSON.stringify(JSON.parse(data), null, 1) : data;
      const lines = pretty.split(/\r\n|\n|\r/).map((l) => `data: ${l}${end}`);
      if (rng.chance(0.2)) lines.unshift(`event: message${end}`);
      events.push(`${lines.join('')}${end}`);
    }
    text = events.join('');
    if (!valid && rng.chance(0.5)) text = breakFraming(text, rng);
  }
  if (!valid && !sse && rng.chance(0.5)) text = breakFraming(text, rng);
  const bytes = Buffer.from(text, 'utf8');
  const cuts = new Set<number>();
  for (let i = rng.range(1, 16); i > 0; i--) cuts.add(rng.int(bytes.length + 1));
  return { bytes, sse, valid, cuts: [...cuts].sort((a, b) => a - b) };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** What the responses in a parsed JSON-RPC answer say, read with `JSON.parse`. */
function outcomesOf(value: unknown): AnswerOutcome[] {
  const outcomes: AnswerOutcome[] = [];
  for (const item of Array.isArray(value) ? value : [value]) {
    if (!isObject(item)) continue;
    const error = isObject(item.error);
    if (!('result' in item) && !error) continue;
    const { id } = item;
    const code = error ? (item.error as Record<string, unknown>).code : undefined;
    outcomes.push({
      id:
        typeof id === 'string' || id === null || (typeof id === 'number' && Number.isFinite(id))
          ? id
          : undefined,
      isError: error || (isObject(item.result) && item.result.isError === true),
      ...(typeof code === 'number' && Number.isInteger(code) ? { errorCode: code } : {}),
    });
  }
  return outcomes;
}

/** The largest chunk the relay hands the scanner at once. */
const RELAY_CHUNK = 65_536;

/** `scan`, each write timed on its own, chunks over RELAY_CHUNK cut as the relay would see them. */
function scanTimed(make: () => AnswerScanner, chunks: readonly Buffer[], clock: Clock): AnswerOutcome[] {
  const scanner = make();
  for (const chunk of chunks)
    for (let at = 0; at < chunk.length; at += RELAY_CHUNK)
      clock.time(() => scanner.write(chunk.subarray(at, at + RELAY_CHUNK)));
  return clock.time(() => scanner.end());
}

function show(outcomes: readonly AnswerOutcome[]): string {
  return shown(JSON.stringify(outcomes.slice(0, 8)), 300);
}

function agrees(got: AnswerOutcome, want: AnswerOutcome): boolean {
  if (got.isError !== want.isError || got.errorCode !== want.errorCode) return false;
  if (got.id === want.id) return true;
  // Documented limit: an id written longer than the scanner's token cap is not read.
  return (
    got.id === undefined &&
    typeof want.id === 'string' &&
    Buffer.byteLength(JSON.stringify(want.id)) > MAX_TOKEN
  );
}

function check(input: OutcomeInput, clock: Clock): Verdict {
  const make = input.sse ? sseScanner : jsonScanner;
  // Timed per write, as the relay feeds it (undici's chunks are at most 64 KiB): what one call
  // costs is what it holds the event loop for.
  const whole = scanTimed(make, [input.bytes], clock);
  if (input.valid) {
    const texts = input.sse ? dispatchedData(input.bytes) : [input.bytes.toString('utf8')];
    // Documented limit: the scanner keeps the first MAX_OUTCOMES responses (a batch holds 256).
    const want = texts.flatMap((t) => outcomesOf(JSON.parse(t))).slice(0, MAX_OUTCOMES);
    if (want.length !== whole.length || whole.some((got, i) => !agrees(got, want[i] as AnswerOutcome)))
      return `outcomes-disagree-with-JSON.parse: scanner ${show(whole)}, JSON.parse ${show(want)}`;
  }
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of input.cuts) {
    if (cut <= from) continue;
    chunks.push(input.bytes.subarray(from, cut));
    from = cut;
  }
  chunks.push(input.bytes.subarray(from));
  const chunked = scanTimed(make, chunks, clock);
  if (JSON.stringify(chunked) !== JSON.stringify(whole))
    return `outcomes-depend-on-chunking: ${chunks.length} chunks at ${JSON.stringify(input.cuts)}: ${show(chunked)} vs ${show(whole)}`;
  return undefined;
}

export const answerOutcomeTarget: Target<OutcomeInput> = {
  name: 'answer-outcome',
  weight: 10,
  generate,
  check,
  describe: (input) =>
    `${input.sse ? 'sse' : 'json'} valid=${input.valid} bytes(utf8)=${shown(input.bytes.toString('utf8'))}`,
};
