/**
 * README.md as the tests read it: a section by its heading, a table between markers, and the
 * commands it tells a reader to run.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export const README_PATH = join(import.meta.dirname, '../../README.md');

export function readme(): string {
  return readFileSync(README_PATH, 'utf8');
}

/**
 * The section under `heading` (the whole heading line, e.g. `### Metrics`), up to the next heading
 * of the same or a higher level. Throws when the heading is missing or written twice, so a
 * renamed section fails the test that reads it instead of reading nothing.
 */
export function readmeSection(heading: string, text: string = readme()): string {
  const level = /^#+/.exec(heading)?.[0].length;
  if (level === undefined) throw new Error(`not a heading: ${heading}`);
  const lines = text.split('\n');
  const starts = lines.flatMap((line, i) => (line === heading ? [i] : []));
  if (starts.length !== 1) throw new Error(`README has ${starts.length} "${heading}" headings`);
  const start = starts[0] as number;
  let fenced = false;
  let end = lines.length;
  for (let i = start + 1; i < lines.length; i++) {
    const line = lines[i] as string;
    if (line.startsWith('```')) fenced = !fenced;
    const hashes = fenced ? undefined : /^(#+) /.exec(line)?.[1];
    if (hashes !== undefined && hashes.length <= level) {
      end = i;
      break;
    }
  }
  return lines.slice(start, end).join('\n');
}

/** The text between `<!-- name:start -->` and `<!-- name:end -->`. */
export function readmeMarked(name: string, text: string = readme()): string {
  const start = text.indexOf(`<!-- ${name}:start -->`);
  const end = text.indexOf(`<!-- ${name}:end -->`);
  if (start === -1 || end === -1 || end < start) throw new Error(`README has no ${name} section`);
  return text.slice(start, end);
}

/** The cells of each body row of the Markdown tables in `text` (header and rule rows left out). */
export function tableRows(text: string): string[][] {
  const rows: string[][] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (!line.startsWith('|') || /^\|[\s|:-]+\|$/.test(line)) return;
    if (/^\|[\s|:-]+\|$/.test(lines[i + 1] ?? '')) return; // a header row
    rows.push(splitRow(line));
  });
  return rows;
}

/** Splits a table row on `|`, keeping `\|` (an escaped bar) inside its cell. */
function splitRow(line: string): string[] {
  const cells: string[] = [];
  let cell = '';
  for (let i = 1; i < line.length; i++) {
    const c = line[i];
    if (c === '\\' && line[i + 1] === '|') {
      cell += '|';
      i++;
    } else if (c === '|') {
      cells.push(cell.trim());
      cell = '';
    } else cell += c;
  }
  return cells;
}

/** The commands a reader is told to run: one per shell segment, with where it was found. */
export interface ReadmeCommand {
  /** The words of the command, without environment assignments in front, comments or quotes. */
  readonly words: readonly string[];
  /** The README line it came from (1-based). */
  readonly line: number;
}

/**
 * Every command starting with one of `programs` in the README: in fenced code blocks (each
 * segment of a pipeline or `&&` list, `$ ` prompts and `VAR=value` prefixes removed) and in inline
 * code spans.
 */
export function readmeCommands(programs: readonly string[], text: string = readme()): ReadmeCommand[] {
  const found: ReadmeCommand[] = [];
  const take = (source: string, line: number) => {
    for (const segment of source.split(/\s*(?:\|\||&&|\||;)\s*/)) {
      const words = shellWords(segment);
      while (words.length > 0 && /^[A-Za-z_][A-Za-z0-9_]*=/.test(words[0] as string)) words.shift();
      if (words.length > 0 && programs.includes(words[0] as string)) found.push({ words, line });
    }
  };
  let fence: string | undefined;
  text.split('\n').forEach((raw, index) => {
    const line = index + 1;
    const opening = /^\s*(```+)(\S*)/.exec(raw);
    if (opening) {
      fence = fence === undefined ? (opening[2] ?? '') : undefined;
      return;
    }
    if (fence !== undefined) {
      // Shell blocks and plain blocks hold commands; YAML, JSON and TypeScript blocks do not.
      if (['', 'sh', 'bash', 'shell', 'console'].includes(fence)) {
        const command = raw.replace(/^\s*\$ /, '').replace(/(^|\s)#.*$/, '');
        take(command, line);
      }
      return;
    }
    // An inline span is a command when it has words after the program's name; a quoted span is a
    // string (`"portcullis audit arguments v1"`, an HMAC label), not a command.
    for (const span of raw.matchAll(/`([^`]+)`/g)) {
      const code = span[1] as string;
      if (!code.startsWith('"') && /\S\s+\S/.test(code)) take(code, line);
    }
  });
  return found;
}

/** Splits a shell line into words, honouring single and double quotes (no expansion). */
function shellWords(segment: string): string[] {
  const words: string[] = [];
  for (const m of segment.matchAll(/'([^']*)'|"((?:[^"\\]|\\.)*)"|(\S+)/g))
    words.push(m[1] ?? m[2] ?? m[3] ?? '');
  return words;
}
