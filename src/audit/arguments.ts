import { createHmac } from 'node:crypto';

export type ArgumentsMode = 'omit' | 'hash' | 'redact' | 'full';

const REDACTED = '[redacted]';

/**
 * How a request's arguments appear in its audit record (`audit.arguments`):
 * - `omit`: not at all;
 * - `hash`: each top-level argument as `hmac-sha256:<hex>` of its JSON under a key derived from the
 *   chain key (`argumentsKey`) — which
 *   keys were passed, and a way to confirm a suspected value, without storing it (a bare SHA-256 of
 *   a short value is reversible by trying them all);
 * - `redact`: in full, except values whose key matches `redactKeys` (case-insensitive) at any depth;
 * - `full`: as sent.
 */
export function createArgumentsView(
  mode: ArgumentsMode,
  opts: { readonly redactKeys: readonly string[]; readonly key?: string | undefined },
): (args: unknown) => unknown {
  switch (mode) {
    case 'omit':
      return () => undefined;
    case 'full':
      return (args) => args;
    case 'hash': {
      // The schema refuses `hash` without `chainKey`.
      if (opts.key === undefined) throw new Error('audit.arguments: hash needs audit.chainKey');
      // A key of its own, derived from the chain key: were they the same, a client could send an
      // argument shaped like a first record and find a valid chain MAC for it in the file.
      const key = argumentsKey(opts.key);
      const mac = (value: unknown) =>
        `hmac-sha256:${createHmac('sha256', key)
          .update(JSON.stringify(value) ?? 'undefined')
          .digest('hex')}`;
      return (args) => {
        if (args === undefined) return undefined;
        if (!isPlainObject(args)) return mac(args);
        return Object.fromEntries(Object.entries(args).map(([name, value]) => [name, mac(value)]));
      };
    }
    case 'redact': {
      const secret = new Set(opts.redactKeys.map((k) => k.toLowerCase()));
      const redact = (value: unknown): unknown => {
        if (Array.isArray(value)) return value.map(redact);
        if (!isPlainObject(value)) return value;
        return Object.fromEntries(
          Object.entries(value).map(([name, inner]) => [
            name,
            secret.has(name.toLowerCase()) ? REDACTED : redact(inner),
          ]),
        );
      };
      return redact;
    }
  }
}

/** The key argument hashes are made with: HMAC(chainKey, a fixed label), never the chain key itself. */
export function argumentsKey(chainKey: string): Buffer {
  return createHmac('sha256', chainKey).update('portcullis audit arguments v1').digest();
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
