/**
 * The chart's Grafana dashboard (helm/portcullis/dashboards/portcullis.json) and Prometheus rules
 * (helm/portcullis/alerts/rules.yaml) query only what a running gateway exports:
 *
 * - the dashboard is Grafana JSON (schemaVersion 39, `datasource`/`namespace`/`job`/`route`
 *   variables) with the panels operators expect, each with non-empty PromQL targets;
 * - rules.yaml is a list of rule groups, each alert with `expr`, `for`, `labels.severity` and a
 *   summary, description and runbook URL, and no Helm template syntax (the chart embeds it verbatim);
 * - every PromQL expression in both files parses (a small PromQL parser below: no maintained one
 *   ships in node_modules) and names only metric families of a real `/metrics` scrape — histogram
 *   series through `_bucket`/`_sum`/`_count` — or Prometheus's own `up`; `rate`/`increase` take
 *   counters (or histogram series), `histogram_quantile` keeps `le`; label matchers name labels the
 *   metric has (or scrape-target labels), with values the gateway produces; legends and alert
 *   annotations use only labels the expression's result carries.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { REFUSALS } from '../../src/errors.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { type MetricType, parsePrometheusText } from '../support/prometheus.js';
import { metricsText } from '../support/wire.js';

const CHART = join(import.meta.dirname, '../../helm/portcullis');
const DASHBOARD_TEXT = readFileSync(join(CHART, 'dashboards/portcullis.json'), 'utf8');
const RULES_TEXT = readFileSync(join(CHART, 'alerts/rules.yaml'), 'utf8');
const RUNBOOK = 'https://github.com/portcullis/portcullis#troubleshooting';

// ---------------------------------------------------------------------------------------------
// A PromQL lexer and recursive-descent parser: enough of the grammar to reject what Prometheus
// would reject in these files, and to see which metric each selector names (never a label name,
// a string, a function, a keyword, a duration or a number).
// ---------------------------------------------------------------------------------------------

interface Token {
  readonly kind: 'ident' | 'number' | 'duration' | 'string' | 'punct' | 'eof';
  readonly text: string;
  /** A string's value, unquoted and unescaped. */
  readonly value?: string;
  readonly pos: number;
}

const DURATION = /^(?:[0-9]+(?:ms|[smhdwy]))+(?![a-zA-Z0-9_])/;
const NUMBER = /^(?:0[xX][0-9a-fA-F]+|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)(?![a-zA-Z0-9_.])/;
const IDENT = /^[a-zA-Z_][a-zA-Z0-9_:]*/;
const PUNCT = ['=~', '!~', '==', '!=', '<=', '>=', '(', ')', '{', '}', '[', ']', ',', '=', '<', '>'];
const OPERATORS = ['+', '-', '*', '/', '%', '^', '@', ':'];

class PromqlError extends Error {
  constructor(message: string, expr: string, pos: number) {
    super(`${message} at ${pos}: ${expr.slice(0, pos)}⟨here⟩${expr.slice(pos)}`);
    this.name = 'PromqlError';
  }
}

function lex(expr: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < expr.length) {
    const rest = expr.slice(i);
    const c = expr[i] as string;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (c === '#') {
      const end = expr.indexOf('\n', i);
      i = end === -1 ? expr.length : end;
      continue;
    }
    if (c === '"' || c === "'" || c === '`') {
      let j = i + 1;
      let value = '';
      for (;;) {
        const d = expr[j];
        if (d === undefined || (d === '\n' && c !== '`'))
          throw new PromqlError('unterminated string', expr, i);
        if (d === c) break;
        if (d === '\\' && c !== '`') {
          const e = expr[j + 1];
          if (e === undefined) throw new PromqlError('unterminated string', expr, i);
          value += e === 'n' ? '\n' : e === 't' ? '\t' : e;
          j += 2;
          continue;
        }
        value += d;
        j++;
      }
      tokens.push({ kind: 'string', text: expr.slice(i, j + 1), value, pos: i });
      i = j + 1;
      continue;
    }
    const match = DURATION.exec(rest) ?? NUMBER.exec(rest) ?? IDENT.exec(rest);
    if (match !== null) {
      const kind = DURATION.test(rest) ? 'duration' : IDENT.test(rest) ? 'ident' : 'number';
      tokens.push({ kind, text: match[0], pos: i });
      i += match[0].length;
      continue;
    }
    const punct = [...PUNCT, ...OPERATORS].find((p) => rest.startsWith(p));
    if (punct === undefined) throw new PromqlError(`unexpected character ${JSON.stringify(c)}`, expr, i);
    tokens.push({ kind: 'punct', text: punct, pos: i });
    i += punct.length;
  }
  tokens.push({ kind: 'eof', text: '', pos: expr.length });
  return tokens;
}

interface Matcher {
  readonly label: string;
  readonly op: '=' | '!=' | '=~' | '!~';
  readonly value: string;
}

