/**
 * src/logger.ts: the operational log never carries a credential or a secret config value, even
 * when a log call is handed one — request headers, upstream headers, the audit chain key, session
 * keys and the Redis URL are written as `[redacted]` — while the rest of the line stays readable;
 * the level is the configured one.
 */
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/logger.js';

const SECRET = 'pk_live_s3cr3t-value';

/** A logger writing into an array, one parsed line per entry. */
function capture(level: 'info' | 'warn' = 'info') {
  const lines: string[] = [];
  return { logger: createLogger(level, { write: (line: string) => lines.push(line) }), lines };
}

describe('createLogger', () => {
  it('masks credential headers of a request, wherever a log call nests them', () => {
    const { logger, lines } = capture();
    const headers = {
      authorization: `Bearer ${SECRET}`,
      'x-api-key': SECRET,
      cookie: `session=${SECRET}`,
      'proxy-authorization': `Basic ${SECRET}`,
      'user-agent': 'agent/1.0',
    };
    logger.info({ req: { method: 'POST', headers } }, 'request');
    logger.warn({ headers }, 'upstream answer');
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).not.toContain(SECRET);
    const [first, second] = lines.map((line) => JSON.parse(line) as Record<string, never>);
    expect(first).toMatchObject({
      service: 'portcullis',
      msg: 'request',
      req: {
        method: 'POST',
        headers: {
          authorization: '[redacted]',
          'x-api-key': '[redacted]',
          cookie: '[redacted]',
          'proxy-authorization': '[redacted]',
          'user-agent': 'agent/1.0',
        },
      },
    });
    expect(second).toMatchObject({ headers: { authorization: '[redacted]', 'user-agent': 'agent/1.0' } });
  });

  it('masks secret configuration values: upstream headers, chain key, session keys, the Redis URL', () => {
    const { logger, lines } = capture();
    logger.error(
      {
        route: { route: '/mcp', upstreamHeaders: { Authorization: `Bearer ${SECRET}` } },
        audit: { chainKey: SECRET },
        chainKey: SECRET,
        sessions: { keys: [SECRET] },
        redis: { url: `redis://:${SECRET}@redis:6379` },
      },
      'configuration',
    );
    expect(lines[0]).not.toContain(SECRET);
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({
      route: { route: '/mcp', upstreamHeaders: '[redacted]' },
      audit: { chainKey: '[redacted]' },
      chainKey: '[redacted]',
      sessions: { keys: '[redacted]' },
      redis: { url: '[redacted]' },
    });
  });

  it('writes at the configured level and above only', () => {
    const { logger, lines } = capture('warn');
    logger.info('not written');
    logger.warn('written');
    expect(lines.map((line) => (JSON.parse(line) as { msg: string }).msg)).toEqual(['written']);
  });
});
