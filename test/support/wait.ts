/** Waiting in tests: a plain delay, and polling a request until the gateway answers as expected. */

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Sends `send()` every `everyMs` until an answer has `status` or `timeoutMs` passes (each answer's
 * body read); resolves with the last status seen, for the caller to assert on. For a dependency
 * coming back (Redis restarted, reconnected with capped backoff).
 */
export async function untilStatus(
  send: () => Promise<Response>,
  status: number,
  opts: { readonly timeoutMs: number; readonly everyMs: number },
): Promise<number> {
  const deadline = Date.now() + opts.timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    const answer = await send();
    last = answer.status;
    await answer.text();
    if (last === status) break;
    await sleep(opts.everyMs);
  }
  return last;
}
