/**
 * A strict reader of the Prometheus text exposition format 0.0.4 — what a scraper must be able to
 * read from `/metrics`. No maintained parser ships in node_modules (prom-client only writes the
 * format), hence this one. It throws, naming the line, on anything the format does not allow:
 *
 * - lines end with `\n` (the last one too); no `\r`; blank lines and other `#` comments are skipped;
 * - `# HELP name text` (escapes `\\` and `\n` only) and `# TYPE name counter|gauge|histogram|summary|untyped`,
 *   each at most once per family, and before the family's first sample;
 * - samples `name{label="value",…} value [timestamp]`: valid metric and label names, no label named
 *   twice, no reserved `__` label, label values with the escapes `\\`, `\"`, `\n` only, values as
 *   decimal floats, `NaN`, `+Inf`, `-Inf`, an optional integer timestamp;
 * - a family's samples are contiguous, and no series (name and label set) appears twice;
 * - a sample's name fits its family's type: `_total`-less counters are allowed (0.0.4 does not
 *   require the suffix) but a histogram has only `_bucket` (with a numeric `le`), `_sum` and
 *   `_count`, a summary only `quantile` samples, `_sum` and `_count`;
 * - every histogram series has non-decreasing cumulative buckets in increasing `le` order ending
 *   with `le="+Inf"`, whose value equals its `_count`, and a `_sum`.
 */

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface Sample {
  /** The sample's own name, e.g. `portcullis_request_duration_seconds_bucket`. */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly timestamp?: number;
}

export interface MetricFamily {
  readonly name: string;
  readonly type: MetricType;
  readonly help: string | undefined;
  readonly samples: readonly Sample[];
}

export interface Histogram {
  /** Cumulative counts by upper bound, in increasing `le` order; the last is `+Inf`. */
  readonly buckets: readonly { readonly le: number; readonly count: number }[];
  readonly sum: number;
  readonly count: number;
}

