/**
 * A reference reading of `text/event-stream`, written from the HTML standard's "Interpreting an
 * event stream" (§9.2.6), independent of `src/proxy/sse.ts`: UTF-8 decode (a leading BOM is
 * dropped, bad bytes become U+FFFD); lines end in CRLF, LF or CR; a `data` field appends its value
 * and a LF to the data buffer; a blank line dispatches the event when the buffer is not empty
 * (less its last LF); at end of stream an unterminated line and an undispatched event are
 * discarded. Returns the data of every event an EventSource would dispatch, in order.
 */
export function dispatchedData(bytes: Uint8Array): string[] {
  const text = new TextDecoder('utf-8').decode(bytes);
  const events: string[] = [];
  let data = '';
  let lineStart = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c !== 0x0a && c !== 0x0d) continue;
    const line = text.slice(lineStart, i);
    if (c === 0x0d && text.charCodeAt(i + 1) === 0x0a) i++;
    lineStart = i + 1;
    if (line === '') {
      if (data !== '') events.push(data.slice(0, -1));
      data = '';
      continue;
    }
    if (line.charCodeAt(0) === 0x3a) continue; // a comment
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    if (field !== 'data') continue; // event, id, retry and unknown fields carry no data
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    data += `${value}\n`;
  }
  return events;
}
