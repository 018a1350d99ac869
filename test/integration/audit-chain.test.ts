/**
 * The audit HMAC chain end to end: a real gateway (`audit.chainKey`) in front of a real SDK v2
 * server, called by a real SDK v2 client, writes records carrying `seq` 1..n and a `mac` each, and
 * the built CLI (`portcullis audit verify FILE --key-env VAR`) accepts the untouched file (exit 0)
 * and names the first broken line (exit 1) of a copy with a line edited, deleted or reordered, or
 * re-MACed with another key. A restarted gateway continues the same file's chain; a file rotated
 * away (rename + reopen, as on SIGUSR2) leaves a new file that verifies only `--after` the old one's
 * last head. `arguments: hash` keeps every argument value out of the file. A missing key: exit 2.
 */
import { spawnSync } from 'node:child_process';
import { createHash, createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createChain } from '../../src/audit/chain.js';
import { connectV2Client, FIXTURE_PROMPT_NAME, type Peer, startV2Server } from '../fixtures/peers.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { CLI, ensureBuilt } from '../support/gateway-process.js';
import { firstText } from '../support/inspect.js';
import { sleep } from '../support/wait.js';

const KEY = 'integration-chain-key-0123456789';
const OTHER_KEY = 'an-attackers-own-key-9876543210';
const KEY_ENV = 'PORTCULLIS_TEST_AUDIT_CHAIN_KEY';

/** The environment without any chain key, so only what a test passes is seen. */
function baseEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env[KEY_ENV];
  delete env.AUDIT_CHAIN_KEY;
  return env;
}