export class ExpositionError extends Error {
  constructor(
    readonly line: number,
    message: string,
    readonly text: string,
  ) {
    super(`line ${line}: ${message}: ${JSON.stringify(text.length > 200 ? `${text.slice(0, 200)}…` : text)}`);
    this.name = 'ExpositionError';
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const TYPES: ReadonlySet<string> = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
const DECIMAL = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;
const TIMESTAMP = /^-?[0-9]+$/;

/** Parses a float as the format writes one (Go's ParseFloat spellings of NaN and the infinities). */
export function parseValue(token: string): number | undefined {
  if (DECIMAL.test(token)) return Number(token);
  const lower = token.toLowerCase();
  if (lower === 'nan') return Number.NaN;
  if (lower === '+inf' || lower === 'inf') return Number.POSITIVE_INFINITY;
  if (lower === '-inf') return Number.NEGATIVE_INFINITY;
  return undefined;
}

interface MutableFamily {
  name: string;
  type: MetricType | undefined;
  help: string | undefined;
  samples: Sample[];
  /** Whether a sample of it was read: a TYPE may no longer follow. */
  sampled: boolean;
}

/** Parses one exposition; throws {@link ExpositionError} on the first malformed line. */
export function parsePrometheusText(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MutableFamily>();
  if (text.length > 0 && !text.endsWith('\n')) {
    const lines = text.split('\n');
    throw new ExpositionError(
      lines.length,
      'the last line does not end with a line feed',
      lines.at(-1) ?? '',
    );
  }
  const lines = text.split('\n');
  lines.pop(); // after the final \n
  let current: MutableFamily | undefined; // the family whose samples are being read
  const closed = new Set<string>(); // families whose samples ended
  const series = new Set<string>();

  const familyOf = (name: string, lineNo: number, line: string): MutableFamily => {
    let family = families.get(name);
    if (family === undefined) {
      if (!METRIC_NAME.test(name)) throw new ExpositionError(lineNo, 'invalid metric name', line);
      family = { name, type: undefined, help: undefined, samples: [], sampled: false };
      families.set(name, family);
    }
    return family;
  };

  lines.forEach((line, index) => {
    const lineNo = index + 1;
    if (line.includes('\r')) throw new ExpositionError(lineNo, 'carriage return', line);
    if (/^[ \t]*$/.test(line)) return;
    const trimmed = line.replace(/^[ \t]+/, '');
    if (trimmed.startsWith('#')) {
      const comment = /^#[ \t]+(HELP|TYPE)[ \t]+(\S+)(?:[ \t]+(.*)|[ \t]*)$/.exec(trimmed);
      if (comment === null) {
        // Any other comment is free text, but a malformed HELP/TYPE is not "another comment".
        if (/^#[ \t]+(HELP|TYPE)(?:[ \t]|$)/.test(trimmed))
          throw new ExpositionError(lineNo, 'malformed HELP/TYPE line', line);
        return;
      }
      const [, keyword, name = '', rest = ''] = comment;
      if (!METRIC_NAME.test(name)) throw new ExpositionError(lineNo, 'invalid metric name', line);
      const family = familyOf(name, lineNo, line);
      if (keyword === 'HELP') {
        if (family.help !== undefined) throw new ExpositionError(lineNo, 'second HELP for the metric', line);
        family.help = unescapeHelp(rest, lineNo, line);
      } else {
        const type = rest.replace(/[ \t]+$/, '');
        if (!TYPES.has(type)) throw new ExpositionError(lineNo, 'unknown metric type', line);
        if (family.type !== undefined) throw new ExpositionError(lineNo, 'second TYPE for the metric', line);
        if (family.sampled) throw new ExpositionError(lineNo, 'TYPE after the metric’s samples', line);
        family.type = type as MetricType;
      }
      return;
    }
    const sample = parseSample(trimmed, lineNo, line);
    const family = families.get(familyName(sample.name, families)) ?? familyOf(sample.name, lineNo, line);
    if (family !== current) {
      if (current !== undefined) closed.add(current.name);
      if (closed.has(family.name))
        throw new ExpositionError(lineNo, `samples of ${family.name} are not contiguous`, line);
      current = family;
    }
    family.sampled = true;
    checkSampleFits(family, sample, lineNo, line);
    const key = seriesKey(sample.name, sample.labels);
    if (series.has(key)) throw new ExpositionError(lineNo, 'the same series appears twice', line);
    series.add(key);
    family.samples.push(sample);
  });

  const result = new Map<string, MetricFamily>();
  for (const family of families.values()) {
    const done: MetricFamily = {
      name: family.name,
      type: family.type ?? 'untyped',
      help: family.help,
      samples: family.samples,
    };
    if (done.type === 'histogram') checkHistograms(done);
    result.set(family.name, done);
  }
  return result;
}

/** The family a sample belongs to: its own name, or the histogram/summary whose suffix it carries. */
function familyName(sample: string, families: ReadonlyMap<string, MutableFamily>): string {
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!sample.endsWith(suffix)) continue;
    const base = sample.slice(0, -suffix.length);
    const type = families.get(base)?.type;
    if (type === 'histogram' || (type === 'summary' && suffix !== '_bucket')) return base;
  }
  return sample;
}

function checkSampleFits(family: MutableFamily, sample: Sample, lineNo: number, line: string): void {
  const type = family.type ?? 'untyped';
  const suffix = sample.name.slice(family.name.length);
  if (type === 'histogram') {
    if (suffix === '_bucket') {
      const le = sample.labels.le;
      if (le === undefined) throw new ExpositionError(lineNo, 'histogram bucket without le', line);
      if (parseValue(le) === undefined || Number.isNaN(parseValue(le)))
        throw new ExpositionError(lineNo, 'histogram bucket le is not a number', line);
    } else if (suffix !== '_sum' && suffix !== '_count')
      throw new ExpositionError(lineNo, 'histogram sample that is not _bucket, _sum or _count', line);
    if (suffix !== '_bucket' && 'le' in sample.labels)
      throw new ExpositionError(lineNo, 'le label outside a bucket', line);
  } else if (type === 'summary') {
    if (suffix === '') {
      const q = sample.labels.quantile;
      if (q === undefined || parseValue(q) === undefined)
        throw new ExpositionError(lineNo, 'summary sample without a numeric quantile', line);
    } else if (suffix !== '_sum' && suffix !== '_count')
      throw new ExpositionError(lineNo, 'summary sample that is not a quantile, _sum or _count', line);
  } else if (suffix !== '') {
    throw new ExpositionError(lineNo, `sample name does not match its ${type} family`, line);
  }
  if ((type === 'counter' || suffix === '_count' || suffix === '_bucket') && sample.value < 0)
    throw new ExpositionError(lineNo, 'negative counter', line);
}

function parseSample(text: string, lineNo: number, line: string): Sample {
  const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(text);
  if (nameMatch === null) throw new ExpositionError(lineNo, 'invalid metric name', line);
  const name = nameMatch[0];
  let i = name.length;
  const labels: Record<string, string> = {};
  let j = i;
  while (text[j] === ' ' || text[j] === '\t') j++;
  if (text[j] === '{') {
    i = j + 1;
    for (;;) {
      while (text[i] === ' ' || text[i] === '\t') i++;
      if (text[i] === '}') {
        i++;
        break;
      }
      const labelMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i));
      if (labelMatch === null) throw new ExpositionError(lineNo, 'invalid label name', line);
      const label = labelMatch[0];
      if (!LABEL_NAME.test(label) || label.startsWith('__'))
        throw new ExpositionError(lineNo, 'invalid or reserved label name', line);
      if (Object.hasOwn(labels, label)) throw new ExpositionError(lineNo, `label ${label} twice`, line);
      i += label.length;
      while (text[i] === ' ' || text[i] === '\t') i++;
      if (text[i] !== '=') throw new ExpositionError(lineNo, 'expected = after a label name', line);
      i++;
      while (text[i] === ' ' || text[i] === '\t') i++;
      if (text[i] !== '"') throw new ExpositionError(lineNo, 'expected a quoted label value', line);
      i++;
      let value = '';
      for (;;) {
        const c = text[i];
        if (c === undefined) throw new ExpositionError(lineNo, 'unterminated label value', line);
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\') {
          const next = text[i + 1];
          if (next === '\\') value += '\\';
          else if (next === '"') value += '"';
          else if (next === 'n') value += '\n';
          else throw new ExpositionError(lineNo, 'invalid escape in a label value', line);
          i += 2;
          continue;
        }
        value += c;
        i++;
      }
      labels[label] = value;
      while (text[i] === ' ' || text[i] === '\t') i++;
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '}') {
        i++;
        break;
      }
      throw new ExpositionError(lineNo, 'expected , or } after a label value', line);
    }
  }
  const rest = text.slice(i);
  if (!/^[ \t]/.test(rest)) throw new ExpositionError(lineNo, 'expected a blank before the value', line);
  const tokens = rest.trim().split(/[ \t]+/);
  if (tokens.length < 1 || tokens.length > 2 || tokens[0] === '')
    throw new ExpositionError(lineNo, 'expected a value and an optional timestamp', line);
  const value = parseValue(tokens[0] as string);
  if (value === undefined) throw new ExpositionError(lineNo, 'invalid value', line);
  const stamp = tokens[1];
  if (stamp !== undefined && !TIMESTAMP.test(stamp))
    throw new ExpositionError(lineNo, 'invalid timestamp', line);
  return { name, labels, value, ...(stamp === undefined ? {} : { timestamp: Number(stamp) }) };
}

