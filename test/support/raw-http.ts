/**
 * One HTTP request sent with `node:http` exactly as written — a header repeated, a path with dot
 * segments — which `fetch` would fold or normalise; the whole answer read.
 */
import { type IncomingHttpHeaders, type RequestOptions, request } from 'node:http';

export interface RawAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

export function rawRequest(
  options: RequestOptions,
  send: {
    /** Set one by one: an array value is sent as that many header lines. */
    readonly headers?: ReadonlyArray<readonly [string, string | string[]]>;
    readonly body?: string;
  } = {},
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(options);
    for (const [name, value] of send.headers ?? []) req.setHeader(name, value);
    req.on('error', reject);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
    });
    req.end(send.body);
  });
}
