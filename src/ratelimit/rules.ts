import type { RouteConfig } from '../config/schema.js';
import type { RpcMessage } from '../jsonrpc/parse.js';
import { compileTable } from '../policy/compile.js';
import { type Charge, parseRate, type Rate } from './limiter.js';

type RuleConfig = NonNullable<RouteConfig['rateLimits']>[number];

interface CompiledRule {
  readonly index: number;
  readonly per: RuleConfig['per'];
  readonly rate: Rate;
  /** The policy text of the limit, for `RateLimit-Policy` and error data. */
  readonly limit: string;
  /** Tool-name patterns the rule is limited to; every request when absent. */
  readonly tools?: (name: string) => boolean;
}

/** A charge with the rule it comes from, so refusals and headers can name it. */
export interface RuleCharge extends Charge {
  readonly rule: {
    readonly index: number;
    readonly per: string;
    readonly limit: string;
    readonly rate: Rate;
  };
}

/**
 * A route's `rateLimits`, compiled once (DESIGN.md step 7). A rule counts each JSON-RPC request —
 * not notifications, answers or GET streams — that passed authorization, once; `tools` narrows it
 * to `tools/call` of matching names. Keys carry the `{route}` hash tag, the rule index and the
 * `per` value, so one Redis script touches one Cluster slot.
 */
export function compileRateLimits(
  route: RouteConfig,
): (
  messages: readonly RpcMessage[],
  who: { readonly identity: string; readonly client: string },
) => RuleCharge[] {
  const rules: CompiledRule[] = (route.rateLimits ?? []).map((rule, index) => {
    const table = rule.tools
      ? compileTable('tools', Object.fromEntries(rule.tools.map((t) => [t, 'match'])))
      : undefined;
    return {
      index,
      per: rule.per,
      rate: parseRate(rule.limit, rule.burst),
      limit: rule.limit,
      ...(table ? { tools: (name: string) => table.lookup(name) !== undefined } : {}),
    };
  });
  const tag = `{${route.route}}`;
  return (messages, who) => {
    const charges: RuleCharge[] = [];
    if (rules.length === 0) return charges;
    for (const message of messages) {
      if (message.kind !== 'request') continue;
      const tool =
        message.method === 'tools/call' && typeof message.params?.name === 'string'
          ? message.params.name
          : undefined;
      for (const rule of rules) {
        if (rule.tools !== undefined && (tool === undefined || !rule.tools(tool))) continue;
        const per =
          rule.per === 'identity'
            ? who.identity
            : rule.per === 'identity+tool'
              ? `${who.identity}|${tool ?? message.method}`
              : rule.per === 'client'
                ? who.client
                : '';
        charges.push({
          key: `pc:rl:${tag}:${rule.index}:${per}`,
          rate: rule.rate,
          rule: { index: rule.index, per: rule.per, limit: rule.limit, rate: rule.rate },
        });
      }
    }
    return charges;
  };
}

/**
 * IETF `RateLimit-Policy` and `RateLimit` (draft-ietf-httpapi-ratelimit-headers-10) for the most
 * constraining of the charged rules.
 */
export function rateLimitHeaders(
  charges: readonly RuleCharge[],
  remaining: readonly number[],
  resetSec: readonly number[],
): Record<string, string> {
  let tightest = 0;
  remaining.forEach((left, i) => {
    if (left < (remaining[tightest] ?? Number.POSITIVE_INFINITY)) tightest = i;
  });
  const policies = charges
    .map(
      (c) =>
        `"r${c.rule.index}";q=${c.rule.rate.burst ?? c.rule.rate.limit};w=${Math.round(c.rule.rate.periodMs / 1000)}`,
    )
    .filter((value, i, all) => all.indexOf(value) === i);
  const rule = charges[tightest]?.rule;
  if (rule === undefined) return {};
  return {
    'ratelimit-policy': policies.join(', '),
    ratelimit: `"r${rule.index}";r=${remaining[tightest] ?? 0};t=${resetSec[tightest] ?? 0}`,
  };
}
