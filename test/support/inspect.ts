/** Small readers shared by the integration tests: recorded upstream requests and SDK results. */
import { performance } from 'node:perf_hooks';
import type { RecordedRequest } from '../fixtures/peers.js';

/** A header of a recorded request, repeated values joined. */
export function header(request: RecordedRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

/** The JSON-RPC method of a recorded request's body (`undefined` for a batch, a response or no body). */
export function rpcMethod(request: RecordedRequest): unknown {
  return (request.body as { method?: unknown } | undefined)?.method;
}

/** The text of the first content block of a tool result. */
export function firstText(result: unknown): string {
  const content = (result as { content?: Array<{ type: string; text?: string }> }).content;
  const block = content?.[0];
  if (block?.type !== 'text' || block.text === undefined) throw new Error('no text content');
  return block.text;
}

/** Calls a tool with an onprogress callback; returns when each progress arrived and when the call resolved. */
export async function timeProgress(
  call: (onprogress: () => void) => Promise<unknown>,
): Promise<{ progressAt: number[]; resolvedAt: number; text: string }> {
  const progressAt: number[] = [];
  const result = await call(() => progressAt.push(performance.now()));
  return { progressAt, resolvedAt: performance.now(), text: firstText(result) };
}