type Node =
  | { readonly type: 'number' }
  | { readonly type: 'string'; readonly value: string }
  | {
      readonly type: 'selector';
      readonly name: string;
      readonly matchers: readonly Matcher[];
      readonly range: boolean;
    }
  | { readonly type: 'call'; readonly fn: string; readonly args: readonly Node[] }
  | {
      readonly type: 'aggregate';
      readonly op: string;
      readonly grouping: { readonly without: boolean; readonly labels: readonly string[] } | undefined;
      readonly param: Node | undefined;
      readonly expr: Node;
    }
  | {
      readonly type: 'binary';
      readonly op: string;
      readonly left: Node;
      readonly right: Node;
      readonly on: { readonly ignoring: boolean; readonly labels: readonly string[] } | undefined;
      readonly group: { readonly side: 'left' | 'right'; readonly labels: readonly string[] } | undefined;
    }
  | { readonly type: 'paren' | 'unary' | 'subquery'; readonly expr: Node };

const AGGREGATIONS = new Set([
  'sum',
  'min',
  'max',
  'avg',
  'group',
  'stddev',
  'stdvar',
  'count',
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);
const PARAMETER_AGGREGATIONS = new Set([
  'count_values',
  'bottomk',
  'topk',
  'quantile',
  'limitk',
  'limit_ratio',
]);
/** Functions whose only argument is a range vector. */
const RANGE_FUNCTIONS = new Set([
  'rate',
  'irate',
  'increase',
  'delta',
  'idelta',
  'deriv',
  'changes',
  'resets',
  'avg_over_time',
  'min_over_time',
  'max_over_time',
  'sum_over_time',
  'count_over_time',
  'stddev_over_time',
  'stdvar_over_time',
  'last_over_time',
  'present_over_time',
  'absent_over_time',
  'mad_over_time',
]);
/** Every other PromQL function, with its [min, max] number of arguments. */
const FUNCTIONS: Record<string, readonly [number, number]> = {
  abs: [1, 1],
  absent: [1, 1],
  ceil: [1, 1],
  clamp: [3, 3],
  clamp_max: [2, 2],
  clamp_min: [2, 2],
  day_of_month: [0, 1],
  day_of_week: [0, 1],
  day_of_year: [0, 1],
  days_in_month: [0, 1],
  exp: [1, 1],
  floor: [1, 1],
  histogram_avg: [1, 1],
  histogram_count: [1, 1],
  histogram_fraction: [3, 3],
  histogram_quantile: [2, 2],
  histogram_stddev: [1, 1],
  histogram_stdvar: [1, 1],
  histogram_sum: [1, 1],
  hour: [0, 1],
  label_join: [3, Number.POSITIVE_INFINITY],
  label_replace: [5, 5],
  ln: [1, 1],
  log2: [1, 1],
  log10: [1, 1],
  minute: [0, 1],
  month: [0, 1],
  predict_linear: [2, 2],
  quantile_over_time: [2, 2],
  round: [1, 2],
  scalar: [1, 1],
  sgn: [1, 1],
  sort: [1, 1],
  sort_desc: [1, 1],
  sqrt: [1, 1],
  time: [0, 0],
  timestamp: [1, 1],
  vector: [1, 1],
  year: [0, 1],
};
/** Binary operators by precedence (higher binds tighter); `^` is right-associative. */
const PRECEDENCE: Record<string, number> = {
  or: 1,
  and: 2,
  unless: 2,
  '==': 3,
  '!=': 3,
  '<': 3,
  '>': 3,
  '<=': 3,
  '>=': 3,
  '+': 4,
  '-': 4,
  '*': 5,
  '/': 5,
  '%': 5,
  atan2: 5,
  '^': 6,
};
const COMPARISONS = new Set(['==', '!=', '<', '>', '<=', '>=']);
const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'bool',
  'offset',
  'and',
  'or',
  'unless',
  'atan2',
]);

