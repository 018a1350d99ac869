import { createHmac } from 'node:crypto';

export type ArgumentsMode = 'omit' | 'hash' | 'redact' | 'full';

const REDACTED = '[redacted]';

/**
 * How a request's arguments appear in its audit record (`audit.arguments`):
 * - `omit`: not at all;
 * - `hash`: each top-level argument as `hmac-sha256:<hex>` of its JSON under the chain key — which
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
      const key = opts.key;
      // The schema refuses `hash` without `chainKey`.
      if (key === undefined) throw new Error('audit.arguments: hash needs audit.chainKey');
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

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
