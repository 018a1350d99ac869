import pino, { type DestinationStream, type LevelWithSilent, type Logger, type LoggerOptions } from 'pino';

/**
 * Paths masked in every operational log line. Belt and braces: no log call passes a credential or
 * a secret config value, and should one ever do, these are written as `[redacted]`. Compiled once,
 * when the logger is made (pino's redaction costs nothing on lines that do not carry the paths).
 */
const REDACTED_PATHS: readonly string[] = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'headers.authorization',
  'headers["x-api-key"]',
  'headers.cookie',
  'headers["proxy-authorization"]',
  'upstreamHeaders',
  '*.upstreamHeaders',
  'chainKey',
  '*.chainKey',
  'clientSecret',
  '*.clientSecret',
  'upstreamIdentity.clientSecret',
  '*.upstreamIdentity.clientSecret',
  'sessions.keys',
  'redis.url',
];

/** The operational log's level, base fields and redaction (tests log through the same). */
export function loggerOptions(level: LevelWithSilent): LoggerOptions {
  return {
    level,
    base: { service: 'portcullis' },
    redact: { paths: [...REDACTED_PATHS], censor: '[redacted]' },
  };
}

/**
 * The operational log (`log.level`). It goes to stderr by default so that stdout can carry the
 * audit stream alone; written asynchronously (the hot path never waits on the terminal).
 */
export function createLogger(
  level: LevelWithSilent,
  destination: DestinationStream = pino.destination({ dest: 2, sync: false }),
): Logger {
  return pino(loggerOptions(level), destination);
}