/** Parses one PromQL expression; throws {@link PromqlError} where Prometheus would refuse it. */
function parsePromql(expr: string): Node {
  const tokens = lex(expr);
  let at = 0;
  const peek = (ahead = 0): Token => tokens[Math.min(at + ahead, tokens.length - 1)] as Token;
  const next = (): Token => {
    const token = peek();
    if (token.kind !== 'eof') at++;
    return token;
  };
  const fail = (message: string, token: Token = peek()): never => {
    throw new PromqlError(
      `${message}, found ${token.kind === 'eof' ? 'the end' : JSON.stringify(token.text)}`,
      expr,
      token.pos,
    );
  };
  const is = (text: string, token: Token = peek()) =>
    (token.kind === 'punct' || token.kind === 'ident') && token.text === text;
  const want = (text: string): Token => (is(text) ? next() : fail(`expected ${JSON.stringify(text)}`));
  const duration = (): Token => (peek().kind === 'duration' ? next() : fail('expected a duration'));

  const labelList = (): string[] => {
    want('(');
    const labels: string[] = [];
    while (!is(')')) {
      const label = next();
      if (label.kind !== 'ident') fail('expected a label name', label);
      labels.push(label.text);
      if (!is(')')) want(',');
    }
    want(')');
    return labels;
  };

  const matchers = (): Matcher[] => {
    want('{');
    const list: Matcher[] = [];
    while (!is('}')) {
      const label = next();
      if (label.kind !== 'ident') fail('expected a label name', label);
      const op = next();
      if (!['=', '!=', '=~', '!~'].includes(op.text) || op.kind !== 'punct')
        fail('expected a matcher operator', op);
      const value = next();
      if (value.kind !== 'string') fail('expected a quoted label value', value);
      if (op.text === '=~' || op.text === '!~') {
        try {
          new RegExp(`^(?:${value.value})$`);
        } catch {
          fail('invalid regular expression', value);
        }
      }
      list.push({ label: label.text, op: op.text as Matcher['op'], value: value.value as string });
      if (!is('}')) want(',');
    }
    want('}');
    return list;
  };

  const args = (): Node[] => {
    want('(');
    const list: Node[] = [];
    while (!is(')')) {
      list.push(parseExpr(0));
      if (!is(')')) want(',');
    }
    want(')');
    return list;
  };

  const grouping = () => {
    const without = next().text === 'without';
    return { without, labels: labelList() };
  };

  const primary = (): Node => {
    const token = peek();
    if (token.kind === 'number') {
      next();
      return { type: 'number' };
    }
    if (token.kind === 'string') {
      next();
      return { type: 'string', value: token.value as string };
    }
    if (is('(')) {
      next();
      const inner = parseExpr(0);
      want(')');
      return { type: 'paren', expr: inner };
    }
    if (token.kind !== 'ident') return fail('expected an expression');
    if (/^(inf|nan)$/i.test(token.text)) {
      next();
      return { type: 'number' };
    }
    if (AGGREGATIONS.has(token.text) && (is('(', peek(1)) || is('by', peek(1)) || is('without', peek(1)))) {
      next();
      let group = is('by') || is('without') ? grouping() : undefined;
      want('(');
      const param = PARAMETER_AGGREGATIONS.has(token.text) ? parseExpr(0) : undefined;
      if (param !== undefined) want(',');
      const inner = parseExpr(0);
      want(')');
      if (group === undefined && (is('by') || is('without'))) group = grouping();
      return { type: 'aggregate', op: token.text, grouping: group, param, expr: inner };
    }
    if (is('(', peek(1))) {
      next();
      const fn = token.text;
      const list = args();
      if (RANGE_FUNCTIONS.has(fn)) {
        if (list.length !== 1) fail(`${fn} takes one argument`, token);
      } else {
        const arity = FUNCTIONS[fn] ?? fail('unknown function', token);
        if (list.length < arity[0] || list.length > arity[1])
          fail(`wrong number of arguments to ${fn}`, token);
      }
      const rangeArg = RANGE_FUNCTIONS.has(fn) ? list[0] : fn === 'quantile_over_time' ? list[1] : undefined;
      if (rangeArg !== undefined && !isRangeVector(rangeArg)) fail(`${fn} needs a range vector`, token);
      return { type: 'call', fn, args: list };
    }
    if (KEYWORDS.has(token.text) || AGGREGATIONS.has(token.text)) return fail('unexpected keyword');
    next();
    return { type: 'selector', name: token.text, matchers: is('{') ? matchers() : [], range: false };
  };

  const postfix = (node: Node): Node => {
    let result = node;
    for (;;) {
      if (is('[')) {
        const open = next();
        duration();
        if (is(':')) {
          next();
          if (peek().kind === 'duration') next();
          want(']');
          result = { type: 'subquery', expr: result };
        } else {
          want(']');
          if (result.type !== 'selector' || result.range)
            return fail('a range applies to a vector selector only', open);
          result = { ...result, range: true };
        }
      } else if (is('offset')) {
        next();
        if (is('-')) next();
        duration();
      } else if (is('@')) {
        next();
        if (peek().kind === 'number') next();
        else if (is('start') || is('end')) {
          next();
          want('(');
          want(')');
        } else fail('expected a timestamp, start() or end()');
      } else return result;
    }
  };

  const unary = (): Node => {
    if (is('-') || is('+')) {
      next();
      return { type: 'unary', expr: unary() };
    }
    return postfix(primary());
  };

  function parseExpr(minPrecedence: number): Node {
    let left = unary();
    for (;;) {
      const token = peek();
      const precedence = PRECEDENCE[token.text];
      if (precedence === undefined || precedence < minPrecedence || token.kind === 'string') return left;
      next();
      if (is('bool')) {
        if (!COMPARISONS.has(token.text)) fail('bool applies to comparisons only');
        next();
      }
      let on: { ignoring: boolean; labels: string[] } | undefined;
      let group: { side: 'left' | 'right'; labels: string[] } | undefined;
      if (is('on') || is('ignoring')) {
        on = { ignoring: next().text === 'ignoring', labels: labelList() };
        if (is('group_left') || is('group_right')) {
          group = {
            side: next().text === 'group_left' ? 'left' : 'right',
            labels: is('(') ? labelList() : [],
          };
        }
      }
      if (group !== undefined && ['and', 'or', 'unless'].includes(token.text))
        fail(`no grouping with ${token.text}`, token);
      const right = parseExpr(token.text === '^' ? precedence : precedence + 1);
      left = { type: 'binary', op: token.text, left, right, on, group };
    }
  }

  const root = parseExpr(0);
  if (peek().kind !== 'eof') fail('unexpected token after the expression');
  return root;
}

