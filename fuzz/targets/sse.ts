import type { Transform } from 'node:stream';
import { ANY_LIST, filterListAnswer } from '../../src/policy/filter.js';
import { createSseRewriter, type RewriteResult, UnreadableEventError } from '../../src/proxy/sse.js';
import { deepText, style, word, write } from '../gen/json.js';
import { answer, id } from '../gen/mcp.js';
import { type Clock, shown, type Target, type Verdict } from '../harness.js';
import { dispatchedData } from '../oracles/event-stream.js';
import type { Prng } from '../prng.js';
import { POLICIES, READER } from './uri.js';

/** The code under test, one line: a stream that hands each event's data to `rewrite`. */
const rewriter = (rewrite: (data: string) => RewriteResult): Transform =>
  createSseRewriter(rewrite, { maxEventLength: 1 << 20 });
/** What the gateway rewrites with: the list filter, by shape (as for a GET stream). */
const filter = (data: string) => filterListAnswer(data, ANY_LIST, POLICIES.deny, READER, 64);

interface SseInput {
  readonly bytes: Buffer;
  /** Cut points for the chunkings after the first (one whole chunk). */
  readonly cuts: readonly (readonly number[])[];
}

const ENDS = ['\n', '\n', '\r\n', '\r'];

/** One event's data: a JSON-RPC answer (maybe pretty-printed over several lines) or odd text. */
function payload(rng: Prng): string[] {
  const r = rng.int(10);
  if (r < 6) {
    const text = write(answer(rng, id(rng)), rng, style(rng));
    return text.split(/\r\n|\n|\r/);
  }
  if (r < 7 && rng.chance(0.25)) {
    // A list answer with a deep item: filtering it must not take the stream down.
    const depth = rng.chance(0.8) ? rng.range(60, 1000) : rng.range(5000, 10000);
    return [`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"echo","x":${deepText(rng, depth)}}]}}`];
  }
  if (r < 8) return [word(rng)];
  if (r < 9) return ['', ''];
  return [`{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"admin_reset"},{"name":"echo"}]}}`];
}

function line(rng: Prng): string {
  return rng.pick([
    'event: message',
    'id: 7',
    'id',
    'retry: 100',
    ': keep-alive',
    ':',
    'Data: {"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"admin_reset"}]}}',
    'data : x',
    ' data: x',
    'data',
    'event:',
    `x-${word(rng)}`,
  ]);
}

function generate(rng: Prng): SseInput {
  const parts: (string | Buffer)[] = [];
  if (rng.chance(0.05)) parts.push('\ufeff');
  const events = rng.chance(0.03) ? rng.range(50, 300) : rng.range(1, 6);
  for (let e = 0; e < events; e++) {
    const fields: string[] = [];
    for (let i = rng.size(2); i > 0; i--) fields.push(line(rng));
    for (const data of payload(rng)) fields.push(rng.chance(0.2) ? `data:${data}` : `data: ${data}`);
    if (rng.chance(0.3)) fields.push(line(rng));
    if (rng.chance(0.1)) fields.reverse();
    const end = rng.pick(ENDS);
    for (const field of fields) parts.push(field + (rng.chance(0.9) ? end : rng.pick(ENDS)));
    // The blank line that dispatches; the last event may lack it (an EventSource then drops it).
    const last = e === events - 1;
    if (!last || rng.chance(0.7)) parts.push(rng.pick(ENDS));
    if (rng.chance(0.05))
      parts.push(Buffer.from(rng.pick([[0xff], [0xe2, 0x82], [0xc0, 0xaf], [0xf0, 0x9f, 0x98]])));
  }
  const bytes = Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : p)));
  const cuts: number[][] = [];
  for (let k = 0; k < 2; k++) {
    const points = new Set<number>();
    const mode = rng.int(4);
    // One byte per chunk only for short streams: past that the stream machinery, not the
    // rewriter, is what the clock measures.
    if (mode === 0 && bytes.length <= 1024) for (let i = 1; i < bytes.length; i++) points.add(i);
    else {
      const count = mode === 1 ? rng.range(1, 4) : rng.range(1, Math.min(64, bytes.length + 1));
      for (let i = 0; i < count; i++) points.add(rng.int(bytes.length + 1));
    }
    cuts.push([...points].sort((a, b) => a - b));
  }
  return { bytes, cuts };
}

