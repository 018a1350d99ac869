import pino from 'pino';
import type { AuditDecision } from '../errors.js';

/**
 * One audit record per JSON-RPC request and per refusal (minimal here; the observability issue
 * adds arguments, outcome and the HMAC chain). Never carries a credential.
 */
export interface AuditRecord {
  readonly time: string;
  readonly requestId: string;
  readonly route: string | null;
  readonly clientAddress: string;
  readonly identity: string | null;
  readonly httpMethod: string;
  readonly method: string | null;
  readonly id: string | number | undefined;
  readonly tool: string | undefined;
  readonly decision: 'allow' | 'shadow-deny' | AuditDecision;
  readonly reason: string | undefined;
  /** The policy entry that decided (`tools.write_file`, `default: deny`, `method-table`). */
  readonly rule: string | undefined;
  readonly missingScopes: readonly string[] | undefined;
  readonly upstreamStatus: number | null;
  readonly status: number;
  readonly durationMs: number;
}

export interface AuditStream {
  write(record: AuditRecord): void;
  /** Flushes what is buffered; called on shutdown. */
  close(): Promise<void>;
}

/** `stdout` or an appended file, written asynchronously (SonicBoom); flushed on close. */
export function createAuditStream(destination: string): AuditStream {
  const toStdout = destination === 'stdout';
  const dest = toStdout
    ? pino.destination({ dest: 1, sync: false, minLength: 0 })
    : pino.destination({ dest: destination, sync: false, append: true, mkdir: true, minLength: 0 });
  return {
    write(record) {
      dest.write(`${JSON.stringify(record)}\n`);
    },
    close() {
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