function isRangeVector(node: Node): boolean {
  return (node.type === 'selector' && node.range) || node.type === 'subquery';
}

/** Every vector selector in an expression, with the function it is the argument of, if any. */
function selectors(
  node: Node,
  within?: string,
): { selector: Extract<Node, { type: 'selector' }>; within?: string }[] {
  switch (node.type) {
    case 'selector':
      return [{ selector: node, ...(within === undefined ? {} : { within }) }];
    case 'call':
      return node.args.flatMap((arg) => selectors(arg, node.fn));
    case 'aggregate':
      return [...(node.param === undefined ? [] : selectors(node.param)), ...selectors(node.expr)];
    case 'binary':
      return [...selectors(node.left), ...selectors(node.right)];
    case 'paren':
    case 'unary':
    case 'subquery':
      return selectors(node.expr, within);
    default:
      return [];
  }
}

// ---------------------------------------------------------------------------------------------
// What the gateway exports, from a real scrape; and the checks against it.
// ---------------------------------------------------------------------------------------------

/** Labels Prometheus (or the Prometheus Operator) adds to every series of a scrape target. */
const TARGET_LABELS = ['job', 'instance', 'namespace', 'pod', 'service', 'container', 'endpoint'];

/**
 * The values the gateway gives closed-set labels (registry.ts help texts, README "Metrics"): a
 * literal matcher outside them would select nothing, ever.
 */
const LABEL_VALUES: Record<string, Record<string, readonly string[]>> = {
  portcullis_refusals_total: { reason: Object.keys(REFUSALS) },
  portcullis_policy_decisions_total: { decision: ['allow', 'deny', 'shadow-deny'] },
  portcullis_tool_calls_total: {
    decision: ['allow', 'deny', 'shadow-deny', 'rate-limited', 'error'],
    outcome: ['ok', 'tool_error', 'rpc_error', 'none'],
  },
  portcullis_policy_reloads_total: { result: ['applied', 'invalid', 'refused'] },
  portcullis_upstream_errors_total: {
    kind: ['unreachable', 'timeout', 'bad_answer', 'stream_ended', 'too_large'],
  },
  portcullis_redis_errors_total: { kind: ['timeout', 'unavailable'] },
  portcullis_auth_failures_total: { method: ['apiKey', 'jwt', 'mtls', 'none'] },
  portcullis_certificate_expiry_timestamp_seconds: { certificate: ['serving', 'client_ca'] },
};

interface Exported {
  /** Family name → type, from the scrape. */
  readonly types: ReadonlyMap<string, MetricType>;
  /** Family name → its label names, from the gateway's registry. */
  readonly labels: ReadonlyMap<string, readonly string[]>;
}

interface SeriesInfo {
  readonly family: string;
  readonly type: MetricType | 'up';
  readonly suffix: '' | '_bucket' | '_sum' | '_count';
  readonly labels: ReadonlySet<string>;
}

function seriesInfo(name: string, exported: Exported): SeriesInfo | undefined {
  if (name === 'up') return { family: 'up', type: 'up', suffix: '', labels: new Set(TARGET_LABELS) };
  const candidates: [string, SeriesInfo['suffix']][] = [[name, '']];
  for (const suffix of ['_bucket', '_sum', '_count'] as const)
    if (name.endsWith(suffix)) candidates.push([name.slice(0, -suffix.length), suffix]);
  for (const [family, suffix] of candidates) {
    const type = exported.types.get(family);
    if (type === undefined || (suffix !== '' && type !== 'histogram')) continue;
    if (suffix === '' && type === 'histogram') return undefined; // a histogram is queried by its series
    const labels = new Set([...(exported.labels.get(family) ?? []), ...TARGET_LABELS]);
    if (suffix === '_bucket') labels.add('le');
    return { family, type, suffix, labels };
  }
  return undefined;
}

