// The longest synchronous block the parse stage causes for one large allowed request (issue 13,
// class 18): the body arrives in 64 KiB chunks; each chunk is decoded and strict-scanned as it
// arrives (one block per chunk), then JSON.parse, classification and re-serialization run once
// (the last block). Prints the median of several runs per body shape, in milliseconds.
//   node bench/parse-stall.mjs [dist directory]   (default: this checkout's dist/)
// Run against an older build's dist/ to compare: before the incremental scan the whole parse was
// one block. Each block is timed by the wall clock and by the process's CPU time (on a loaded
// machine the wall clock also counts time the scheduler gave to other processes).
import { pathToFileURL } from 'node:url';

const dist = process.argv[2] ?? new URL('../dist', import.meta.url).pathname;
const { parseJsonRpc } = await import(pathToFileURL(`${dist}/jsonrpc/parse.js`).href);
const strict = await import(pathToFileURL(`${dist}/jsonrpc/strict-json.js`).href);
const incremental = typeof strict.createStrictJsonScanner === 'function';
let builderModule;
try {
  builderModule = await import(pathToFileURL(`${dist}/jsonrpc/json-builder.js`).href);
} catch {
  builderModule = undefined; // a build from before the value was built as the body arrived
}

const SIZE = 3.5 * 1024 * 1024;
const CHUNK = 64 * 1024;
const RUNS = 7;

function envelope(args) {
  return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write_file","arguments":${args}}}`;
}

function records() {
  const rows = [];
  let size = 0;
  for (let i = 0; size < SIZE; i++) {
    const row = `{"id":${i},"name":"row ${i}","value":${i * 1.5},"ok":true,"tags":["alpha","beta"],"note":null}`;
    rows.push(row);
    size += row.length + 1;
  }
  return `{"rows":[${rows.join(',')}]}`;
}

function numbers() {
  const values = [];
  let size = 0;
  for (let i = 0; size < SIZE; i++) {
    const value = String(i * 0.731);
    values.push(value);
    size += value.length + 1;
  }
  return `{"values":[${values.join(',')}]}`;
}

const BODIES = {
  'one 3.5 MB string': envelope(`{"path":"/a","content":"${'x'.repeat(SIZE)}"}`),
  '3.5 MB of small records': envelope(records()),
  '3.5 MB of numbers': envelope(numbers()),
};

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Wall-clock and CPU milliseconds since `mark`. */
const mark = () => ({ wall: performance.now(), cpu: process.cpuUsage() });
const since = (m) => {
  const cpu = process.cpuUsage(m.cpu);
  return { wall: performance.now() - m.wall, cpu: (cpu.user + cpu.system) / 1000 };
};
const fmt = (wall, cpu) => `${median(wall).toFixed(1)} ms (cpu ${median(cpu).toFixed(1)})`;

for (const [name, text] of Object.entries(BODIES)) {
  const bytes = Buffer.from(text);
  const chunkMax = { wall: [], cpu: [] };
  const last = { wall: [], cpu: [] };
  const encode = { wall: [], cpu: [] };
  for (let run = 0; run < RUNS; run++) {
    let parsed;
    if (incremental) {
      const decoder = new TextDecoder('utf-8', { fatal: true });
      const builder = builderModule?.createJsonBuilder();
      const scanner = strict.createStrictJsonScanner(builder ? { maxDepth: 64, builder } : { maxDepth: 64 });
      const pieces = [];
      let wall = 0;
      let cpu = 0;
      for (let at = 0; at < bytes.length; at += CHUNK) {
        const m = mark();
        const piece = decoder.decode(bytes.subarray(at, at + CHUNK), { stream: true });
        if (!builder) pieces.push(piece);
        scanner.write(piece);
        const took = since(m);
        wall = Math.max(wall, took.wall);
        cpu = Math.max(cpu, took.cpu);
      }
      chunkMax.wall.push(wall);
      chunkMax.cpu.push(cpu);
      const m = mark();
      const problem = scanner.end();
      parsed = parseJsonRpc(
        builder
          ? { problem, value: builder.value, forward: builder.forward }
          : { text: pieces.join(''), problem },
        { allowBatch: false },
      );
      const took = since(m);
      last.wall.push(took.wall);
      last.cpu.push(took.cpu);
      if (parsed.forward !== JSON.stringify(JSON.parse(text))) throw new Error(`${name}: forward differs`);
      // What sending it costs later (outside the parse stage): the forwarded text as UTF-8 bytes.
      const s = mark();
      Buffer.from(parsed.forward);
      const sent = since(s);
      encode.wall.push(sent.wall);
      encode.cpu.push(sent.cpu);
    } else {
      // The old path: the whole body decoded at the end, then parsed and checked in one block.
      const m = mark();
      const whole = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      parsed = parseJsonRpc(whole, { allowBatch: false });
      const took = since(m);
      last.wall.push(took.wall);
      last.cpu.push(took.cpu);
    }
    if (parsed.kind === 'refusal') throw new Error(`${name}: refused ${parsed.reason}`);
  }
  const parts = incremental
    ? `longest chunk ${fmt(chunkMax.wall, chunkMax.cpu)}, final block ${fmt(last.wall, last.cpu)}, then UTF-8 of forward ${fmt(encode.wall, encode.cpu)}`
    : `one block ${fmt(last.wall, last.cpu)}`;
  console.log(`${name.padEnd(26)} ${parts}`);
}

// The final block, split: what remains is native JSON.parse and JSON.stringify.
for (const [name, text] of Object.entries(BODIES)) {
  const parse = { wall: [], cpu: [] };
  const stringify = { wall: [], cpu: [] };
  for (let run = 0; run < RUNS; run++) {
    let m = mark();
    const value = JSON.parse(text);
    let took = since(m);
    parse.wall.push(took.wall);
    parse.cpu.push(took.cpu);
    m = mark();
    JSON.stringify(value);
    took = since(m);
    stringify.wall.push(took.wall);
    stringify.cpu.push(took.cpu);
  }
  console.log(
    `${name.padEnd(26)} of which JSON.parse ${fmt(parse.wall, parse.cpu)}, JSON.stringify ${fmt(stringify.wall, stringify.cpu)}`,
  );
}
