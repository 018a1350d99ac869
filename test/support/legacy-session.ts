import type { Peer } from '../fixtures/peers.js';

/**
 * A legacy (2025-era) MCP session on the raw wire, for the confirmation tests: `initialize`, then
 * posts in the session, and the SSE answers read event by event.
 */

/** Tool calls of `name` a recorded upstream received. */
export const callsOf = (upstream: Pick<Peer, 'requests'>, name: string) =>
  upstream.requests.filter(
    (r) => (r.body as { params?: { name?: unknown } } | undefined)?.params?.name === name,
  ).length;

/** A `tools/call` of `echo`. */
export const echoCall = (id: number, text = 'drop table') => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name: 'echo', arguments: { text } },
});

/** The client's yes to the gateway's question `id`. */
export const yes = (id: unknown) => ({
  jsonrpc: '2.0',
  id,
  result: { action: 'accept', content: { confirm: true } },
});

/**
 * A raw legacy session as `key`: initialized with `capabilities` (form elicitation by default) at
 * `version`; `post` sends in it — to another gateway (`via`) or as another key (`as`) if asked.
 */
export async function rawSession(
  url: string,
  key: string,
  opts: { readonly capabilities?: Record<string, unknown>; readonly version?: string } = {},
) {
  const version = opts.version ?? '2025-11-25';
  const headers = {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    authorization: `Bearer ${key}`,
    'mcp-protocol-version': version,
  };
  const init = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 0,
      method: 'initialize',
      params: {
        protocolVersion: version,
        capabilities: opts.capabilities ?? { elicitation: { form: {} } },
        clientInfo: { name: 'raw', version: '1' },
      },
    }),
  });
  const session = init.headers.get('mcp-session-id') as string;
  await init.text();
  const inSession = { ...headers, 'mcp-session-id': session };
  await fetch(url, {
    method: 'POST',
    headers: inSession,
    body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
  }).then((r) => r.text());
  return {
    session,
    post: (body: unknown, via = url, as = key) =>
      fetch(via, {
        method: 'POST',
        headers: { ...inSession, authorization: `Bearer ${as}` },
        body: JSON.stringify(body),
      }),
  };
}

/** An SSE answer read as it comes: the next JSON-RPC messages, or all that is left. */
export function sseReader(body: ReadableStream<Uint8Array> | null) {
  if (body === null) throw new Error('no body');
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  return {
    /** The next `count` messages (fewer if the stream ends first). */
    async messages(count: number): Promise<Record<string, unknown>[]> {
      const messages: Record<string, unknown>[] = [];
      while (messages.length < count) {
        const end = text.indexOf('\n\n');
        if (end === -1) {
          const { value, done } = await reader.read();
          if (done) break;
          text += decoder.decode(value, { stream: true });
          continue;
        }
        const data = text
          .slice(0, end)
          .split('\n')
          .filter((line) => line.startsWith('data:'))
          .map((line) => line.slice(5).trimStart())
          .join('\n');
        text = text.slice(end + 2);
        if (data !== '') messages.push(JSON.parse(data) as Record<string, unknown>);
      }
      return messages;
    },
    /** Everything not read yet, to the end of the stream. */
    async rest(): Promise<string> {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return text;
        text += decoder.decode(value, { stream: true });
      }
    },
  };
}