/** The labels an expression's result series carry (a superset: what they may carry). */
function resultLabels(node: Node, exported: Exported): Set<string> {
  switch (node.type) {
    case 'number':
    case 'string':
      return new Set();
    case 'selector':
      return new Set(seriesInfo(node.name, exported)?.labels ?? []);
    case 'paren':
    case 'unary':
    case 'subquery':
      return resultLabels(node.expr, exported);
    case 'aggregate': {
      const inner = resultLabels(node.expr, exported);
      if (['topk', 'bottomk', 'limitk', 'limit_ratio'].includes(node.op)) return inner;
      if (node.grouping === undefined) return new Set();
      const { without, labels } = node.grouping;
      return without ? new Set([...inner].filter((l) => !labels.includes(l))) : new Set(labels);
    }
    case 'call': {
      if (node.fn === 'histogram_quantile' || node.fn === 'histogram_fraction') {
        const labels = resultLabels(node.args.at(-1) as Node, exported);
        labels.delete('le');
        return labels;
      }
      if (node.fn === 'label_replace') {
        const labels = resultLabels(node.args[0] as Node, exported);
        const target = node.args[1];
        if (target?.type === 'string') labels.add(target.value);
        return labels;
      }
      const vector = node.args.find((arg) => arg.type !== 'number' && arg.type !== 'string');
      return ['time', 'vector', 'scalar', 'absent'].includes(node.fn) || vector === undefined
        ? new Set()
        : resultLabels(vector, exported);
    }
    case 'binary': {
      const left = resultLabels(node.left, exported);
      const right = resultLabels(node.right, exported);
      if (node.op === 'or') return new Set([...left, ...right]);
      if (isScalar(node.left)) return right;
      if (isScalar(node.right) || ['and', 'unless'].includes(node.op)) return left;
      if (node.group !== undefined) {
        const many = node.group.side === 'left' ? left : right;
        return new Set([...many, ...node.group.labels]);
      }
      if (node.on === undefined) return left;
      const { ignoring, labels } = node.on;
      return new Set([...left].filter((l) => labels.includes(l) !== ignoring));
    }
  }
}

function isScalar(node: Node): boolean {
  if (node.type === 'number') return true;
  if (node.type === 'call') return node.fn === 'time' || node.fn === 'scalar';
  if (node.type === 'paren' || node.type === 'unary') return isScalar(node.expr);
  if (node.type === 'binary') return isScalar(node.left) && isScalar(node.right);
  return false;
}

/**
 * Parses `expr` and checks it against what the gateway exports; returns the labels its result
 * carries. Grafana's interval variables are read as durations; other `$variables` only inside
 * label values.
 */
function checkExpression(expr: string, exported: Exported): Set<string> {
  const promql = expr.replace(
    /\$(?:__rate_interval|__interval|__range)\b|\$\{(?:__rate_interval|__interval|__range)\}/g,
    '5m',
  );
  const root = parsePromql(promql);
  const found = selectors(root);
  if (found.length === 0) throw new Error(`no metric in ${JSON.stringify(expr)}`);
  for (const { selector, within } of found) {
    const info = seriesInfo(selector.name, exported);
    if (info === undefined)
      throw new Error(`${selector.name} is not exported by the gateway (in ${JSON.stringify(expr)})`);
    if (
      within !== undefined &&
      ['rate', 'irate', 'increase', 'resets'].includes(within) &&
      info.type !== 'counter' &&
      info.suffix === ''
    )
      throw new Error(`${within}() of ${selector.name}, a ${info.type} (in ${JSON.stringify(expr)})`);
    if (within === 'histogram_quantile')
      throw new Error(`histogram_quantile needs rate() of _bucket series (in ${JSON.stringify(expr)})`);
    for (const matcher of selector.matchers) {
      if (!info.labels.has(matcher.label))
        throw new Error(`${selector.name} has no label ${matcher.label} (in ${JSON.stringify(expr)})`);
      const known = LABEL_VALUES[info.family]?.[matcher.label];
      // Literal values and plain alternations only: `5..`, `.*`, `$route` are not checked.
      if (known === undefined || !/^[A-Za-z0-9_-]+(?:\|[A-Za-z0-9_-]+)*$/.test(matcher.value)) continue;
      const values = matcher.op === '=~' || matcher.op === '!~' ? matcher.value.split('|') : [matcher.value];
      const unknown = values.filter((v) => !known.includes(v));
      if (unknown.length > 0)
        throw new Error(
          `${selector.name}{${matcher.label}} never takes ${unknown.join(', ')} (in ${JSON.stringify(expr)})`,
        );
    }
  }
  const visit = (node: Node): void => {
    if (node.type === 'call' && node.fn === 'histogram_quantile') {
      const arg = node.args[1] as Node;
      if (!resultLabels(arg, exported).has('le'))
        throw new Error(`histogram_quantile over series without le (in ${JSON.stringify(expr)})`);
      if (!selectors(arg).every(({ selector }) => selector.name.endsWith('_bucket')))
        throw new Error(`histogram_quantile over series that are not _bucket (in ${JSON.stringify(expr)})`);
    }
    if (node.type === 'call') node.args.forEach(visit);
    else if (node.type === 'aggregate') visit(node.expr);
    else if (node.type === 'binary') {
      visit(node.left);
      visit(node.right);
    } else if (node.type === 'paren' || node.type === 'unary' || node.type === 'subquery') visit(node.expr);
  };
  visit(root);
  return resultLabels(root, exported);
}

// ---------------------------------------------------------------------------------------------
// The files.
// ---------------------------------------------------------------------------------------------

