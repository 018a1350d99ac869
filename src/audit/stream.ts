import { closeSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import pino from 'pino';
import type { AuditDecision } from '../errors.js';
import {
  type Chain,
  type ChainHead,
  createChain,
  GENESIS,
  readTail,
  type Tail,
  tornLineRecord,
} from './chain.js';

/**
 * One audit record per JSON-RPC request and per refusal (DESIGN.md step 10; the schema is in
 * README). Never carries a credential: identities are named by key, subject, API key id or
 * certificate fingerprint. Keys are always in this order; JSON.stringify drops undefined ones.
 */
export interface AuditRecord {
  readonly time: string;
  readonly requestId: string;
  readonly route: string | null;
  /** SHA-256 of the sealed session id the client holds (legacy protocol), hex, first 32 digits. */
  readonly session: string | undefined;
  readonly clientAddress: string;
  readonly identity: AuditIdentity | null;
  /** A refused authentication: the method that failed and why (never the credential). */
  readonly authentication: { readonly method: string; readonly why: string } | undefined;
  readonly httpMethod: string;
  readonly method: string | null;
  readonly id: string | number | undefined;
  readonly tool: string | undefined;
  readonly resource: string | undefined;
  readonly prompt: string | undefined;
  /** Per `audit.arguments`: absent (`omit`), HMACs, redacted or in full. */
  readonly arguments: unknown;
  readonly decision: 'allow' | 'shadow-deny' | AuditDecision;
  readonly reason: string | undefined;
  /** The policy entry that decided (`tools.write_file`, `default: deny`, `method-table`). */
  readonly rule: string | undefined;
  readonly missingScopes: readonly string[] | undefined;
  /** A `when` rule that could not be evaluated: what went wrong, in fixed words (never a value). */
  readonly evaluationError?: string | undefined;
  readonly status: number;
  readonly upstreamStatus: number | null;
  /** A federated route's servers that served the request (absent on single-server routes). */
  readonly servers?: readonly string[] | undefined;
  /** A pinned route's call: the hash of the pinned definition it was checked against (which version ran). */
  readonly pin?: string | undefined;
  /** A `confirm` call: the step of its confirmation and the id that links the question to the answer. */
  readonly confirmation?: { readonly step: string; readonly id: string } | undefined;
  /** What the answer said at the MCP level; absent when no answer to this request was seen. */
  readonly outcome: { readonly isError: boolean; readonly errorCode?: number } | undefined;
  readonly durationMs: number;
}

/**
 * A record of what the gateway saw rather than of a request (README "Audit records"): a tool or
 * prompt definition that differs from its pin, or has none — once per definition hash.
 */
export interface DefinitionEvent {
  readonly time: string;
  readonly event: 'definition-changed';
  readonly route: string;
  /** The server of a federated route (absent: the route's one upstream). */
  readonly server: string | undefined;
  readonly kind: 'tool' | 'prompt';
  /** The name on the server (not the exposed, prefixed one). */
  readonly name: string;
  /** SHA-256 of the definition seen, or `unhashable`. */
  readonly hash: string;
  /** The pin's hash; absent when there is no pin. */
  readonly pinned: string | undefined;
  readonly verdict: 'changed' | 'unpinned';
  /** What the gateway does with it: `block` (hidden and refused) or `warn` (served). */
  readonly onToolChange: 'block' | 'warn';
}

/**
 * A record of an approval of a `confirm: approver` call (README "Human confirmation"): created,
 * decided on the page by an approver (who, from their login), or a decision the page refused.
 * Linked to the call's records by `approval` (their `confirmation.id`).
 */
export interface ApprovalEvent {
  readonly time: string;
  readonly event: 'approval';
  readonly step: 'pending' | 'approved' | 'denied' | 'refused';
  readonly approval: string;
  readonly route: string | undefined;
  readonly tool: string | undefined;
  /** The requester's identity key. */
  readonly requester: string | undefined;
  /** The person who decided, or tried to. */
  readonly by: { readonly issuer: string; readonly subject: string } | undefined;
  /** Why a decision was refused: `self_approval`, `not_approver`, `csrf`, `origin`, `no_session`, `decided`. */
  readonly reason: string | undefined;
}

export interface AuditIdentity {
  readonly key: string;
  readonly subject: string;
  readonly methods: readonly string[];
  readonly keyId?: string;
  readonly issuer?: string;
  /** SHA-256 fingerprint of the client certificate. */
  readonly certificateSha256?: string;
}

export interface AuditStream {
  /**
   * Whether records are written: false exactly for `destination: none`, where `write` discards
   * them — the finish step reads it to build no record at all (nor view any arguments).
   */
  readonly enabled: boolean;
  write(record: AuditRecord | DefinitionEvent | ApprovalEvent): void;
  /** The chain's last record, when records are chained. */
  head(): ChainHead | undefined;
  /** Reopens the file (after logrotate moved it; SIGUSR2); the chain continues. */
  reopen(): void;
  /** Writes what is buffered; called on shutdown. */
  close(): Promise<void>;
}

export interface AuditStreamOptions {
  /** `stdout`, a file path (appended; created with its directory), or `none`. */
  readonly destination: string;
  /** With a key, records are chained (`seq`, `mac`), continuing from the file's last record. */
  readonly chainKey?: string | undefined;
  readonly logger: Logger;
}

/** `stdout` or an appended file, written asynchronously (SonicBoom); flushed on close. */
export function createAuditStream({ destination, chainKey, logger }: AuditStreamOptions): AuditStream {
  if (destination === 'none') {
    logger.warn('audit.destination is none: no audit records are written (benchmarks and experiments only)');
    return {
      enabled: false,
      write: () => undefined,
      head: () => undefined,
      reopen: () => undefined,
      close: async () => undefined,
    };
  }
  const toStdout = destination === 'stdout';
  // A file that cannot be opened fails the start, loudly: a gateway must not run without its audit.
  if (!toStdout) {
    mkdirSync(dirname(destination), { recursive: true });
    // Created readable by the gateway's user alone: a stdio server running as another user (and
    // anyone else on the host) must not read who called what.
    closeSync(openSync(destination, 'a', 0o600));
  }
  const tail: Tail = toStdout ? { head: GENESIS, midLine: false, torn: undefined } : readTail(destination);
  let chain: Chain | undefined;
  if (chainKey !== undefined) {
    let start: ChainHead | undefined = tail.head;
    if (start === undefined) {
      logger.warn(
        { destination },
        'the audit file does not end with a chained record (a crash mid-write, or records written without a chainKey): a new chain starts at seq 1',
      );
      start = GENESIS;
    }
    chain = createChain(chainKey, start);
    logger.info({ auditChain: chainHeadText(start), destination }, 'audit chain continues from this head');
  }
  // Records are gathered here up to BUFFER_BYTES (or FLUSH_MS) and handed to the destination as
  // one string per batch: one write per record cost a thread-pool round trip each (a third of the
  // gateway's CPU at load), and handing SonicBoom each record measured its byte length, and its
  // whole pending buffer's, on every call.
  const dest = toStdout
    ? pino.destination({ dest: 1, sync: false })
    : pino.destination({
        dest: destination,
        sync: false,
        append: true,
        mkdir: true,
        // A file reopened after rotation is created 0600 too.
        mode: 0o600,
      });
  const batch = createBatch((text) => dest.write(text));
  let ready = false;
  let closed = false;
  dest.once('ready', () => {
    ready = true;
  });
  // A destination that cannot be opened or written (no such directory, a full disk, a failed
  // reopen) is logged and retried by the next write — never an unhandled 'error' that would take
  // the gateway down with it.
  dest.on('error', (err: NodeJS.ErrnoException) => {
    logger.error({ code: err.code, destination }, 'audit destination failed');
  });
  const flushTimer = setInterval(() => {
    batch.drain();
    if (ready) dest.flush();
  }, FLUSH_MS);
  flushTimer.unref();
  // A process that dies of an uncaught error still writes what it holds.
  const flushOnExit = () => {
    try {
      batch.drain();
      if (ready) dest.flushSync();
    } catch {
      // Nothing more can be done while exiting.
    }
  };
  process.once('exit', flushOnExit);
  // A file torn by a crash mid-write: the next record starts on a line of its own. A torn last line
  // is declared, in the same write, by a chained record naming its length and SHA-256: that is the
  // only way `audit verify` accepts a complete line without a chain link (chain.ts), so a line
  // inserted by someone without the key can never pass for a torn one.
  if (chain !== undefined && tail.torn !== undefined) {
    logger.warn(
      { destination, tornBytes: tail.torn.bytes },
      'the audit file ends with a line torn by a crash: it is ended and declared in the next record',
    );
    batch.add(`\n${chain.seal(tornLineRecord(tail.torn))}`);
  } else if (tail.midLine) batch.add('\n');
  return {
    enabled: true,
    write(record) {
      batch.add(chain === undefined ? `${JSON.stringify(record)}\n` : chain.seal(record));
    },
    head: () => chain?.head(),
    reopen() {
      if (toStdout || closed) return;
      try {
        dest.reopen();
      } catch (err) {
        logger.error({ err, destination }, 'audit file could not be reopened; still writing to the old one');
      }
    },
    close() {
      closed = true;
      clearInterval(flushTimer);
      batch.drain();
      process.off('exit', flushOnExit);
      return new Promise((resolve) => {
        if (toStdout) {
          // fd 1 is open from the start and must stay open: write what is buffered, keep the fd.
          dest.flushSync();
          resolve();
          return;
        }
        // Ending a file destination writes what is buffered, then closes the fd.
        dest.once('close', () => resolve());
        dest.end();
      });
    },
  };
}

/** Records are written when this much is gathered, or every FLUSH_MS, whichever comes first. */
const BUFFER_BYTES = 8_192;
const FLUSH_MS = 100;

/** Lines gathered in order, handed to `write` joined once they reach BUFFER_BYTES or on `drain`. */
interface Batch {
  add(line: string): void;
  drain(): void;
}

function createBatch(write: (text: string) => void): Batch {
  let lines: string[] = [];
  // UTF-16 units, not bytes: a threshold, so the cheaper count does (records are mostly ASCII).
  let length = 0;
  const drain = () => {
    if (lines.length === 0) return;
    const text = lines.length === 1 ? (lines[0] as string) : lines.join('');
    lines = [];
    length = 0;
    write(text);
  };
  return {
    add(line) {
      lines.push(line);
      length += line.length;
      if (length >= BUFFER_BYTES) drain();
    },
    drain,
  };
}

/**
 * The chain head to the operational log every `everyMs` (default a minute), and once more at
 * `stop` — call it after the stream is closed, so the last line names the last record. A truncated
 * audit tail shows against the last head logged.
 */
export function logChainHeads(audit: AuditStream, logger: Logger, everyMs = 60_000): { stop(): void } {
  const log = () => {
    const head = audit.head();
    if (head !== undefined) logger.info({ auditChain: chainHeadText(head) }, 'audit chain head');
  };
  const timer = setInterval(log, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      log();
    },
  };
}

/** `SEQ:MAC`, as the operational log prints it and `audit verify --after` reads it. */
export function chainHeadText(head: ChainHead): string {
  return `${head.seq}:${head.mac}`;
}
