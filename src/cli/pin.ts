import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { upstreamTargets } from '../config/upstreams.js';
import { schemaProblem } from '../integrity/arguments.js';
import type { DefinitionKind } from '../integrity/definitions.js';
import { diffPins, drifted, renderDiff } from '../integrity/pin-diff.js';
import { describe, type Pin, PinSet, parsePins, pinsOf, serializePins } from '../integrity/pins.js';
import { loadFromArgs } from './config-arg.js';
import { listTarget } from './connect.js';

const KINDS: readonly (readonly ['tools' | 'prompts', DefinitionKind])[] = [
  ['tools', 'tool'],
  ['prompts', 'prompt'],
];

/**
 * `portcullis pin --config F --route R [--write | --check]`: connects to the route's server(s)
 * as a client, lists every tool and prompt (all pages), and compares them with the route's pin
 * file (`pins`, relative to the policy file): prints what was added, removed or changed (a changed
 * description and schema as text diffs). `--write` writes the file (only then); `--check` exits 1
 * on any drift, for a scheduled job. A server that cannot be listed fails the command: a partial
 * listing would unpin that server's tools.
 */
export async function runPin(args: string[]): Promise<number> {
  const found = loadFromArgs(args, 'pin', {
    route: { type: 'string' },
    write: { type: 'boolean' },
    check: { type: 'boolean' },
  });
  if (!found) return 2;
  const { config } = found.loaded;
  const path = found.values.route;
  const index = config.routes.findIndex((route) => route.route === path);
  const route = config.routes[index];
  if (typeof path !== 'string' || route === undefined) {
    process.stderr.write(
      `portcullis pin: --route must name a route of the policy (${config.routes.map((r) => r.route).join(', ')})\n`,
    );
    return 2;
  }
  if (found.flags.has('write') && found.flags.has('check')) {
    process.stderr.write('portcullis pin: --write and --check exclude each other\n');
    return 2;
  }
  if (route.pins === undefined) {
    process.stderr.write(`portcullis pin: route ${route.route} has no pins file (set pins: in the policy)\n`);
    return 2;
  }
  const file = resolve(dirname(found.path), route.pins);
  const volatileMeta = new Set(route.volatileMeta);

  const listed: { kind: DefinitionKind; server: string | undefined; definition: Pin['definition'] }[] = [];
  for (const target of upstreamTargets(route, index)) {
    const lists = await listTarget(config, route, target);
    if ('failure' in lists) {
      process.stderr.write(
        `portcullis pin: ${target.field}: could not list (${lists.failure}); nothing written\n`,
      );
      return 1;
    }
    for (const [field, kind] of KINDS)
      for (const definition of lists.items.get(field) ?? [])
        listed.push({ kind, server: target.server, definition });
  }
  const { pins, unpinnable } = pinsOf(listed, volatileMeta);
  for (const line of unpinnable) process.stderr.write(`warning: ${line}: left unpinned\n`);
  // Pinned, but its calls will be refused when the route validates arguments: say so now.
  for (const pin of pins) {
    const problem = pin.kind === 'tool' ? schemaProblem(pin.definition) : undefined;
    if (problem !== undefined)
      process.stderr.write(
        `warning: ${describe(pin.kind, pin.server, pin.name)}: ${problem}: its calls are refused while validateArguments is on\n`,
      );
  }

  let pinned = new PinSet([]);
  let existing: string | undefined;
  try {
    existing = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (existing !== undefined) {
    const parsed = parsePins(existing, volatileMeta);
    if (!(parsed instanceof PinSet)) {
      process.stderr.write(`portcullis pin: ${file}: ${parsed.problem}\n`);
      if (!found.flags.has('write')) return 1;
    } else pinned = parsed;
  }
  const diff = diffPins(pinned, pins);
  process.stdout.write(
    existing === undefined
      ? `${file} does not exist yet: every definition is new\n`
      : `compared with ${file}\n`,
  );
  process.stdout.write(renderDiff(diff) || 'no drift: every tool and prompt matches its pin\n');

  if (found.flags.has('write')) {
    mkdirSync(dirname(file), { recursive: true });
    // Written whole, then renamed over the old file: the gateway's watcher never reads half a file.
    const temporary = `${file}.${process.pid}.tmp`;
    writeFileSync(temporary, serializePins(route.route, pins));
    renameSync(temporary, file);
    process.stdout.write(`wrote ${pins.length} pins to ${file}\n`);
    return 0;
  }
  // A definition that cannot be pinned is drift too: it is served nowhere the gateway enforces pins.
  if (found.flags.has('check')) return drifted(diff) || unpinnable.length > 0 ? 1 : 0;
  if (drifted(diff)) process.stdout.write('nothing written: review, then run again with --write\n');
  return 0;
}