interface Target {
  readonly expr?: unknown;
  readonly legendFormat?: unknown;
  readonly refId?: unknown;
  readonly datasource?: unknown;
}
interface Panel {
  readonly id?: unknown;
  readonly type?: unknown;
  readonly title?: unknown;
  readonly datasource?: unknown;
  readonly gridPos?: { x: number; y: number; w: number; h: number };
  readonly targets?: readonly Target[];
  readonly panels?: readonly Panel[];
}
interface Variable {
  readonly name: string;
  readonly type: string;
  readonly query?: unknown;
  readonly definition?: unknown;
  readonly includeAll?: boolean;
  readonly allValue?: unknown;
}
interface Dashboard {
  readonly uid: unknown;
  readonly title: unknown;
  readonly schemaVersion: unknown;
  readonly panels: readonly Panel[];
  readonly templating: { readonly list: readonly Variable[] };
  readonly annotations?: {
    readonly list: readonly {
      readonly expr?: unknown;
      readonly textFormat?: unknown;
      readonly titleFormat?: unknown;
    }[];
  };
}
interface Rule {
  readonly alert?: unknown;
  readonly record?: unknown;
  readonly expr?: unknown;
  readonly for?: unknown;
  readonly labels?: Record<string, unknown>;
  readonly annotations?: Record<string, unknown>;
}

const dashboard = JSON.parse(DASHBOARD_TEXT) as Dashboard;
const rules = parseYaml(RULES_TEXT) as { groups?: { name?: unknown; rules?: Rule[] }[] };

const allPanels = (list: readonly Panel[]): Panel[] => list.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
const panels = allPanels(dashboard.panels).filter((p) => p.type !== 'row');
const alerts = (rules.groups ?? []).flatMap((g) => g.rules ?? []);
const variables = dashboard.templating.list;
const variableQuery = (v: Variable): string =>
  typeof v.query === 'string' ? v.query : String((v.query as { query?: unknown } | undefined)?.query ?? '');

/** `{{label}}` placeholders of a Grafana legend. */
const placeholders = (format: unknown): string[] =>
  [...String(format ?? '').matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)].map((m) => m[1] ?? '');

const PANEL_TITLES = [
  'Requests per second',
  '5xx share',
  'Active SSE streams',
  'Loaded policy hash',
  'Certificate expiry (days left)',
  'Requests per second by route and status',
  'Request latency p50/p90/p99',
  'Upstream latency p50/p90/p99',
  'Tool calls by tool and decision',
  'Tool outcomes (tool_error / rpc_error)',
  'Policy denials (deny / shadow-deny)',
  'Refusals by reason',
  'Rate-limited and concurrency-limited calls',
  'Auth failures by method and reason',
  'Upstream errors by kind',
  'Redis errors and fail-open events',
  'Active SSE streams by route',
  'Policy reloads by result',
];

const ALERTS = [
  'PortcullisDown',
  'PortcullisErrorRate',
  'PortcullisUpstreamErrors',
  'PortcullisDenialSpike',
  'PortcullisAuthFailures',
  'PortcullisRateLimiterFailingOpen',
  'PortcullisRedisErrors',
  'PortcullisPolicyReloadFailed',
  'PortcullisCertificateExpiresSoon',
  'PortcullisCertificateExpiring',
];

let gateway: TestGateway;
let exported: Exported;

beforeAll(async () => {
  gateway = await startTestGateway({ routes: [{ upstream: 'http://127.0.0.1:9/mcp' }] });
  const families = parsePrometheusText(await metricsText(gateway));
  const labels = new Map<string, readonly string[]>();
  for (const metric of gateway.metrics.registry.getMetricsAsArray()) {
    const { name, labelNames } = metric as unknown as { name: string; labelNames?: readonly string[] };
    labels.set(name, labelNames ?? []);
  }
  exported = { types: new Map([...families].map(([name, f]) => [name, f.type])), labels };
  // The registry and the scrape agree on the families: labels are read from the right place.
  expect([...labels.keys()].sort()).toEqual([...families.keys()].sort());
});
afterAll(async () => {
  await gateway?.close();
});