function unescapeHelp(text: string, lineNo: number, line: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = text[i + 1];
    if (next === '\\') out += '\\';
    else if (next === 'n') out += '\n';
    else throw new ExpositionError(lineNo, 'invalid escape in HELP', line);
    i++;
  }
  return out;
}

function checkHistograms(family: MetricFamily): void {
  const groups = new Map<string, { buckets: Sample[]; sum?: Sample; count?: Sample }>();
  for (const sample of family.samples) {
    const { le: _le, ...rest } = sample.labels;
    const key = seriesKey('', rest);
    const group = groups.get(key) ?? { buckets: [] };
    groups.set(key, group);
    if (sample.name.endsWith('_bucket')) group.buckets.push(sample);
    else if (sample.name.endsWith('_sum')) group.sum = sample;
    else group.count = sample;
  }
  for (const [key, group] of groups) {
    const where = `${family.name}{${key}}`;
    if (group.sum === undefined || group.count === undefined || group.buckets.length === 0)
      throw new ExpositionError(0, 'histogram series without buckets, _sum and _count', where);
    let previous: { le: number; count: number } | undefined;
    for (const bucket of group.buckets) {
      const le = parseValue(bucket.labels.le as string) as number;
      if (previous !== undefined && !(le > previous.le))
        throw new ExpositionError(0, 'histogram buckets not in increasing le order', where);
      if (previous !== undefined && bucket.value < previous.count)
        throw new ExpositionError(0, 'histogram buckets not cumulative', where);
      previous = { le, count: bucket.value };
    }
    if (previous?.le !== Number.POSITIVE_INFINITY)
      throw new ExpositionError(0, 'histogram without a +Inf bucket', where);
    if (previous.count !== group.count.value)
      throw new ExpositionError(0, 'histogram +Inf bucket differs from _count', where);
  }
}

