/**
 * `notifications/resources/updated` reaches only subscribers still authorized for the URI (issue
 * 17): a subscription is authorized once, when it is made, and every update is decided again at
 * delivery — as a `resources/read` of its URI, under the policy in force then. After a reload that
 * takes a caller's read access away (a route's rule tightened, or the API key's scope removed),
 * that caller's open stream stays open and keeps the updates it may still read, while another
 * caller who kept the access still gets every update (proving the server sent it).
 *
 * Real peers: an SDK v1 server (legacy GET stream, single-server HTTP route), the hand-written
 * stdio `probe` server (a 2026-07-28 `subscriptions/listen` on a single-server stdio route and on a
 * federated route beside an SDK v2 server).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import type { Gateway } from '../../src/server/gateway.js';
import { connectV1Client, type Peer, startV1Server, startV2Server, type V1Peer } from '../fixtures/peers.js';
import { startWatchedGateway } from '../support/gateway.js';
import { postModern } from '../support/modern-call.js';
import { LEGACY, openSession, until } from '../support/raw-mcp.js';
import { collectSse, type SseCollector } from '../support/sse.js';

const PROBE_SERVER = new URL('../fixtures/probe-stdio-server.mjs', import.meta.url).pathname;
const PROBE = `{ command: [${JSON.stringify(process.execPath)}, ${JSON.stringify(PROBE_SERVER)}], processes: shared }`;

/** Loses read access to `file:///secret/**` on /legacy (the rule is tightened to `admin`). */
const alice = newApiKey('pk_');
/** Loses its `secret` scope (the key's scopes edited) while its /listen stream is open. */
const bob = newApiKey('pk_');
/** Loses read access to `file:///secret/**` on /fed (the rule is tightened to `admin`). */
const carol = newApiKey('pk_');
/** Keeps every access throughout: what it receives proves the server sent the update. */
const dave = newApiKey('pk_');

interface State {
  /** The scope `file:///secret/**` needs on /legacy. */
  readonly legacySecret: 'read' | 'admin';
  /** Whether bob's key has the `secret` scope. */
  readonly bobSecret: boolean;
  /** The scope `file:///secret/**` needs on /fed. */
  readonly fedSecret: 'secret' | 'admin';
}

const policy = (state: State, v1: string, v2: string) => `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: none }
limits: { drainTimeoutMs: 500 }
identities:
  apiKeys:
    - { id: alice, hash: "${alice.hash}", scopes: [read] }
    - { id: bob, hash: "${bob.hash}", scopes: [read${state.bobSecret ? ', secret' : ''}] }
    - { id: carol, hash: "${carol.hash}", scopes: [read, secret] }
    - { id: dave, hash: "${dave.hash}", scopes: [read, secret, admin] }
routes:
  - route: /legacy
    resource: http://127.0.0.1/legacy
    upstream: ${v1}
    authentication: { methods: [apiKey] }
    resources: { "file:///public/**": read, "file:///secret/**": ${state.legacySecret} }
  - route: /listen
    resource: http://127.0.0.1/listen
    upstream: ${PROBE}
    authentication: { methods: [apiKey] }
    tools: { touch: read }
    resources: { "file:///public/**": read, "file:///secret/**": secret }
  - route: /fed
    resource: http://127.0.0.1/fed
    servers:
      probe: { upstream: ${PROBE}, resources: ["file:///**"] }
      modern: { upstream: "${v2}" }
    authentication: { methods: [apiKey] }
    tools: { "probe__touch": read }
    resources: { "file:///public/**": read, "file:///secret/**": ${state.fedSecret} }
`;

let v1: V1Peer;
let v2: Peer;
let gateway: Gateway;
let dir: string;
let file: string;
let state: State = { legacySecret: 'read', bobSecret: true, fedSecret: 'secret' };

/** Rewrites the policy file with `change` applied and waits until the gateway runs it. */
async function reload(change: Partial<State>): Promise<void> {
  state = { ...state, ...change };
  writeFileSync(file, policy(state, v1.url, v2.url));
  // The watcher may have applied it first: then the explicit reload finds nothing new.
  expect(['applied', 'unchanged']).toContain(await gateway.reload());
}

beforeAll(async () => {
  v1 = await startV1Server({ response: 'sse' });
  v2 = await startV2Server({ response: 'auto', legacy: 'stateless' });
  dir = mkdtempSync(join(tmpdir(), 'portcullis-updates-'));
  file = join(dir, 'portcullis.yaml');
  writeFileSync(file, policy(state, v1.url, v2.url));
  gateway = await startWatchedGateway(file);
});