function chunk(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const chunks: Buffer[] = [];
  let from = 0;
  for (const cut of cuts) {
    if (cut <= from || cut >= bytes.length) continue;
    chunks.push(bytes.subarray(from, cut));
    from = cut;
  }
  chunks.push(bytes.subarray(from));
  return chunks;
}

/**
 * The rewriter's output for one chunking. An event the filter cannot read ends the stream with
 * `UnreadableEventError` (the gateway then sends an error event): the output up to it is returned
 * and `refused` set.
 */
async function run(chunks: readonly Buffer[], seen: string[], refused?: { at: number }): Promise<Buffer> {
  const stream = rewriter((data) => {
    seen.push(data);
    return filter(data);
  });
  const out: Buffer[] = [];
  const ended = new Promise<void>((resolve, reject) => {
    stream.on('data', (c: Buffer | string) => out.push(typeof c === 'string' ? Buffer.from(c) : c));
    stream.on('end', resolve);
    stream.on('error', (err: unknown) => {
      if (!(err instanceof UnreadableEventError)) return reject(err);
      if (refused !== undefined) refused.at = seen.length - 1;
      resolve();
    });
  });
  for (const c of chunks) {
    if (stream.destroyed) break;
    stream.write(c);
  }
  if (!stream.destroyed) stream.end();
  await ended;
  return Buffer.concat(out);
}

function sameList(a: readonly string[], b: readonly string[]): number {
  const n = Math.max(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function check(input: SseInput, clock: Clock): Promise<Verdict> {
  const { bytes } = input;
  const expected = dispatchedData(bytes);
  const seen: string[] = [];
  const refused = { at: -1 };
  const whole = await clock.timeAsync(() => run([bytes], seen, refused));
  // A refused event ends the stream: the events seen are then a prefix of what an EventSource dispatches.
  const at = sameList(seen, refused.at === -1 ? expected : expected.slice(0, seen.length));
  if (at !== -1)
    return `rewriter-events-differ-from-EventSource: event ${at}: rewriter saw ${seen.length} events (${shown(seen[at] ?? '<none>', 160)}), an EventSource dispatches ${expected.length} (${shown(expected[at] ?? '<none>', 160)})`;
  // What a client dispatches from the output must be filtered already: the filter changes nothing.
  for (const data of dispatchedData(whole)) {
    let again: RewriteResult;
    try {
      again = filter(data);
    } catch {
      return `client-dispatches-an-event-the-filter-cannot-read: ${shown(data, 200)}`;
    }
    if (typeof again === 'object')
      return `client-dispatches-an-event-the-filter-cannot-read: ${shown(data, 200)}`;
    if (again !== undefined && again !== data)
      return `client-dispatches-an-unfiltered-event: ${shown(data, 200)}`;
  }
  for (const cuts of input.cuts) {
    const chunks = chunk(bytes, cuts);
    const seenChunked: string[] = [];
    const refusedChunked = { at: -1 };
    const out = await clock.timeAsync(() => run(chunks, seenChunked, refusedChunked));
    if ((refusedChunked.at === -1) !== (refused.at === -1))
      return `refusal-depends-on-chunking: ${chunks.length} chunks at ${JSON.stringify(cuts.slice(0, 20))}`;
    if (refused.at !== -1) {
      // A refused stream ends at the unreadable event: how much of what preceded it went out
      // depends on where the chunks fell, but nothing unfiltered may be in it.
      for (const data of dispatchedData(out)) {
        const again = filter(data);
        if (typeof again === 'object' || (again !== undefined && again !== data))
          return `client-dispatches-an-unfiltered-event: ${shown(data, 200)}`;
      }
      continue;
    }
    if (!out.equals(whole))
      return `output-depends-on-chunking: ${chunks.length} chunks at ${JSON.stringify(cuts.slice(0, 20))}: ${shown(out.toString('latin1'), 200)} vs ${shown(whole.toString('latin1'), 200)}`;
    if (sameList(seenChunked, seen) !== -1)
      return `events-depend-on-chunking: ${chunks.length} chunks at ${JSON.stringify(cuts.slice(0, 20))}`;
  }
  return undefined;
}

export const sseTarget: Target<SseInput> = {
  name: 'sse-rewriter',
  weight: 6,
  generate,
  check,
  describe: (input) => `bytes(latin1)=${shown(input.bytes.toString('latin1'))}`,
};
