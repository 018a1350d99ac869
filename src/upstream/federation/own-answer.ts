import { Transform, type TransformCallback } from 'node:stream';
import type { RpcId } from '../../errors.js';

/** A server's JSON answer that answered another request than the client's: not relayed. */
export class ForeignAnswerError extends Error {
  constructor() {
    super('a server answered another request than the one routed to it');
    this.name = 'ForeignAnswerError';
  }
}

/**
 * A routed request's JSON answer, held until it is whole and relayed byte for byte only when the
 * responses in it answer `id` (DESIGN.md "Upstreams" → Federation): every server of a route
 * answers the same client, so a server answering another id would answer a request the client
 * sent another server. A JSON answer is of no use to the client before it is whole, so holding it
 * delays nothing; more than `limit` bytes, or another id, fails the stream (the relay cuts the
 * client's connection, as for any JSON answer it cannot carry). Text that is not JSON goes as it
 * came (the relay and the client deal with it as with any server's).
 */
export function ownAnswerOnly(id: RpcId, limit: number): Transform {
  const chunks: Buffer[] = [];
  let size = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, done: TransformCallback) {
      size += chunk.length;
      if (size > limit) return done(new ForeignAnswerError());
      chunks.push(chunk);
      done();
    },
    flush(done: TransformCallback) {
      const whole = Buffer.concat(chunks);
      if (answersAnother(whole.toString('utf8'), id)) return done(new ForeignAnswerError());
      done(null, whole);
    },
  });
}

/** Whether a JSON text holds a response to another id than `id` (a null id answers nothing). */
function answersAnother(text: string, id: RpcId): boolean {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return false;
  }
  return (Array.isArray(value) ? value : [value]).some((message) => {
    if (typeof message !== 'object' || message === null) return false;
    const { method, id: answered } = message as { method?: unknown; id?: unknown };
    return (
      method === undefined &&
      (typeof answered === 'string' || typeof answered === 'number') &&
      answered !== id
    );
  });
}
