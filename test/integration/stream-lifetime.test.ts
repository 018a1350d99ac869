/**
 * One lifetime for every long-lived answer (DESIGN.md step 10): an SSE GET stream, an SSE answer to
 * a POST and a chunked JSON `subscriptions/listen` answer each end when their caller stops
 * authenticating — a reload that removes the API key or the JWT issuer, the key's `expires`, the
 * token's `exp` — and a token whose `exp` is 40 days away (past the 24.8-day timer range) keeps
 * them open.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import type { Gateway } from '../../src/server/gateway.js';
import { startWatchedGateway } from '../support/gateway.js';
import { createSigningKey, nowSec, type SigningKey, signJwt } from '../support/jwks.js';
import { toolCall } from '../support/modern-call.js';
import { META, MODERN } from '../support/wire.js';

const IDP = 'https://idp.lifetime.test/';
const RESOURCE = 'http://127.0.0.1/mcp';
const alice = newApiKey('pk_');
const bob = newApiKey('pk_');
const carol = newApiKey('pk_');

type Kind = 'sse-get' | 'sse-post' | 'chunked-json';
const KINDS: readonly Kind[] = ['sse-get', 'sse-post', 'chunked-json'];

describe('answer lifetime: revocation at reload and credential expiry, for every long-lived answer', () => {
  let dir: string;
  let file: string;
  let upstream: Server;
  let gateway: Gateway;
  let key: SigningKey;
  let carolExpires: number;
  /** Open upstream answers, and calls the upstream executed, by kind. */
  const open = new Set<string>();
  const executed: string[] = [];

  const policy = (opts: { bob: boolean; jwt: boolean }) => `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: none }
limits: { drainTimeoutMs: 500 }
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [t] }
${opts.bob ? `    - { id: bob, hash: "${bob.hash}", scopes: [t] }\n` : ''}    - { id: carol, hash: "${carol.hash}", scopes: [t], expires: "${new Date(carolExpires).toISOString()}" }
${
  opts.jwt
    ? `  jwt:
    - { issuer: "${IDP}", keys: [${JSON.stringify(key.publicJwk)}], algorithms: [ES256], clockToleranceSec: 0 }
