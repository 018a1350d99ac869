import { isRefusal, type Refusal } from '../errors.js';
import type { Authenticated, Parsed } from '../exchange.js';
import { parseMcpRequest } from '../jsonrpc/request.js';
import { readBody } from './body.js';

export interface ParsingDeps {
  /** `limits.maxBodyBytes`. */
  readonly maxBodyBytes: number;
  /** `limits.maxJsonDepth`. */
  readonly maxJsonDepth: number;
}

/** A body too large to read is refused with the connection closed: the rest of it is never read. */
export type ParseResult = Parsed | Refusal | 'gone';

/**
 * The parse stage (DESIGN.md step 5, POST only): the body read within `limits.maxBodyBytes`,
 * strict JSON-RPC parsed (the strict-JSON scan runs on each chunk as it arrives), mirrored MCP
 * headers checked against it. What is forwarded later is the parsed message re-serialized. A
 * refusal that has the parsed body keeps it on the exchange, so the answer and the audit name each
 * message. `'gone'`: the client left while its body was read (the exchange finished already).
 */
export function createParsing({
  maxBodyBytes,
  maxJsonDepth,
}: ParsingDeps): (exchange: Authenticated) => Promise<ParseResult> {
  return async (exchange) => {
    let text: Awaited<ReturnType<typeof readBody>>;
    try {
      text = await readBody(exchange.req, maxBodyBytes, maxJsonDepth);
    } catch (err) {
      // The request stream fails when its client leaves mid-body: nothing to answer.
      if (exchange.clientGone) return 'gone';
      throw err;
    }
    if (isRefusal(text)) return text;
    const request = parseMcpRequest(text, exchange.req.headers, exchange.session?.version);
    if ('refusal' in request) {
      exchange.body = request.body;
      return request.refusal;
    }
    exchange.body = request.body;
    exchange.version = request.version;
    return exchange as Parsed;
  };
}