/** A canonical key for a series: its name and labels, sorted. */
export function seriesKey(name: string, labels: Readonly<Record<string, string>>): string {
  const pairs = Object.keys(labels)
    .sort()
    .map((k) => `${k}=${JSON.stringify(labels[k])}`);
  return `${name}{${pairs.join(',')}}`;
}

/** An exposition, parsed, with the look-ups the tests need. */
export class Exposition {
  readonly families: ReadonlyMap<string, MetricFamily>;

  constructor(readonly text: string) {
    this.families = parsePrometheusText(text);
  }

  family(name: string): MetricFamily {
    const family = this.families.get(name);
    if (family === undefined) throw new Error(`no metric family ${name} in the exposition`);
    return family;
  }

  /** Samples named `sample` whose labels include every pair of `labels`. */
  samples(sample: string, labels: Readonly<Record<string, string>> = {}): Sample[] {
    const found: Sample[] = [];
    for (const family of this.families.values())
      for (const s of family.samples)
        if (s.name === sample && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) found.push(s);
    return found;
  }

  /** The value of the one sample with exactly these labels; 0 when the series does not exist yet. */
  value(sample: string, labels: Readonly<Record<string, string>> = {}): number {
    const want = seriesKey(sample, labels);
    const found = this.samples(sample, labels).filter((s) => seriesKey(s.name, s.labels) === want);
    return found[0]?.value ?? 0;
  }

  /** The sum over samples whose labels include every pair of `labels`. */
  sum(sample: string, labels: Readonly<Record<string, string>> = {}): number {
    return this.samples(sample, labels).reduce((total, s) => total + s.value, 0);
  }

  /** The values one label takes across a sample name's series. */
  labelValues(sample: string, label: string): Set<string> {
    const values = new Set<string>();
    for (const s of this.samples(sample)) {
      const v = s.labels[label];
      if (v !== undefined) values.add(v);
    }
    return values;
  }

  /** Every series key of the families `include` accepts. */
  seriesKeys(include: (family: MetricFamily) => boolean = () => true): Set<string> {
    const keys = new Set<string>();
    for (const family of this.families.values())
      if (include(family)) for (const s of family.samples) keys.add(seriesKey(s.name, s.labels));
    return keys;
  }

  /** One histogram series, identified by exactly `labels` (without `le`). */
  histogram(name: string, labels: Readonly<Record<string, string>>): Histogram | undefined {
    const family = this.family(name);
    if (family.type !== 'histogram') throw new Error(`${name} is a ${family.type}, not a histogram`);
    const want = seriesKey('', labels);
    const mine = family.samples.filter((s) => {
      const { le: _le, ...rest } = s.labels;
      return seriesKey('', rest) === want;
    });
    if (mine.length === 0) return undefined;
    const buckets = mine
      .filter((s) => s.name === `${name}_bucket`)
      .map((s) => ({ le: parseValue(s.labels.le as string) as number, count: s.value }));
    const sum = mine.find((s) => s.name === `${name}_sum`)?.value ?? 0;
    const count = mine.find((s) => s.name === `${name}_count`)?.value ?? 0;
    return { buckets, sum, count };
  }
}