describe('the PromQL checker', () => {
  const exp = () => exported;
  it('accepts what Prometheus accepts', () => {
    for (const ok of [
      'sum by (route) (rate(portcullis_requests_total{route="portcullis_nope", status=~"5.."}[5m]))',
      'sum(rate(portcullis_requests_total[5m])) without (route)',
      'histogram_quantile(0.9, sum by (le) (rate(portcullis_request_duration_seconds_bucket[1m])))',
      'rate(portcullis_request_duration_seconds_sum[5m]) / rate(portcullis_request_duration_seconds_count[5m])',
      'min(portcullis_certificate_expiry_timestamp_seconds) - time() < 14 * 86400 >= 3 * 86400',
      'up{job=~".*portcullis.*"} == 0',
      'max_over_time(portcullis_active_sse_streams[1h:5m] offset 1d) # comment',
      '-portcullis_policy_info ^ 2 ^ 3 * on (hash) group_left () portcullis_policy_info unless portcullis_policy_info',
    ])
      expect(() => checkExpression(ok, exp()), ok).not.toThrow();
  });

  it('rejects unknown metrics, bad syntax, wrong labels and values, rate of a gauge', () => {
    for (const [bad, why] of [
      ['rate(portcullis_request_total[5m])', /not exported/],
      ['portcullis_request_duration_seconds', /not exported/],
      ['portcullis_requests_total_count', /not exported/],
      ['sum(rate(portcullis_requests_total[5m])', /expected "\)"/],
      ['sum(rate(portcullis_requests_total{route="/mcp"[5m]))', /expected ","/],
      ['rate(portcullis_requests_total)', /range vector/],
      ['rate(portcullis_active_sse_streams[5m])', /a gauge/],
      ['portcullis_requests_total{tool="x"}', /no label tool/],
      ['portcullis_refusals_total{reason=~"rate_limited|ratelimited"}', /never takes ratelimited/],
      ['histogram_quantil(0.9, portcullis_request_duration_seconds_bucket)', /unknown function/],
      [
        'histogram_quantile(0.9, sum by (route) (rate(portcullis_request_duration_seconds_bucket[5m])))',
        /without le/,
      ],
      ['sum by (route) (portcullis_requests_total) {{ .Values.x }}', /unexpected/],
      ['portcullis_requests_total{route="$route"}[$range]', /unexpected character "\$"/],
      ['portcullis_requests_total{route=~"(unclosed"}', /regular expression/],
    ] as const)
      expect(() => checkExpression(bad, exp()), bad).toThrow(why);
  });

  it('knows which labels a result carries', () => {
    const labels = (e: string) => [...checkExpression(e, exp())].sort();
    expect(labels('sum by (route, status) (rate(portcullis_requests_total[5m]))')).toEqual([
      'route',
      'status',
    ]);
    expect(labels('sum(rate(portcullis_requests_total[5m]))')).toEqual([]);
    expect(
      labels(
        'histogram_quantile(0.5, sum by (le, route) (rate(portcullis_request_duration_seconds_bucket[5m])))',
      ),
    ).toEqual(['route']);
    expect(
      labels('(min by (certificate) (portcullis_certificate_expiry_timestamp_seconds) - time()) / 86400'),
    ).toEqual(['certificate']);
  });
});

