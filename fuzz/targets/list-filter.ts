import type { RpcMessage } from '../../src/jsonrpc/parse.js';
import type { CompiledPolicy } from '../../src/policy/compile.js';
import { decide } from '../../src/policy/decide.js';
import { ANY_LIST, filterListAnswer } from '../../src/policy/filter.js';
import {
  breakFraming,
  caseVariant,
  deepText,
  type JsonNode,
  num,
  objects,
  replaceSlot,
  slots,
  str,
  style,
  write,
} from '../gen/json.js';
import { answer, LIST_FIELDS } from '../gen/mcp.js';
import { type Clock, shown, type Target, type Verdict } from '../harness.js';
import { foldCase } from '../oracles/json-reference.js';
import type { Prng } from '../prng.js';
import { POLICIES, READER } from './uri.js';

/** The code under test, one line. */
const filterAnswer = (text: string, lists: ReadonlyMap<string | number, string>, policy: CompiledPolicy) =>
  filterListAnswer(text, lists, policy, READER, MAX_DEPTH);
/** `limits.maxJsonDepth`'s default: deeper answers are refused as unreadable (fail closed). */
const MAX_DEPTH = 64;

const FIELD_METHOD = new Map(Object.entries(LIST_FIELDS).map(([method, field]) => [field, method]));
const KEY_OF: Readonly<Record<string, string>> = {
  tools: 'name',
  prompts: 'name',
  resources: 'uri',
  resourceTemplates: 'uriTemplate',
};

interface FilterInput {
  readonly text: string;
  readonly lists: ReadonlyMap<string | number, string>;
  readonly defaultEffect: 'allow' | 'deny';
}