afterAll(async () => {
  await gateway?.close();
  await v1?.close();
  await v2?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** The URIs of the `resources/updated` events a stream delivered, in order. */
const updatedUris = (stream: SseCollector) =>
  stream.events
    .filter((e) => e.method === 'notifications/resources/updated')
    .map((e) => (e.params as { uri: string }).uri);

describe('resources/updated after a reload that takes read access away', () => {
  it('a legacy GET stream on a single-server HTTP route: the denied URI’s update is dropped, the stream stays open', async () => {
    const url = `${gateway.url}/legacy`;
    const getStream = async (key: string) => {
      const session = await openSession(url, key);
      const answer = await fetch(url, {
        headers: {
          authorization: `Bearer ${key}`,
          accept: 'text/event-stream',
          'mcp-session-id': session,
          'mcp-protocol-version': LEGACY,
        },
      });
      expect(answer.status).toBe(200);
      return collectSse(answer.body as ReadableStream<Uint8Array>);
    };
    const losing = await getStream(alice.key);
    const keeping = await getStream(dave.key);
    const both = [losing, keeping];
    /** Broadcast until every stream has it: the SDK registers a GET stream a moment after it opens. */
    const broadcastUntilHeard = async (uri: string) => {
      await until(
        `${uri} on both streams`,
        () => {
          if (both.every((s) => updatedUris(s).includes(uri))) return true;
          void v1.broadcastResourceUpdated(uri);
          return false;
        },
        10_000,
      );
    };
    try {
      await broadcastUntilHeard('file:///public/ready');
      // Authorized: the update for the secret resource reaches both callers.
      await v1.broadcastResourceUpdated('file:///secret/a');
      await v1.broadcastResourceUpdated('file:///public/a');
      await until('the first round', () => both.every((s) => updatedUris(s).includes('file:///public/a')));
      expect(updatedUris(losing)).toContain('file:///secret/a');

      await reload({ legacySecret: 'admin' });
      await v1.broadcastResourceUpdated('file:///secret/b');
      await v1.broadcastResourceUpdated('file:///public/b');
      // Events on a stream keep their order: once public/b is there, secret/b was dropped or relayed.
      await until('the second round', () => both.every((s) => updatedUris(s).includes('file:///public/b')));
      expect(updatedUris(keeping)).toContain('file:///secret/b');
      expect(updatedUris(losing)).not.toContain('file:///secret/b');
      // Still open: the next update it may read arrives on the same stream.
      await v1.broadcastResourceUpdated('file:///public/c');
      await until('public/c on the losing stream', () => updatedUris(losing).includes('file:///public/c'));
      expect(updatedUris(losing).filter((uri) => uri.startsWith('file:///secret/'))).toEqual([
        'file:///secret/a',
      ]);
    } finally {
      await losing.stop();
      await keeping.stop();
    }
  }, 30_000);

  /**
   * Two `subscriptions/listen` streams on `route` subscribed to a public and a secret resource; the
   * `touch` tool (as dave) makes the probe server announce a change of a URI.
   */
  async function listenScenario(
    route: string,
    touchTool: string,
    losingKey: string,
    change: Partial<State>,
  ): Promise<void> {
    const url = `${gateway.url}/${route}`;
    const listen = async (key: string, id: string) => {
      const answer = await postModern(url, {
        id,
        key,
        method: 'subscriptions/listen',
        params: { notifications: { resourceSubscriptions: ['file:///public/a', 'file:///secret/a'] } },
      });
      expect(answer.status).toBe(200);
      expect(answer.headers.get('content-type')).toContain('text/event-stream');
      const stream = collectSse(answer.body as ReadableStream<Uint8Array>);
      await until(`${id} acknowledged`, () =>
        stream.events.some((e) => e.method === 'notifications/subscriptions/acknowledged'),
      );
      return stream;
    };
    const losing = await listen(losingKey, `${route}-losing`);
    const keeping = await listen(dave.key, `${route}-keeping`);
    const both = [losing, keeping];
    const toucher = await connectV1Client(url, { headers: { authorization: `Bearer ${dave.key}` } });
    const touch = (uri: string) => toucher.callTool({ name: touchTool, arguments: { uri } });
    const count = (stream: SseCollector, uri: string) => updatedUris(stream).filter((u) => u === uri).length;
    try {
      await touch('file:///secret/a');
      await touch('file:///public/a');
      await until('the first round', () => both.every((s) => count(s, 'file:///public/a') === 1));
      expect(count(losing, 'file:///secret/a')).toBe(1);

      await reload(change);
      await touch('file:///secret/a');
      await touch('file:///public/a');
      await until('the second round', () => both.every((s) => count(s, 'file:///public/a') === 2));
      expect(count(keeping, 'file:///secret/a'), 'the server sent it').toBe(2);
      expect(count(losing, 'file:///secret/a'), 'not to the caller who lost access').toBe(1);
      // The stream is still open and its subscription id kept.
      await touch('file:///public/a');
      await until('a third public update', () => count(losing, 'file:///public/a') === 3);
      const last = losing.events.at(-1) as { params: { _meta: Record<string, unknown> } };
      expect(last.params._meta['io.modelcontextprotocol/subscriptionId']).toBe(`${route}-losing`);
      expect(count(losing, 'file:///secret/a')).toBe(1);
    } finally {
      await toucher.close();
      await losing.stop();
      await keeping.stop();
    }
  }

  it('a subscriptions/listen stream on a single-server stdio route, the API key’s scope removed', async () => {
    await listenScenario('listen', 'touch', bob.key, { bobSecret: false });
  }, 30_000);

  it('a subscriptions/listen stream on a federated route, the route’s rule tightened', async () => {
    await listenScenario('fed', 'probe__touch', carol.key, { fedSecret: 'admin' });
  }, 30_000);
});