describe('Grafana dashboard', () => {
  it('is the Portcullis dashboard, schema 39, with datasource, namespace, job and route variables', () => {
    expect(dashboard.uid).toBe('portcullis');
    expect(dashboard.title).toBe('Portcullis MCP gateway');
    expect(dashboard.schemaVersion).toBe(39);
    const byName = new Map(variables.map((v) => [v.name, v]));
    expect(byName.get('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    for (const name of ['namespace', 'job', 'route']) {
      const v = byName.get(name);
      expect(v, name).toMatchObject({ type: 'query', includeAll: true, allValue: '.*' });
    }
    expect(variableQuery(byName.get('route') as Variable)).toMatch(
      /^label_values\(portcullis_requests_total(\{[^}]*\})?, route\)$/,
    );
  });

  it('has the panels operators need, each with PromQL targets on the datasource variable', () => {
    const titles = panels.map((p) => p.title);
    expect(PANEL_TITLES.filter((t) => !titles.includes(t))).toEqual([]);
    expect(new Set(titles).size).toBe(titles.length);
    for (const panel of panels) {
      expect(['timeseries', 'stat'], String(panel.title)).toContain(panel.type);
      expect(panel.datasource, String(panel.title)).toEqual({ type: 'prometheus', uid: '${datasource}' });
      expect(panel.targets?.length ?? 0, String(panel.title)).toBeGreaterThan(0);
      const refIds = (panel.targets ?? []).map((t) => t.refId);
      expect(new Set(refIds).size, String(panel.title)).toBe(refIds.length);
      for (const t of panel.targets ?? []) {
        expect(typeof t.expr === 'string' && t.expr.trim() !== '', String(panel.title)).toBe(true);
        expect(t.datasource ?? panel.datasource).toEqual({ type: 'prometheus', uid: '${datasource}' });
      }
    }
  });

  it('lays out panels with unique ids, within 24 columns, not overlapping', () => {
    const all = allPanels(dashboard.panels);
    const ids = all.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of all) {
      const g = p.gridPos as NonNullable<Panel['gridPos']>;
      expect(g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0, String(p.title)).toBe(true);
      for (let x = g.x; x < g.x + g.w; x++)
        for (let y = g.y; y < g.y + g.h; y++) {
          expect(cells.has(`${x},${y}`), `${String(p.title)} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
    }
  });

  it('every expression parses, names only exported metrics, and its legend only labels it carries', () => {
    const defined = new Set(variables.map((v) => v.name));
    const checked: string[] = [];
    const check = (where: string, expr: string, ...formats: unknown[]) => {
      expect(expr, where).not.toContain('{{');
      for (const m of expr.matchAll(/\$\{?(\w+)/g))
        expect(
          defined.has(m[1] as string) || /^__(rate_interval|interval|range)$/.test(m[1] as string),
          `${where}: $${m[1]}`,
        ).toBe(true);
      // Rates over Grafana's $__rate_interval, never a fixed window.
      for (const m of expr.matchAll(/\[([^\]]*)\]/g)) expect(m[1], where).toBe('$__rate_interval');
      let labels: Set<string> = new Set();
      expect(() => {
        labels = checkExpression(expr, exported);
      }, `${where}: ${expr}`).not.toThrow();
      for (const format of formats)
        for (const label of placeholders(format))
          expect([...labels], `${where}: {{${label}}} in ${expr}`).toContain(label);
      checked.push(expr);
    };
    for (const panel of panels)
      for (const t of panel.targets ?? []) check(String(panel.title), t.expr as string, t.legendFormat);
    for (const a of dashboard.annotations?.list ?? [])
      if (typeof a.expr === 'string') check('annotation', a.expr, a.textFormat, a.titleFormat);
    // label_values(selector, label): the selector names an exported metric that has the label.
    for (const v of variables.filter((x) => x.type === 'query')) {
      const m = /^label_values\((.+), *(\w+)\)$/.exec(variableQuery(v));
      expect(m, v.name).not.toBeNull();
      const labels = checkExpression((m as RegExpExecArray)[1] as string, exported);
      expect([...labels], v.name).toContain((m as RegExpExecArray)[2]);
    }
    expect(checked.length).toBeGreaterThan(PANEL_TITLES.length);
  });

  it('carries no Helm template markers (Grafana legends {{label}} only)', () => {
    for (const m of DASHBOARD_TEXT.matchAll(/\{\{(.*?)\}\}/g)) expect(m[1], m[0]).toMatch(/^\s*\w+\s*$/);
    expect(DASHBOARD_TEXT).not.toMatch(/\{\{-|-\}\}|\.Values|\.Release|\binclude\b/);
  });
});

describe('Prometheus rules', () => {
  it('are rule groups, each alert complete, pointing at the troubleshooting runbook', () => {
    expect(Object.keys(rules)).toEqual(['groups']);
    expect(rules.groups?.length).toBeGreaterThan(0);
    const groupNames = (rules.groups ?? []).map((g) => g.name);
    expect(new Set(groupNames).size).toBe(groupNames.length);
    for (const group of rules.groups ?? []) {
      expect(typeof group.name).toBe('string');
      expect(group.rules?.length, String(group.name)).toBeGreaterThan(0);
    }
    for (const rule of alerts) {
      const name = String(rule.alert);
      expect(
        Object.keys(rule).filter((k) => !['alert', 'expr', 'for', 'labels', 'annotations'].includes(k)),
        name,
      ).toEqual([]);
      expect(name).toMatch(/^Portcullis[A-Z][A-Za-z]+$/);
      expect(typeof rule.expr === 'string' && rule.expr.trim() !== '', name).toBe(true);
      expect(String(rule.for), name).toMatch(/^(?:[0-9]+(?:ms|[smhdwy]))+$/);
      expect(['critical', 'warning', 'info'], name).toContain(rule.labels?.severity);
      for (const key of ['summary', 'description'])
        expect(
          typeof rule.annotations?.[key] === 'string' && String(rule.annotations[key]).trim() !== '',
          `${name} ${key}`,
        ).toBe(true);
      expect(rule.annotations?.runbook_url, name).toBe(RUNBOOK);
    }
    const names = alerts.map((r) => r.alert);
    expect(new Set(names).size).toBe(names.length);
    expect(ALERTS.filter((a) => !names.includes(a))).toEqual([]);
  });

  it('every expression parses and names only exported metrics (or up); annotations only labels it carries', () => {
    for (const rule of alerts) {
      const name = String(rule.alert);
      let labels: Set<string> = new Set();
      expect(
        () => {
          labels = checkExpression(rule.expr as string, exported);
        },
        `${name}: ${String(rule.expr)}`,
      ).not.toThrow();
      for (const text of Object.values(rule.annotations ?? {}))
        for (const m of String(text).matchAll(/\$labels\.(\w+)/g))
          expect([...labels], `${name}: $labels.${m[1]}`).toContain(m[1]);
    }
  });

  it('use only Prometheus alert templating, nothing Helm would need to render', () => {
    // Embedded verbatim (.Files.Get, no tpl): each {{ }} is a Prometheus template over $labels / $value.
    for (const m of RULES_TEXT.matchAll(/\{\{(.*?)\}\}/gs))
      expect(m[1], m[0]).toMatch(
        /^ (?:\$labels\.\w+|\$value(?: \| (?:humanize|humanizePercentage|humanizeDuration))?) $/,
      );
    expect(RULES_TEXT.split('{{').length).toBe(RULES_TEXT.split('}}').length);
  });
});
