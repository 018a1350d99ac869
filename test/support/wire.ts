/** What raw-HTTP tests need to speak the modern protocol and read the admin listener. */
import { expect } from 'vitest';
import type { Gateway } from '../../src/server/gateway.js';

export const MODERN = '2026-07-28';

/** The `_meta` every 2026-07-28 request carries. */
export const META = {
  'io.modelcontextprotocol/protocolVersion': MODERN,
  'io.modelcontextprotocol/clientInfo': { name: 'raw', version: '1' },
  'io.modelcontextprotocol/clientCapabilities': {},
};

/**
 * The headers of a hand-made 2026-07-28 POST: JSON in, JSON or SSE accepted, the version, and the
 * mirrored `Mcp-Method` (and `Mcp-Name` when the call names something).
 */
export function modernHeaders(method: string, name?: string): Record<string, string> {
  return {
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'mcp-protocol-version': MODERN,
    'mcp-method': method,
    ...(name === undefined ? {} : { 'mcp-name': name }),
  };
}

export async function metricsText(gateway: Pick<Gateway, 'adminUrl'>): Promise<string> {
  const answer = await fetch(`${gateway.adminUrl}/metrics`);
  expect(answer.status).toBe(200);
  return answer.text();
}

/** The sum of a counter's samples whose labels include every pair of `labels`. */
export function counterValue(text: string, name: string, labels: Record<string, string>): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match?.[1] !== name) continue;
    const present = match[2] ?? '';
    if (Object.entries(labels).every(([key, value]) => present.includes(`${key}="${value}"`)))
      total += Number(match[3]);
  }
  return total;
}