/** `portcullis audit verify FILE --key-env KEY_ENV …` with `key` in the environment (none if null). */
function verify(file: string, extra: readonly string[] = [], key: string | null = KEY) {
  const env = baseEnv();
  if (key !== null) env[KEY_ENV] = key;
  const result = spawnSync(process.execPath, [CLI, 'audit', 'verify', file, '--key-env', KEY_ENV, ...extra], {
    env,
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** The file's lines once at least `count` are there and nothing more has arrived for a while. */
async function settledLines(file: string, count: number): Promise<string[]> {
  const deadline = Date.now() + 10_000;
  let previous = '';
  for (;;) {
    const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
    const lines = text.split('\n').filter(Boolean);
    if (lines.length >= count && text === previous && text.endsWith('\n')) return lines;
    if (Date.now() > deadline) throw new Error(`${file}: ${lines.length} line(s), expected ${count}`);
    previous = text;
    await sleep(150);
  }
}

const parse = (line: string) => JSON.parse(line) as Record<string, unknown> & { seq: number; mac: string };
const headText = (line: string) => `${parse(line).seq}:${parse(line).mac}`;
const toolCalls = (lines: readonly string[]) => lines.filter((l) => parse(l).method === 'tools/call').length;

/** Calls `echo` once per text and `add` once, through the gateway, with a real SDK v2 client. */
async function makeCalls(url: string, texts: readonly string[]): Promise<void> {
  const client = await connectV2Client(url);
  try {
    for (const text of texts)
      expect(firstText(await client.callTool({ name: 'echo', arguments: { text } }))).toBe(text);
    expect(firstText(await client.callTool({ name: 'add', arguments: { a: 2, b: 3 } }))).toBe('5');
  } finally {
    await client.close();
  }
}

let upstream: Peer;
let dir: string;

beforeAll(async () => {
  // The CLI is run from dist: build it when it is missing or older than the sources it runs.
  ensureBuilt(
    ['src/cli/main.ts', 'src/cli/audit.ts', 'src/audit/chain.ts', 'src/audit/stream.ts'],
    'dist/cli/audit.js',
  );
  upstream = await startV2Server({ response: 'json' });
  dir = mkdtempSync(join(tmpdir(), 'portcullis-audit-chain-'));
});
afterAll(async () => {
  await upstream?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('a file written by one gateway', () => {
  let file: string;
  let lines: string[];
  /** 0-based index of an `echo` record well inside the file (neither first nor last). */
  let target: number;

  beforeAll(async () => {
    file = join(dir, 'one.jsonl');
    const gateway = await startTestGateway({
      routes: [{ upstream: upstream.url }],
      auditFile: file,
      audit: `chainKey: "${KEY}", arguments: full`,
    });
    try {
      await makeCalls(`${gateway.url}/mcp`, ['alpha', 'bravo', 'charlie', 'delta']);
      await settledLines(file, 5);
    } finally {
      await gateway.close();
    }
    lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    target = lines.findIndex((l) => l.includes('"text":"charlie"'));
  });

  it('chains every record: seq 1..n first, a mac last, each the HMAC of the previous mac and the line', () => {
    expect(toolCalls(lines)).toBe(5);
    expect(target).toBeGreaterThan(0);
    expect(target).toBeLessThan(lines.length - 1);
    let previous = '';
    lines.forEach((line, i) => {
      const record = parse(line);
      expect(line.startsWith(`{"seq":${i + 1},`)).toBe(true);
      expect(record.seq).toBe(i + 1);
      expect(record.mac).toMatch(/^[0-9a-f]{64}$/);
      const at = line.lastIndexOf(',"mac":"');
      expect(line.slice(at)).toBe(`,"mac":"${record.mac}"}`);
      const body = `${line.slice(0, at)}}`;
      expect(record.mac).toBe(createHmac('sha256', KEY).update(previous).update(body).digest('hex'));
      previous = record.mac;
    });
  });

  it('verifies untouched: exit 0, every record, the last head', () => {
    const { code, stdout } = verify(file);
    expect(code).toBe(0);
    expect(stdout).toContain(`OK: ${lines.length} record(s) verified; chain head ${headText(lines.at(-1)!)}`);
  });

  /** A copy of the file with `edit` applied to its lines. */
  const copy = (name: string, edit: (lines: string[]) => string[]) => {
    const path = join(dir, name);
    writeFileSync(path, `${edit([...lines]).join('\n')}\n`);
    return path;
  };

  it('a line edited (one character of an argument value): exit 1 at that line', () => {
    const path = copy('edited.jsonl', (l) => {
      l[target] = l[target]!.replace('"text":"charlie"', '"text":"charlif"');
      return l;
    });
    const { code, stdout } = verify(path);
    expect(code).toBe(1);
    expect(stdout).toContain(`BROKEN at line ${target + 1} (seq ${target + 1}): mac does not match`);
    expect(stdout).toContain(
      `${target} record(s) before it verified; last good head ${headText(lines[target - 1]!)}`,
    );
  });

  it('a line deleted: exit 1 at the line where it was', () => {
    const path = copy('deleted.jsonl', (l) => l.filter((_, i) => i !== target));
    const { code, stdout } = verify(path);
    expect(code).toBe(1);
    expect(stdout).toContain(`BROKEN at line ${target + 1} (seq ${target + 2}):`);
    expect(stdout).toContain('1 record(s) missing');
    expect(stdout).toContain(`${target} record(s) before it verified`);
  });

  it('two lines reordered: exit 1 at the first of them', () => {
    const path = copy('reordered.jsonl', (l) => {
      [l[target], l[target + 1]] = [l[target + 1]!, l[target]!];
      return l;
    });
    const { code, stdout } = verify(path);
    expect(code).toBe(1);
    expect(stdout).toContain(`BROKEN at line ${target + 1} (seq ${target + 2}):`);
    expect(stdout).toContain(`${target} record(s) before it verified`);
  });

  it('a line duplicated: exit 1 at the copy', () => {
    const path = copy('duplicated.jsonl', (l) => [
      ...l.slice(0, target + 1),
      l[target]!,
      ...l.slice(target + 1),
    ]);
    const { code, stdout } = verify(path);
    expect(code).toBe(1);
    expect(stdout).toContain(`BROKEN at line ${target + 2} (seq ${target + 1}):`);
    expect(stdout).toContain('repeated or reordered');
  });

  // What `verify` used to accept as "a torn line": a record without a chain link between two real
  // ones. Only an unterminated last line may be torn (src/audit/chain.ts).
  const FORGED = JSON.stringify({
    time: '2026-01-01T00:00:00.000Z',
    method: 'tools/call',
    tool: 'admin_reset',
    decision: 'allow',
    status: 200,
  });

  it('a forged, unchained record inserted between two genuine ones: exit 1, naming it', () => {
    const path = copy('inserted.jsonl', (l) => [...l.slice(0, target), FORGED, ...l.slice(target)]);
    const { code, stdout } = verify(path);
    expect(code).toBe(1);
    expect(stdout).toContain(`BROKEN at line ${target + 1}: not a chained record (no mac)`);
    expect(stdout).toContain(`${target} record(s) before it verified`);
    expect(stdout).not.toContain('is torn');
  });

  it('a forged record with a seq and a made-up mac inserted: exit 1, naming it with its seq', () => {
    const fake = `${JSON.stringify({ seq: target + 1, tool: 'admin_reset' }).slice(0, -1)},"mac":"${'0'.repeat(64)}"}`;
    const path = copy('inserted-with-mac.jsonl', (l) => [...l.slice(0, target), fake, ...l.slice(target)]);
    const { code, stdout } = verify(path);
    expect(code).toBe(1);
    expect(stdout).toContain(`BROKEN at line ${target + 1} (seq ${target + 1}): mac does not match`);
  });

  it('a forged line appended at the end with a newline: exit 1, naming it', () => {
    const path = copy('appended.jsonl', (l) => [...l, FORGED]);
    const { code, stdout } = verify(path);
    expect(code).toBe(1);
    expect(stdout).toContain(`BROKEN at line ${lines.length + 1}: not a chained record`);
    expect(stdout).toContain(`${lines.length} record(s) before it verified`);
  });

  it('an unterminated last line: exit 0, every record verified, the line named as torn', () => {
    const path = join(dir, 'unterminated.jsonl');
    writeFileSync(path, `${lines.join('\n')}\n${lines[0]!.slice(0, 33)}`);
    const { code, stdout } = verify(path);
    expect(code).toBe(0);
    expect(stdout).toContain(`line ${lines.length + 1}, the last, is torn and has no newline`);
    expect(stdout).toContain(`OK: ${lines.length} record(s) verified; chain head ${headText(lines.at(-1)!)}`);
  });

  it('an edited file re-MACed from scratch with another key: exit 1 at line 1', () => {
    const chain = createChain(OTHER_KEY);
    const path = copy('forged.jsonl', (l) =>
      l.map((line, i) => {
        const { seq: _seq, mac: _mac, ...record } = parse(line);
        if (i === target) record.arguments = { text: 'something else entirely' };
        return chain.seal(record).slice(0, -1);
      }),
    );
    // A well-formed chain (it verifies under the key that made it)…
    const own = verify(path, [], OTHER_KEY);
    expect(own.code).toBe(0);
    expect(own.stdout).toContain(`OK: ${lines.length} record(s) verified`);
    // …that the real key refuses from its first line.
    const { code, stdout } = verify(path);
    expect(code).toBe(1);
    expect(stdout).toContain('BROKEN at line 1 (seq 1): mac does not match');
    expect(stdout).toContain('0 record(s) before it verified');
  });

  it('the untouched file under a wrong key: exit 1 at line 1', () => {
    const { code, stdout } = verify(file, [], OTHER_KEY);
    expect(code).toBe(1);
    expect(stdout).toContain('BROKEN at line 1 (seq 1)');
  });

  it('no key in the environment: exit 2, naming the variable', () => {
    const { code, stdout, stderr } = verify(file, [], null);
    expect(code).toBe(2);
    expect(stderr).toContain(`${KEY_ENV} is not set`);
    expect(stdout).toBe('');
    // An empty variable is no key either.
    expect(verify(file, [], '').code).toBe(2);
  });

  it('usage errors: exit 2 (a malformed --after, a missing file)', () => {
    const malformed = verify(file, ['--after', '3:abc']);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('--after takes SEQ:MAC');
    const missing = verify(join(dir, 'no-such-file.jsonl'));
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('cannot read');
  });
});

describe('a gateway restarted on the same file', () => {
  it('continues the chain: seq carries on and the whole file verifies', async () => {
    const file = join(dir, 'restart.jsonl');
    const log: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        log.push(String(chunk));
        done();
      },
    });
    const audit = `chainKey: "${KEY}"`;

    const first = await startTestGateway({ routes: [{ upstream: upstream.url }], auditFile: file, audit });
    try {
      await makeCalls(`${first.url}/mcp`, ['one', 'two']);
      await settledLines(file, 3);
    } finally {
      await first.close();
    }
    const firstLines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    const firstHead = headText(firstLines.at(-1)!);

    const second = await startTestGateway({
      routes: [{ upstream: upstream.url }],
      auditFile: file,
      audit,
      log: sink,
    });
    try {
      await makeCalls(`${second.url}/mcp`, ['three']);
      await settledLines(file, firstLines.length + 2);
    } finally {
      await second.close();
    }
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    expect(lines.slice(0, firstLines.length)).toEqual(firstLines);
    expect(lines.length).toBeGreaterThan(firstLines.length);
    expect(lines.map((l) => parse(l).seq)).toEqual(lines.map((_, i) => i + 1));
    expect(toolCalls(lines)).toBe(5);
    // The second gateway said where it continued from.
    expect(log.join('')).toContain(`"auditChain":"${firstHead}"`);

    const { code, stdout } = verify(file);
    expect(code).toBe(0);
    expect(stdout).toContain(`OK: ${lines.length} record(s) verified; chain head ${headText(lines.at(-1)!)}`);
  });
});

describe('a gateway restarted on a file whose last line was cut mid-write (a crash)', () => {
  let file: string;
  let before: string[];
  let partial: string;
  const log: string[] = [];

  beforeAll(async () => {
    file = join(dir, 'crashed.jsonl');
    const chain = createChain(KEY);
    before = [chain.seal({ tool: 'echo' }), chain.seal({ tool: 'add' })].map((l) => l.slice(0, -1));
    partial = chain.seal({ tool: 'cut short' }).slice(0, 25);
    writeFileSync(file, `${before.join('\n')}\n${partial}`);
    const gateway = await startTestGateway({
      routes: [{ upstream: upstream.url }],
      auditFile: file,
      audit: `chainKey: "${KEY}"`,
      log: new Writable({
        write(chunk, _encoding, done) {
          log.push(String(chunk));
          done();
        },
      }),
    });
    try {
      await makeCalls(`${gateway.url}/mcp`, ['after the crash']);
      await settledLines(file, before.length + 3);
    } finally {
      await gateway.close();
    }
  });

  it('continues the chain from the last whole record, past the torn line', () => {
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    expect(lines.slice(0, 2)).toEqual(before);
    // The torn line stays as it is; the gateway ended it, and its next record declares it.
    expect(lines[2]).toBe(partial);
    expect(parse(lines[3]!)).toMatchObject({
      seq: 3,
      event: 'torn-line',
      torn: { bytes: partial.length, sha256: createHash('sha256').update(partial).digest('hex') },
    });
    expect(parse(lines[4]!).seq).toBe(4);
    expect(log.join('')).toContain('torn by a crash');
    const { code, stdout } = verify(file);
    expect(code).toBe(0);
    expect(stdout).toContain('line 3 is torn (a crash mid-write); the gateway ended it at restart');
    expect(stdout).toContain(
      `OK: ${lines.length - 1} record(s) verified; chain head ${headText(lines.at(-1)!)}`,
    );
  });

  /** A copy of the crashed-and-restarted file with `edit` applied to its lines. */
  const tampered = (name: string, edit: (lines: string[]) => string[]) => {
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    const path = join(dir, name);
    writeFileSync(path, `${edit(lines).join('\n')}\n`);
    return path;
  };
  const FORGED = JSON.stringify({ tool: 'admin_reset', decision: 'allow' });

  it.each([
    ['right after the genuine torn line', 3, 4],
    ['right before the genuine torn line', 2, 3],
    ['between the records after the restart', 5, 6],
  ])('a forged line inserted %s: exit 1, naming it', (_, at, line) => {
    const path = tampered(`crashed-inserted-${at}.jsonl`, (l) => [...l.slice(0, at), FORGED, ...l.slice(at)]);
    const { code, stdout } = verify(path);
    expect(code).toBe(1);
    expect(stdout).toContain(`BROKEN at line ${line}: not a chained record`);
  });

  it('the torn line removed: exit 1 at the record that declares it', () => {
    const path = tampered('crashed-torn-removed.jsonl', (l) => [...l.slice(0, 2), ...l.slice(3)]);
    const { code, stdout } = verify(path);
    expect(code).toBe(1);
    expect(stdout).toContain('BROKEN at line 3 (seq 3): declares a torn line before it, and there is none');
  });

  it('the torn line replaced by a forged one: exit 1 at it', () => {
    const path = tampered('crashed-torn-replaced.jsonl', (l) => [...l.slice(0, 2), FORGED, ...l.slice(3)]);
    const { code, stdout } = verify(path);
    expect(code).toBe(1);
    expect(stdout).toContain('BROKEN at line 3: not a chained record');
  });

  it('a record deleted before the torn line is still found', () => {
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    const tampered = join(dir, 'crashed-and-tampered.jsonl');
    // An attacker removes record 2 and leaves a torn line, hoping it reads as a crash.
    writeFileSync(tampered, `${[lines[0], lines[2], ...lines.slice(3)].join('\n')}\n`);
    const { code, stdout } = verify(tampered);
    expect(code).toBe(1);
    expect(stdout).toContain('BROKEN at line 2');
  });
});

describe('arguments: hash', () => {
  it('writes no argument value, only HMACs under the chain key', async () => {
    const file = join(dir, 'hash.jsonl');
    const secretText = 'correct-horse-battery-staple-4711';
    const secretNumber = 48_151_623;
    const secretTopic = 'the-vault-combination-9921';
    const gateway = await startTestGateway({
      routes: [{ upstream: upstream.url }],
      auditFile: file,
      audit: `chainKey: "${KEY}", arguments: hash`,
    });
    try {
      const client = await connectV2Client(`${gateway.url}/mcp`);
      try {
        expect(firstText(await client.callTool({ name: 'echo', arguments: { text: secretText } }))).toBe(
          secretText,
        );
        expect(firstText(await client.callTool({ name: 'add', arguments: { a: secretNumber, b: 1 } }))).toBe(
          String(secretNumber + 1),
        );
        await client.getPrompt({ name: FIXTURE_PROMPT_NAME, arguments: { topic: secretTopic } });
      } finally {
        await client.close();
      }
      await settledLines(file, 3);
    } finally {
      await gateway.close();
    }
    const text = readFileSync(file, 'utf8');
    for (const secret of [secretText, String(secretNumber), String(secretNumber + 1), secretTopic, 'horse'])
      expect(text).not.toContain(secret);

    const records = text
      .split('\n')
      .filter(Boolean)
      .map((l) => parse(l));
    const derived = createHmac('sha256', KEY).update('portcullis audit arguments v1').digest();
    const mac = (value: unknown) =>
      `hmac-sha256:${createHmac('sha256', derived).update(JSON.stringify(value)).digest('hex')}`;
    expect(records).toContainEqual(
      expect.objectContaining({ tool: 'echo', arguments: { text: mac(secretText) } }),
    );
    expect(records).toContainEqual(
      expect.objectContaining({ tool: 'add', arguments: { a: mac(secretNumber), b: mac(1) } }),
    );
    expect(records).toContainEqual(
      expect.objectContaining({ prompt: FIXTURE_PROMPT_NAME, arguments: { topic: mac(secretTopic) } }),
    );
    expect(verify(file).code).toBe(0);
  });
});

describe('a rotated file (renamed, then the gateway reopens its audit file as on SIGUSR2)', () => {
  let gateway: TestGateway | undefined;
  afterAll(async () => {
    await gateway?.close();
  });

  it('the new file continues the chain and verifies only --after the old file’s last head', async () => {
    const file = join(dir, 'rotate.jsonl');
    const rotated = join(dir, 'rotate.jsonl.1');
    gateway = await startTestGateway({
      routes: [{ upstream: upstream.url }],
      auditFile: file,
      audit: `chainKey: "${KEY}"`,
    });
    await makeCalls(`${gateway.url}/mcp`, ['before rotation']);
    await settledLines(file, 2);

    renameSync(file, rotated);
    gateway.reopenAudit();
    await makeCalls(`${gateway.url}/mcp`, ['after rotation', 'and again']);
    await settledLines(file, 3);
    await gateway.close();
    gateway = undefined;

    const old = readFileSync(rotated, 'utf8').split('\n').filter(Boolean);
    const fresh = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    expect(toolCalls(old)).toBe(2);
    expect(toolCalls(fresh)).toBe(3);
    const lastOld = parse(old.at(-1)!);
    expect(parse(fresh[0]!).seq).toBe(lastOld.seq + 1);
    expect(fresh.map((l) => parse(l).seq)).toEqual(fresh.map((_, i) => lastOld.seq + 1 + i));

    // The old file on its own: whole.
    const before = verify(rotated);
    expect(before.code).toBe(0);
    expect(before.stdout).toContain(`chain head ${headText(old.at(-1)!)}`);

    // The new file alone from GENESIS: broken at line 1, and the CLI says to pass --after.
    const alone = verify(file);
    expect(alone.code).toBe(1);
    expect(alone.stdout).toContain(`BROKEN at line 1 (seq ${lastOld.seq + 1})`);
    expect(alone.stdout).toContain('--after');

    // From the old file's last head: whole.
    const after = verify(file, ['--after', headText(old.at(-1)!)]);
    expect(after.code).toBe(0);
    expect(after.stdout).toContain(
      `OK: ${fresh.length} record(s) verified; chain head ${headText(fresh.at(-1)!)}`,
    );

    // From any other head: broken.
    if (old.length > 1) expect(verify(file, ['--after', headText(old.at(-2)!)]).code).toBe(1);
    const wrongMac = `${lastOld.seq}:${parse(old[0]!).mac}`;
    expect(verify(file, ['--after', wrongMac]).code).toBe(1);

    // And the two files end to end are one chain.
    const joined = join(dir, 'rotate-joined.jsonl');
    writeFileSync(joined, `${[...old, ...fresh].join('\n')}\n`);
    expect(verify(joined).code).toBe(0);
  });
});