`
    : ''
}routes:
  - route: /mcp
    resource: ${RESOURCE}
    upstream: http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp
    authentication: { methods: [apiKey${opts.jwt ? ', jwt' : ''}] }
    forwardHeaders: [X-Test-Tag]        # the upstream names each answer by it
    tools: { slow: t, echo: t }
`;

  beforeAll(async () => {
    // Every answer starts at once (so its headers go out) and then never ends by itself.
    upstream = createServer((req, res) => {
      const tag = `${req.headers['x-test-tag'] ?? ''}`;
      const track = (kind: string) => {
        open.add(`${tag}:${kind}`);
        res.once('close', () => open.delete(`${tag}:${kind}`));
      };
      if (req.method === 'GET') {
        track('sse-get');
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(
          `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'info', data: 'hi' } })}\n\n`,
        );
        return;
      }
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      req.on('end', () => {
        const message = JSON.parse(body) as { id: number; method: string; params?: { name?: string } };
        executed.push(`${tag}:${message.params?.name ?? message.method}`);
        if (message.method === 'subscriptions/listen') {
          track('chunked-json');
          res.writeHead(200, { 'content-type': 'application/json' });
          res.write(`{"jsonrpc":"2.0","id":${message.id},"result":{"events":[`);
          return;
        }
        if (message.params?.name === 'slow') {
          track('sse-post');
          res.writeHead(200, { 'content-type': 'text/event-stream' });
          res.write(
            `event: message\ndata: ${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } })}\n\n`,
          );
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result: { content: [] } }));
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    key = await createSigningKey('ES256');
    carolExpires = Date.now() + 3_000;
    dir = mkdtempSync(join(tmpdir(), 'portcullis-lifetime-'));
    file = join(dir, 'portcullis.yaml');
    writeFileSync(file, policy({ bob: true, jwt: true }));
    gateway = await startWatchedGateway(file);
  });
  afterAll(async () => {
    await gateway?.close();
    upstream?.closeAllConnections();
    await new Promise((resolve) => upstream?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens one answer of `kind` as `tag` with `credential`; resolves once its first bytes arrived. */
  async function openAnswer(kind: Kind, tag: string, credential: string) {
    const headers: Record<string, string> = {
      authorization: `Bearer ${credential}`,
      'x-test-tag': tag,
      accept: 'application/json, text/event-stream',
    };
    const post = (method: string, params: Record<string, unknown>) =>
      fetch(`${gateway.url}/mcp`, {
        method: 'POST',
        headers: {
          ...headers,
          'content-type': 'application/json',
          'mcp-protocol-version': MODERN,
          'mcp-method': method,
          ...(method === 'tools/call' ? { 'mcp-name': 'slow' } : {}),
        },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params: { ...params, _meta: META } }),
      });
    const answer =
      kind === 'sse-get'
        ? await fetch(`${gateway.url}/mcp`, { headers: { ...headers, accept: 'text/event-stream' } })
        : kind === 'sse-post'
          ? await post('tools/call', { name: 'slow', arguments: {} })
          : await post('subscriptions/listen', { notifications: { toolsListChanged: true } });
    expect(answer.status, `${tag} ${kind}`).toBe(200);
    const reader = answer.body!.getReader();
    const first = await reader.read();
    expect(first.done).toBe(false);
    const ended = (async () => {
      try {
        for (;;) if ((await reader.read()).done) break;
      } catch {
        // cut: ended all the same
      }
      return performance.now();
    })();
    return { ended };
  }

  const openEach = (tag: string, credential: string) =>
    Promise.all(KINDS.map((kind) => openAnswer(kind, tag, credential)));

  /** `closed` when it ended within `ms`, else `open`. */
  const within = (ended: Promise<number>, ms: number) =>
    Promise.race([
      ended.then(() => 'closed' as const),
      new Promise<'open'>((resolve) => setTimeout(() => resolve('open'), ms)),
    ]);

  it('an API key whose `expires` passes: all three answers end then, not before', async () => {
    const answers = await openEach('carol', carol.key);
    const opened = performance.now();
    const left = carolExpires - Date.now();
    expect(left).toBeGreaterThan(1_000);
    const early = await Promise.all(answers.map(({ ended }) => within(ended, Math.max(0, left - 500))));
    expect(early).toEqual(['open', 'open', 'open']);
    const late = await Promise.all(answers.map(({ ended }) => within(ended, 3_000)));
    expect(late).toEqual(['closed', 'closed', 'closed']);
    const lived = Math.max(...(await Promise.all(answers.map((a) => a.ended)))) - opened;
    expect(lived).toBeLessThan(left + 1_500);
    // The upstream's side of each answer was closed too.
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect([...open].filter((o) => o.startsWith('carol:'))).toEqual([]);
  });

  it('a JWT with a short exp: all three answers end at exp', async () => {
    const token = await signJwt(key, {
      iss: IDP,
      sub: 'short',
      aud: RESOURCE,
      scope: 't',
      exp: nowSec() + 2,
    });
    const opened = performance.now();
    const answers = await openEach('short', token);
    const states = await Promise.all(answers.map(({ ended }) => within(ended, 3_500)));
    expect(states).toEqual(['closed', 'closed', 'closed']);
    const lived = Math.min(...(await Promise.all(answers.map((a) => a.ended)))) - opened;
    expect(lived).toBeGreaterThan(500);
  });

  it('a JWT whose exp is 40 days away (beyond the 2^31-1 ms timer range) keeps its answers open', async () => {
    const token = await signJwt(key, {
      iss: IDP,
      sub: 'long',
      aud: RESOURCE,
      scope: 't',
      exp: nowSec() + 40 * 86_400,
    });
    const answers = await openEach('long', token);
    const states = await Promise.all(answers.map(({ ended }) => within(ended, 1_000)));
    expect(states).toEqual(['open', 'open', 'open']);
    expect([...open].filter((o) => o.startsWith('long:')).sort()).toEqual([
      'long:chunked-json',
      'long:sse-get',
      'long:sse-post',
    ]);
  });

  it('a reload that removes an API key ends its three answers; the other caller keeps its own', async () => {
    const bobs = await openEach('bob', bob.key);
    const alices = await openEach('alice', alice.key);
    writeFileSync(file, policy({ bob: false, jwt: true }));
    expect(['applied', 'unchanged']).toContain(await gateway.reload());
    expect(await Promise.all(bobs.map(({ ended }) => within(ended, 2_000)))).toEqual([
      'closed',
      'closed',
      'closed',
    ]);
    expect(await Promise.all(alices.map(({ ended }) => within(ended, 300)))).toEqual([
      'open',
      'open',
      'open',
    ]);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect([...open].filter((o) => o.startsWith('bob:'))).toEqual([]);

    // Bob is refused before forwarding; Alice is served as usual.
    const before = executed.length;
    const refused = await toolCall(`${gateway.url}/mcp`, 'echo', {}, { key: bob.key });
    expect(refused.status).toBe(401);
    expect(executed.length, 'the upstream must see nothing').toBe(before);
    const served = await toolCall(`${gateway.url}/mcp`, 'echo', {}, { key: alice.key });
    expect(served.status).toBe(200);
  });

  it('a reload that removes the JWT issuer ends the 40-day token’s answers', async () => {
    expect([...open].filter((o) => o.startsWith('long:'))).toHaveLength(3);
    writeFileSync(file, policy({ bob: false, jwt: false }));
    expect(['applied', 'unchanged']).toContain(await gateway.reload());
    const deadline = Date.now() + 2_000;
    while ([...open].some((o) => o.startsWith('long:')) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect([...open].filter((o) => o.startsWith('long:'))).toEqual([]);
    expect([...open].filter((o) => o.startsWith('alice:'))).toHaveLength(3);
  });
});
