/**
 * How deep a JSON text nests, measured before anything walks it. `JSON.parse` itself is
 * iterative in V8, but everything after it — `JSON.stringify`, a structured clone, a recursive
 * walk — recurses once per level: an 8000-deep upstream answer threw `RangeError` from inside a
 * stream handler and took the process down. Checking the text first bounds every later walk.
 */

const QUOTE = 0x22;
const OPEN_OBJECT = 0x7b;
const OPEN_ARRAY = 0x5b;
const CLOSE_OBJECT = 0x7d;
const CLOSE_ARRAY = 0x5d;

/**
 * Whether `text` nests objects and arrays more than `max` levels deep (`[]` is one level).
 * One pass, no recursion, no allocation: string contents are skipped with `indexOf`, so brackets
 * inside strings never count. Text that is not valid JSON is measured all the same (the parser
 * that runs next refuses it); the answer only says whether the nesting is acceptable.
 */
export function exceedsDepth(text: string, max: number): boolean {
  const length = text.length;
  let depth = 0;
  // The next backslash at or after the current position, found once per stretch: a text of many
  // short strings must not rescan the rest of it for each one.
  let slash = -1;
  let i = 0;
  while (i < length) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) {
      // Inside a string: jump to its closing quote, stepping over escaped characters.
      let at = i + 1;
      for (;;) {
        const quote = text.indexOf('"', at);
        if (quote === -1) return false; // unterminated: no more structure follows
        if (slash !== length && slash < at) {
          slash = text.indexOf('\\', at);
          if (slash === -1) slash = length;
        }
        if (slash < quote) {
          at = slash + 2; // the escaped character, whatever it is, is not a quote that ends the string
          continue;
        }
        i = quote + 1;
        break;
      }
      continue;
    }
    if (code === OPEN_OBJECT || code === OPEN_ARRAY) {
      depth++;
      if (depth > max) return true;
    } else if ((code === CLOSE_OBJECT || code === CLOSE_ARRAY) && depth > 0) depth--;
    i++;
  }
  return false;
}
