import type { RouteConfig } from '../config/schema.js';
import { countsForRateLimits, toolNameOf } from '../jsonrpc/methods.js';
import type { RpcMessage } from '../jsonrpc/parse.js';
import { compileTable } from '../policy/compile.js';
import { type Charge, parseRate, type Rate } from './limiter.js';

type RuleConfig = NonNullable<RouteConfig['rateLimits']>[number];

interface CompiledRule {
  /** What each charge names of its rule: one object per rule, not one per charge. */
  readonly described: RuleCharge['rule'];
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
    /** Its `RateLimit-Policy` item (`"r0";q=100;w=3600`). */
    readonly policyItem: string;
    readonly index: number;
    readonly per: string;
    readonly limit: string;
    readonly rate: Rate;
  };
}

/**
 * A route's `rateLimits`, compiled once (DESIGN.md step 8). A rule counts each JSON-RPC request —
 * not notifications, answers or GET streams (the method table's `rateLimited`) — that passed
 * authorization, once; `tools` narrows it to calls of matching tools (the table's `tool` target). Keys carry the `{route}` hash tag, the rule index and the
 * `per` value, so one Redis script touches one Cluster slot; see {@link rateLimitKey} for why
 * every part is escaped.
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
    const rate = parseRate(rule.limit, rule.burst);
    return {
      described: Object.freeze({
        policyItem: `"r${index}";q=${rate.burst ?? rate.limit};w=${Math.round(rate.periodMs / 1000)}`,
        index,
        per: rule.per,
        limit: rule.limit,
        rate,
      }),
      index,
      per: rule.per,
      rate,
      limit: rule.limit,
      ...(table ? { tools: (name: string) => table.lookup(name) !== undefined } : {}),
    };
  });
  const tag = `pc:rl|{${keyPart(route.route)}}|`;
  return (messages, who) => {
    const charges: RuleCharge[] = [];
    if (rules.length === 0) return charges;
    for (const message of messages) {
      if (message.kind !== 'request' || !countsForRateLimits(message.method)) continue;
      const tool = toolNameOf(message);
      for (const rule of rules) {
        if (rule.tools !== undefined && (tool === undefined || !rule.tools(tool))) continue;
        charges.push({
          key: rateLimitKey(tag, rule, who, tool, message.method),
          rate: rule.rate,
          rule: rule.described,
        });
      }
    }
    return charges;
  };
}

/**
 * The Redis (and in-process) key of one rule's counter: `pc:rl|{route}|index|per|parts…`, every
 * variable part escaped by {@link keyPart}. Identity keys, tool names and client addresses are
 * the caller's to choose in part (a JWT `sub`, a tool name, a trusted proxy's `X-Forwarded-For`):
 * joined raw, `alice|x` + tool `y` and `alice` + tool `x|y` would share one counter, and a tool
 * named like a method would share the method's. Escaped, no part holds a separator or a brace,
 * so distinct (rule, identity, tool, client) tuples never share a key and the `{route}` hash tag
 * is exactly the route (one Cluster slot per route).
 */
export function rateLimitKey(
  tag: string,
  rule: Pick<CompiledRule, 'index' | 'per'>,
  who: { readonly identity: string; readonly client: string },
  tool: string | undefined,
  method: string,
): string {
  const head = `${tag}${rule.index}|`;
  switch (rule.per) {
    case 'identity':
      return `${head}i|${keyPart(who.identity)}`;
    case 'identity+tool':
      // `t` names a tool, `m` a method (requests other than tools/call): never the same counter.
      return tool === undefined
        ? `${head}im|${keyPart(who.identity)}|${keyPart(method)}`
        : `${head}it|${keyPart(who.identity)}|${keyPart(tool)}`;
    case 'client':
      return `${head}c|${keyPart(who.client)}`;
    case 'route':
      return `${head}r`;
  }
}

/** Characters kept as they are in a key part; everything else is escaped. */
const PLAIN = /^[A-Za-z0-9._~:/@+-]*$/;

/**
 * An injective, ASCII-only spelling of `part`: characters outside {@link PLAIN} (the separator `|`,
 * braces, `%`, any non-ASCII) become `%` + four hex digits of their UTF-16 code unit. Code units,
 * not UTF-8: a lone surrogate (valid in a JSON string) would turn into U+FFFD on its way to Redis,
 * and two different names would meet in one key. Linear; the common all-plain part is returned as is.
 */
export function keyPart(part: string): string {
  if (PLAIN.test(part)) return part;
  let out = '';
  for (let i = 0; i < part.length; i++) {
    const unit = part.charCodeAt(i);
    out += isPlain(unit) ? String.fromCharCode(unit) : `%${unit.toString(16).padStart(4, '0')}`;
  }
  return out;
}

function isPlain(unit: number): boolean {
  return (
    (unit >= 0x30 && unit <= 0x3a) || // 0-9 :
    (unit >= 0x40 && unit <= 0x5a) || // @ A-Z
    (unit >= 0x61 && unit <= 0x7a) || // a-z
    unit === 0x2b || // +
    unit === 0x2d || // -
    unit === 0x2e || // .
    unit === 0x2f || // /
    unit === 0x5f || // _
    unit === 0x7e // ~
  );
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
  for (let i = 1; i < remaining.length; i++)
    if ((remaining[i] as number) < (remaining[tightest] as number)) tightest = i;
  const rule = charges[tightest]?.rule;
  if (rule === undefined) return {};
  // Each rule once, in the order charged (a batch charges a rule once per message).
  let policy = '';
  for (let i = 0; i < charges.length; i++) {
    const item = (charges[i] as RuleCharge).rule.policyItem;
    if (!isListedBefore(charges, i, item)) policy = policy === '' ? item : `${policy}, ${item}`;
  }
  return {
    'ratelimit-policy': policy,
    ratelimit: `"r${rule.index}";r=${remaining[tightest] ?? 0};t=${resetSec[tightest] ?? 0}`,
  };
}

function isListedBefore(charges: readonly RuleCharge[], end: number, item: string): boolean {
  for (let i = 0; i < end; i++) if ((charges[i] as RuleCharge).rule.policyItem === item) return true;
  return false;
}
