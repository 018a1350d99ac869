/** Reading an SSE answer event by event while a test goes on (a long-lived stream: listen, GET). */

export interface SseCollector {
  /** Every event's `data` parsed, in order, as they arrive. */
  readonly events: Record<string, unknown>[];
  /** The client leaves: the stream is cancelled, and reading ends. */
  stop(): Promise<void>;
}

/** Starts reading `body`; the returned `events` fill up as the stream delivers them. */
export function collectSse(body: ReadableStream<Uint8Array>): SseCollector {
  const reader = body.getReader();
  const events: Record<string, unknown>[] = [];
  const reading = (async () => {
    const decoder = new TextDecoder();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end !== -1; end = buffer.indexOf('\n\n')) {
        const data = buffer
          .slice(0, end)
          .split('\n')
          .find((line) => line.startsWith('data: '));
        if (data !== undefined) events.push(JSON.parse(data.slice(6)) as Record<string, unknown>);
        buffer = buffer.slice(end + 2);
      }
    }
  })().catch(() => undefined);
  return {
    events,
    async stop() {
      await reader.cancel();
      await reading;
    },
  };
}