function generate(rng: Prng): FilterInput {
  const batch = rng.chance(0.2);
  const count = batch ? rng.range(1, 4) : 1;
  const messages: JsonNode[] = [];
  for (let i = 0; i < count; i++) messages.push(answer(rng, num(i + 1)));
  const root: JsonNode = batch ? { t: 'arr', v: messages } : (messages[0] as JsonNode);
  const mutated = rng.chance(0.5);
  if (mutated) {
    for (let m = rng.range(1, 2); m > 0; m--) {
      const objs = objects(root);
      const target = objs.length > 0 ? rng.pick(objs) : undefined;
      const entry = target && target.e.length > 0 ? rng.pick(target.e) : undefined;
      const all = slots(root);
      switch (rng.int(6)) {
        case 5: {
          // A second list field in one result: by shape only one of them is taken for the list.
          const results = objects(root).filter((o) => o.e.some(([k]) => k in KEY_OF));
          const result = results.length > 0 ? rng.pick(results) : undefined;
          if (result)
            result.e.push([
              rng.pick(Object.keys(KEY_OF)),
              {
                t: 'arr',
                v: [
                  {
                    t: 'obj',
                    e: [
                      ['name', str('admin_reset')],
                      ['uri', str('file:///secret/a')],
                    ],
                  },
                ],
              },
            ]);
          break;
        }
        case 0:
        case 1:
          // `Tools`, `RESULT`, `reſult`: a case-insensitive client decoder reads these.
          if (target && entry) target.e.push([caseVariant(entry[0], rng), entry[1]]);
          break;
        case 2:
          if (target && entry) target.e.push([entry[0], entry[1]]);
          break;
        case 3:
          if (all.length > 0) replaceSlot(rng.pick(all), { t: 'raw', v: deepText(rng) });
          break;
        default:
          if (all.length > 0)
            replaceSlot(rng.pick(all), rng.chance(0.5) ? num(1) : str('file:///public/../secret/a'));
      }
    }
  }
  let text = write(root, rng, style(rng));
  if (mutated && rng.chance(0.2)) text = breakFraming(text, rng);
  let lists: ReadonlyMap<string | number, string> = ANY_LIST;
  if (rng.chance(0.5)) {
    const map = new Map<string | number, string>();
    for (let i = 1; i <= count; i++) if (rng.chance(0.8)) map.set(i, rng.pick(Object.keys(LIST_FIELDS)));
    lists = map;
  }
  return { text, lists, defaultEffect: rng.chance(0.5) ? 'allow' : 'deny' };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Whether the policy lets the reader use this list item (as the matching call would be decided). */
function allowedItem(field: string, item: unknown, policy: CompiledPolicy): boolean {
  if (!isObject(item)) return false;
  const name = item[KEY_OF[field] as string];
  if (typeof name !== 'string') return false;
  if (field === 'resourceTemplates') {
    const requirement = policy.resources.lookup(name);
    if (requirement === undefined) return policy.defaultEffect === 'allow';
    return requirement.scopes.every((s) => READER.scopes.has(s));
  }
  const method = field === 'tools' ? 'tools/call' : field === 'prompts' ? 'prompts/get' : 'resources/read';
  const params = field === 'resources' ? { uri: name } : { name };
  const message: RpcMessage = { kind: 'request', id: 1, method, params };
  return decide(policy, message, READER, false).effect === 'allow';
}

/**
 * The list fields a client reads from this answer: the one its request asked for (by id), or —
 * matching by shape (`ANY_LIST`, a replayed stream) — every list field present.
 */
function fieldsRead(message: unknown, lists: ReadonlyMap<string | number, string>): readonly string[] {
  if (!isObject(message)) return [];
  if (lists === ANY_LIST) return [...FIELD_METHOD.keys()];
  const { id } = message;
  const method = typeof id === 'string' || typeof id === 'number' ? lists.get(id) : undefined;
  const field = method === undefined ? undefined : LIST_FIELDS[method];
  return field === undefined ? [] : [field];
}

/** A denied item in `fields` of `result`, under any spelling a case-insensitive decoder reads. */
function deniedItemIn(
  result: unknown,
  fields: readonly string[],
  policy: CompiledPolicy,
): string | undefined {
  if (!isObject(result)) return undefined;
  for (const [key, items] of Object.entries(result)) {
    const field = fields.find((f) => foldCase(f) === foldCase(key));
    if (field === undefined || !Array.isArray(items)) continue;
    for (const item of items)
      if (!allowedItem(field, item, policy)) return `${key}: ${shown(JSON.stringify(item) ?? '', 160)}`;
  }
  return undefined;
}

function listAnswerIn(message: unknown, lists: ReadonlyMap<string | number, string>): boolean {
  if (!isObject(message) || !('result' in message)) return false;
  if (lists !== ANY_LIST) {
    const { id } = message;
    return (typeof id === 'string' || typeof id === 'number') && lists.has(id);
  }
  const { result } = message;
  return isObject(result) && [...FIELD_METHOD.keys()].some((f) => Array.isArray(result[f]));
}

function check(input: FilterInput, clock: Clock): Verdict {
  const policy = POLICIES[input.defaultEffect];
  const filtered = clock.time(() => filterAnswer(input.text, input.lists, policy));
  // An answer the filter cannot read is refused by the gateway (502 / an error event): nothing leaks.
  if (typeof filtered === 'object') return undefined;
  const out = filtered;
  let before: unknown;
  try {
    before = JSON.parse(input.text);
  } catch {
    return out === undefined ? undefined : 'filtered-an-answer-that-is-not-JSON';
  }
  const inputs = Array.isArray(before) ? before : [before];
  if (out === undefined) {
    if (inputs.some((m) => listAnswerIn(m, input.lists))) return 'list-answer-passed-unfiltered';
    return undefined;
  }
  const after = JSON.parse(out) as unknown;
  const outputs = Array.isArray(after) ? after : [after];
  if (Array.isArray(after) !== Array.isArray(before) || outputs.length !== inputs.length)
    return 'filter-changed-the-message-structure';
  for (let i = 0; i < outputs.length; i++) {
    const was = inputs[i];
    const now = outputs[i];
    const fields = fieldsRead(now, input.lists);
    for (const [key, value] of Object.entries(isObject(now) ? now : {})) {
      // A case-insensitive client decoder reads `Result` as `result`, `Tools` as `tools`.
      if (foldCase(key) !== 'result') continue;
      const denied = deniedItemIn(value, fields, policy);
      if (denied !== undefined)
        return `returns-an-item-the-policy-denies: message ${i} ${key}.${denied}${key === 'result' ? '' : ' (case-folded key)'}`;
    }
    if (!isObject(was) || !isObject(now) || !isObject(was.result) || !isObject(now.result)) {
      if (JSON.stringify(was) !== JSON.stringify(now))
        return `filter-changed-a-non-list-message: message ${i}`;
      continue;
    }
    const before = was.result;
    const after = now.result;
    const filtered = fields.some((f) => Array.isArray(before[f]));
    for (const [key, value] of Object.entries(before)) {
      const kept = after[key];
      if (Array.isArray(value) && Array.isArray(kept) && FIELD_METHOD.has(key)) {
        let j = 0;
        for (const item of kept) {
          const text = JSON.stringify(item);
          while (j < value.length && JSON.stringify(value[j]) !== text) j++;
          if (j === value.length)
            return `filter-added-or-reordered-an-item: ${key} ${shown(text ?? '', 160)}`;
          j++;
        }
      } else if (key === 'cacheScope' && value === 'public' && filtered) {
        if (kept !== 'private') return 'public-cache-scope-kept-on-a-filtered-list';
      } else if (key === 'cacheScope') {
        if (JSON.stringify(kept) !== JSON.stringify(value) && kept !== 'private')
          return 'filter-changed-the-cache-scope';
      } else if (JSON.stringify(value) !== JSON.stringify(kept)) return `filter-changed-result-field ${key}`;
    }
    for (const key of Object.keys(after)) if (!(key in before)) return `filter-added-result-field ${key}`;
  }
  return undefined;
}

export const listFilterTarget: Target<FilterInput> = {
  name: 'list-filter',
  weight: 9,
  generate,
  check,
  describe: (input) =>
    `${shown(input.text)} lists=${input.lists === ANY_LIST ? 'ANY_LIST' : JSON.stringify([...input.lists])} default=${input.defaultEffect}`,
};
