/**
 * What a stdio `Call` settled its `send` with, for the unit tests of the stdio modules: the one
 * answer or refusal, and the answer's body read whole.
 */
import type { Readable } from 'node:stream';
import { expect } from 'vitest';
import { isRefusal, type Refusal } from '../../src/errors.js';
import type { UpstreamAnswer } from '../../src/upstream/upstream.js';

export type Settled = readonly (UpstreamAnswer | Refusal)[];

/** The one answer settled (a refusal fails the test). */
export function answerOf(settled: Settled): UpstreamAnswer {
  expect(settled).toHaveLength(1);
  const answer = settled[0];
  if (answer === undefined || isRefusal(answer)) throw new Error('expected an answer, got a refusal');
  return answer;
}

/** The one refusal settled (an answer fails the test). */
export function refusalOf(settled: Settled): Refusal {
  expect(settled).toHaveLength(1);
  const answer = settled[0];
  if (answer === undefined || !isRefusal(answer)) throw new Error('expected a refusal');
  return answer;
}

/** A body read to its end. */
export async function read(body: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(Buffer.from(chunk as Buffer | string));
  return Buffer.concat(chunks).toString('utf8');
}
