/**
 * Client certificates (DESIGN.md steps 1 and 4) through real TLS sockets, with certificates made
 * here: a server CA and the gateway's certificate for 127.0.0.1/localhost, a client CA and client
 * certificates matched by subject CN, by SAN DNS name and by SPIFFE URI SAN, one from a foreign CA,
 * one expired. For every refusal the upstream must have seen nothing.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import {
  type FetchLike,
  Client as V2Client,
  StreamableHTTPClientTransport as V2ClientTransport,
} from '@modelcontextprotocol/client';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newApiKey } from '../../src/auth/api-key.js';
import { type Peer, startV2Server } from '../fixtures/peers.js';
import { createTestCA, issueCertificate, type Pem, type TestCA } from '../support/certs.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { META, MODERN, modernHeaders } from '../support/wire.js';

const HEADERS = modernHeaders('tools/call', 'echo');
const ECHO = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'echo', arguments: { text: 'hello' }, _meta: META },
});
const SPIFFE_ID = 'spiffe://prod/agent/reporting';
const DAY_MS = 86_400_000;

/** The `identities:` section every gateway here shares. */
const identities = (apiKeyHash: string) => `identities:
  apiKeys:
    - { id: ci-bot, hash: "${apiKeyHash}", scopes: [files:read] }
  mtls:
    - { name: reporting, match: { uri: "${SPIFFE_ID}" }, scopes: [files:read] }
    - { name: ops-agent, match: { cn: agent-ops }, scopes: [files:read, files:write] }
    - { name: web, match: { dns: web.tools.svc }, scopes: [files:read] }
`;

const route = (
  path: string,
  upstream: string,
  methods: string,
  require: 'any' | 'all' = 'any',
) => `  - route: ${path}
    resource: https://mcp.example.test${path}
    upstream: ${upstream}
    authentication: { methods: [${methods}], require: ${require} }
    tools: { echo: files:read }
`;

/** The policy's `tls:` section for files in `dir`. */
const tlsSection = (dir: string, clientCertificate: 'required' | 'optional') => `tls:
  cert: ${join(dir, 'tls.crt')}
  key: ${join(dir, 'tls.key')}
  clientCA: ${join(dir, 'client-ca.crt')}
  clientCertificate: ${clientCertificate}
`;

let serverCA: TestCA;
let clientCA: TestCA;
let foreignCA: TestCA;
let serving: Pem;
/** Client certificates, each named by what it tests. */
let ops: Pem; // CN agent-ops → `ops-agent` (match: cn)
let web: Pem; // SAN DNS web.tools.svc → `web` (match: dns)
let reporting: Pem; // SAN URI spiffe://prod/agent/reporting → `reporting` (match: uri)
let stranger: Pem; // chains to the client CA, matches no entry
let cnAsDns: Pem; // CN web.tools.svc, no SAN: a CN is not a DNS name
let dnsAsCn: Pem; // SAN DNS agent-ops, another CN: a DNS name is not a CN
let foreign: Pem; // CN agent-ops, from a CA the gateway does not trust
let expired: Pem; // CN agent-ops, from the client CA, expired yesterday
let twoCns: Pem; // CN=agent-ops, CN=intern: two CNs, ambiguous
let twoCnsReversed: Pem; // CN=intern, CN=agent-ops
let multiValuedCn: Pem; // CN=agent-ops+CN=intern: one multi-valued RDN
let twoCnsWithDns: Pem; // two CNs, and SAN DNS web.tools.svc: matched by the SAN
let apiKey: { key: string; hash: string };
let upstream: Peer;
const dirs: string[] = [];
const agents: Agent[] = [];

beforeAll(async () => {
  [serverCA, clientCA, foreignCA] = await Promise.all([
    createTestCA('Server CA'),
    createTestCA('Client CA'),
    createTestCA('Foreign CA'),
  ]);
  const now = Date.now();
  [serving, ops, web, reporting, stranger, cnAsDns, dnsAsCn, foreign, expired] = await Promise.all([
    serverCA.issue({ cn: 'gateway.test', dns: ['localhost'], ips: ['127.0.0.1'] }),
    clientCA.issue({ cn: 'agent-ops', client: true }),
    clientCA.issue({ cn: 'web-frontend', dns: ['web.tools.svc'], client: true }),
    clientCA.issue({ cn: 'reporting-workload', uris: [SPIFFE_ID], client: true }),
    clientCA.issue({
      cn: 'stranger',
      dns: ['stranger.tools.svc'],
      uris: ['spiffe://prod/agent/other'],
      client: true,
    }),
    clientCA.issue({ cn: 'web.tools.svc', client: true }),
    clientCA.issue({ cn: 'someone-else', dns: ['agent-ops'], client: true }),
    foreignCA.issue({ cn: 'agent-ops', uris: [SPIFFE_ID], client: true }),
    issueCertificate(clientCA, {
      cn: 'agent-ops',
      client: true,
      notBefore: new Date(now - 2 * DAY_MS),
      notAfter: new Date(now - DAY_MS),
    }),
  ]);
  [twoCns, twoCnsReversed, multiValuedCn, twoCnsWithDns] = await Promise.all([
    clientCA.issue({ cn: 'agent-ops', subject: 'CN=agent-ops, CN=intern', client: true }),
    clientCA.issue({ cn: 'agent-ops', subject: 'CN=intern, CN=agent-ops', client: true }),
    clientCA.issue({ cn: 'agent-ops', subject: 'CN=agent-ops+CN=intern', client: true }),
    clientCA.issue({
      cn: 'agent-ops',
      subject: 'CN=agent-ops, CN=intern',
      dns: ['web.tools.svc'],
      client: true,
    }),
  ]);
  apiKey = newApiKey('pk_test_');
  upstream = await startV2Server({ response: 'json' });
});

afterAll(async () => {
  await Promise.all(agents.map((agent) => agent.close()));
  await upstream?.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A temp directory holding the gateway's certificate, key and client CA. */
function writeTlsDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-mtls-'));
  dirs.push(dir);
  writeFileSync(join(dir, 'tls.crt'), serving.cert);
  writeFileSync(join(dir, 'tls.key'), serving.key);
  writeFileSync(join(dir, 'client-ca.crt'), clientCA.cert);
  return dir;
}

/** An undici dispatcher trusting the server CA and presenting `client` (if any); a fresh TLS session each. */
function agentFor(client?: Pem): Agent {
  const agent = new Agent({
    connect: { ca: serverCA.cert, ...(client === undefined ? {} : { cert: client.cert, key: client.key }) },
  });
  agents.push(agent);
  return agent;
}

/** A modern `tools/call echo`, over a new connection presenting `client`. */
async function callEcho(
  base: string,
  path: string,
  opts: { client?: Pem; headers?: Record<string, string> } = {},
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const answer = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { ...HEADERS, ...opts.headers },
    body: ECHO,
    dispatcher: agentFor(opts.client),
  });
  return { status: answer.status, headers: answer.headers as unknown as Headers, body: await answer.json() };
}

/** The upstream's count of requests, to prove that a refusal reached nothing. */
const seenUpstream = () => upstream.requests.length;

function expectEchoed(answer: { status: number; body: unknown }): void {
  expect(answer.status).toBe(200);
  expect(answer.body).toMatchObject({ jsonrpc: '2.0', id: 1, result: { content: [{ text: 'hello' }] } });
}

function expectUnauthorized(
  answer: { status: number; headers: Headers; body: unknown },
  reason: 'invalid_credential' | 'missing_credential',
): void {
  expect(answer.status).toBe(401);
  expect(answer.body).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: -31091, data: { reason } } });
  const challenge = answer.headers.get('www-authenticate') ?? '';
  expect(challenge).toMatch(/^Bearer( |$)/);
  // These routes name no authorization server: no metadata for an OAuth client to chase.
  expect(challenge).not.toContain('resource_metadata');
  if (reason === 'invalid_credential') expect(challenge).toContain('error="invalid_token"');
  else expect(challenge).not.toContain('error=');
}

/** The audit record of the request that got this answer. */
async function auditOf(gateway: TestGateway, answer: { headers: Headers }): Promise<Record<string, unknown>> {
  const requestId = answer.headers.get('x-request-id');
  const record = (await gateway.auditRecords()).find((r) => r.requestId === requestId);
  expect(record, `an audit record for request ${requestId}`).toBeDefined();
  return record as Record<string, unknown>;
}

interface RawAnswer {
  /** The HTTP status line, if an answer came. */
  readonly statusLine: string | undefined;
  /** The TLS or socket error code, if any. */
  readonly error: string | undefined;
  /** The serial number of the certificate the server presented. */
  readonly serial: string | undefined;
  /** Whether the handshake resumed the session passed in. */
  readonly resumed: boolean;
  /** The session (ticket) the server issued, for a later resumption. */
  readonly session: Buffer | undefined;
}

/**
 * A raw TLS connection that sends one HTTP request once the handshake is done: what came back (the
 * status line, if any) and the TLS error, if any. Under TLS 1.3 the client finishes its side of the
 * handshake before the server has checked the client certificate, so a refused certificate shows
 * as an alert or a close with no HTTP answer, not as a failed `connect`.
 */
function rawRequest(base: string, client?: Pem, session?: Buffer): Promise<RawAnswer> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve) => {
    let data = '';
    let error: string | undefined;
    let serial: string | undefined;
    let resumed = false;
    let ticket: Buffer | undefined;
    const socket = connect({
      host: hostname,
      port: Number(port),
      ca: serverCA.cert,
      ...(client === undefined ? {} : { cert: client.cert, key: client.key }),
      ...(session === undefined ? {} : { session }),
    });
    socket.on('session', (value: Buffer) => {
      ticket = value;
    });
    socket.once('secureConnect', () => {
      serial = socket.getPeerCertificate().serialNumber;
      resumed = socket.isSessionReused();
      socket.write(
        `POST /mcp HTTP/1.1\r\nhost: ${hostname}\r\nconnection: close\r\n${Object.entries(HEADERS)
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join('')}content-length: ${Buffer.byteLength(ECHO)}\r\n\r\n${ECHO}`,
      );
    });
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.once('close', () => {
      const statusLine = data === '' ? undefined : data.split('\r\n')[0];
      resolve({ statusLine, error, serial, resumed, session: ticket });
    });
  });
}

describe('clientCertificate: required', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    const dir = writeTlsDir();
    gateway = await startTestGateway({
      policy: `${tlsSection(dir, 'required')}authFailures: { limit: 1000/minute }
${identities(apiKey.hash)}routes:
${route('/mcp', upstream.url, 'mtls')}`,
    });
  });
  afterAll(async () => {
    await gateway?.close();
  });

  it('serves a client whose certificate chains to the client CA and names an identity', async () => {
    const answer = await callEcho(gateway.url, '/mcp', { client: ops });
    expectEchoed(answer);
    expect((await auditOf(gateway, answer)).identity).toMatchObject({ key: 'mtls:ops-agent' });
  });

  it.each([
    ['without a certificate', undefined],
    ['with a certificate from a foreign CA', 'foreign'],
    ['with an expired certificate', 'expired'],
  ] as const)('refuses the TLS handshake %s, and the upstream sees nothing', async (_, which) => {
    const client = which === undefined ? undefined : { foreign, expired }[which];
    const before = seenUpstream();
    const raw = await rawRequest(gateway.url, client);
    expect(raw.statusLine, 'no HTTP answer over a refused handshake').toBeUndefined();
    if (which === undefined) expect(raw.error).toBe('ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED');
    // undici sees the same refusal as a failed fetch, not as an HTTP status.
    await expect(callEcho(gateway.url, '/mcp', client === undefined ? {} : { client })).rejects.toThrow();
    expect(seenUpstream()).toBe(before);
  });

  it('carries the SDK v2 client end to end over mTLS (its transport takes a fetch with the certificate)', async () => {
    const agent = agentFor(reporting);
    // The SDK's FetchLike is typed with the DOM fetch types; undici's fetch is the same function.
    const mtlsFetch = ((url, init) => fetch(url, { ...init, dispatcher: agent } as never)) as FetchLike;
    const client = new V2Client(
      { name: 'mtls-client', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: MODERN } } },
    );
    const before = seenUpstream();
    await client.connect(new V2ClientTransport(new URL(`${gateway.url}/mcp`), { fetch: mtlsFetch }));
    try {
      const tools = await client.listTools();
      expect(tools.tools.map((tool) => tool.name)).toContain('echo');
      const result = await client.callTool({ name: 'echo', arguments: { text: 'over mTLS' } });
      expect(result.content).toEqual([{ type: 'text', text: 'over mTLS' }]);
    } finally {
      await client.close();
    }
    const received = upstream.requests.slice(before);
    expect(received.map((r) => r.headers['mcp-method'])).toEqual(expect.arrayContaining(['tools/call']));
    const records = (await gateway.auditRecords()).filter((r) => r.method === 'tools/call');
    expect(records.at(-1)).toMatchObject({
      identity: expect.objectContaining({ key: 'mtls:reporting' }),
      tool: 'echo',
      decision: 'allow',
    });
  });

  it('leaves the SDK v2 client without a certificate unable to connect', async () => {
    const agent = agentFor();
    const plainFetch = ((url, init) => fetch(url, { ...init, dispatcher: agent } as never)) as FetchLike;
    const client = new V2Client(
      { name: 'no-cert-client', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: MODERN } } },
    );
    const before = seenUpstream();
    await expect(
      client.connect(new V2ClientTransport(new URL(`${gateway.url}/mcp`), { fetch: plainFetch })),
    ).rejects.toThrow();
    await client.close();
    expect(seenUpstream()).toBe(before);
  });
});

describe('clientCertificate: optional', () => {
  let gateway: TestGateway;

  beforeAll(async () => {
    const dir = writeTlsDir();
    gateway = await startTestGateway({
      policy: `${tlsSection(dir, 'optional')}authFailures: { limit: 1000/minute }
${identities(apiKey.hash)}routes:
${route('/mcp', upstream.url, 'mtls, apiKey')}${route('/both', upstream.url, 'mtls, apiKey', 'all')}`,
    });
  });
  afterAll(async () => {
    await gateway?.close();
  });

  it('lets an API-key client without a certificate through on the same port', async () => {
    const answer = await callEcho(gateway.url, '/mcp', { headers: { 'x-api-key': apiKey.key } });
    expectEchoed(answer);
    expect((await auditOf(gateway, answer)).identity).toMatchObject({ key: 'apiKey:ci-bot' });
  });

  it('answers 401 missing_credential to a client with neither certificate nor key', async () => {
    const before = seenUpstream();
    const answer = await callEcho(gateway.url, '/mcp');
    expectUnauthorized(answer, 'missing_credential');
    expect(seenUpstream()).toBe(before);
  });

  it.each([
    ['cn', 'ops', 'ops-agent'],
    ['dns', 'web', 'web'],
    ['uri (SPIFFE ID)', 'reporting', 'reporting'],
  ] as const)(
    'authenticates a certificate matched by %s and audits it as mtls:<name>',
    async (_, which, name) => {
      const answer = await callEcho(gateway.url, '/mcp', { client: { ops, web, reporting }[which] });
      expectEchoed(answer);
      const record = await auditOf(gateway, answer);
      expect(record).toMatchObject({
        identity: expect.objectContaining({ key: `mtls:${name}` }),
        route: '/mcp',
        decision: 'allow',
        status: 200,
      });
    },
  );

  it.each([
    ['from a foreign CA', 'foreign', false],
    ['that has expired', 'expired', false],
    ['from a foreign CA, even beside a valid API key', 'foreign', true],
  ] as const)(
    'refuses a presented certificate %s with 401 invalid_credential; the upstream sees nothing',
    async (_, which, withKey) => {
      const before = seenUpstream();
      const answer = await callEcho(gateway.url, '/mcp', {
        client: { foreign, expired }[which],
        ...(withKey ? { headers: { 'x-api-key': apiKey.key } } : {}),
      });
      expectUnauthorized(answer, 'invalid_credential');
      expect(seenUpstream()).toBe(before);
      expect(await auditOf(gateway, answer)).toMatchObject({
        identity: null,
        decision: 'deny',
        reason: 'invalid_credential',
        status: 401,
      });
    },
  );

  it.each([
    ['names no identities.mtls entry', 'stranger'],
    ['has the configured DNS name only as its CN', 'cnAsDns'],
    ['has the configured CN only as a SAN DNS name', 'dnsAsCn'],
    ['has the configured CN beside a second CN (two RDNs)', 'twoCns'],
    ['has the configured CN after a second CN', 'twoCnsReversed'],
    ['has the configured CN in a multi-valued RDN with a second CN', 'multiValuedCn'],
  ] as const)(
    'refuses a valid certificate that %s with 401 invalid_credential, never falling through to the API key',
    async (_, which) => {
      const before = seenUpstream();
      const client = { stranger, cnAsDns, dnsAsCn, twoCns, twoCnsReversed, multiValuedCn }[which];
      expectUnauthorized(await callEcho(gateway.url, '/mcp', { client }), 'invalid_credential');
      // `require: any`: the certificate was presented first, so it decides; a key beside it changes nothing.
      expectUnauthorized(
        await callEcho(gateway.url, '/mcp', { client, headers: { 'x-api-key': apiKey.key } }),
        'invalid_credential',
      );
      expect(seenUpstream()).toBe(before);
    },
  );

  it('matches a certificate with two CNs by its SAN DNS name, and keeps serving the single-CN certificate', async () => {
    const bySan = await callEcho(gateway.url, '/mcp', { client: twoCnsWithDns });
    expectEchoed(bySan);
    expect((await auditOf(gateway, bySan)).identity).toMatchObject({ key: 'mtls:web' });
    const single = await callEcho(gateway.url, '/mcp', { client: ops });
    expectEchoed(single);
    expect((await auditOf(gateway, single)).identity).toMatchObject({ key: 'mtls:ops-agent' });
  });

  describe('require: all with [mtls, apiKey]', () => {
    it('serves a client presenting both, as one identity naming each', async () => {
      const answer = await callEcho(gateway.url, '/both', {
        client: ops,
        headers: { authorization: `Bearer ${apiKey.key}` },
      });
      expectEchoed(answer);
      expect((await auditOf(gateway, answer)).identity).toMatchObject({
        key: 'mtls:ops-agent+apiKey:ci-bot',
      });
    });

    it.each([
      ['the API key', { client: 'ops' }],
      ['the certificate', { key: true }],
    ] as const)('answers 401 when %s is missing; the upstream sees nothing', async (_, has) => {
      const before = seenUpstream();
      const answer = await callEcho(gateway.url, '/both', {
        ...('client' in has ? { client: ops } : {}),
        ...('key' in has ? { headers: { 'x-api-key': apiKey.key } } : {}),
      });
      expectUnauthorized(answer, 'missing_credential');
      expect(seenUpstream()).toBe(before);
    });

    it('answers 401 invalid_credential when the key is right but the certificate names no identity', async () => {
      const before = seenUpstream();
      const answer = await callEcho(gateway.url, '/both', {
        client: stranger,
        headers: { 'x-api-key': apiKey.key },
      });
      expectUnauthorized(answer, 'invalid_credential');
      expect(seenUpstream()).toBe(before);
    });
  });
});

describe('certificate rotation without restart', () => {
  let gateway: TestGateway;
  let dir: string;
  const keepAlive = () =>
    new HttpsAgent({ keepAlive: true, maxSockets: 1, ca: serverCA.cert, cert: ops.cert, key: ops.key });
  let held: HttpsAgent;

  beforeAll(async () => {
    dir = writeTlsDir();
    gateway = await startTestGateway({
      policy: `${tlsSection(dir, 'required')}limits: { keepAliveTimeoutMs: 60000, drainTimeoutMs: 2000 }
authFailures: { limit: 1000/minute }
${identities(apiKey.hash)}routes:
${route('/mcp', upstream.url, 'mtls')}`,
    });
    held = keepAlive();
  });
  afterAll(async () => {
    held?.destroy();
    await gateway?.close();
  });

  /** One request on `agent`: the status, the served certificate's serial, and whether the socket was reused. */
  function keepAliveRequest(agent: HttpsAgent): Promise<{ status: number; serial: string; reused: boolean }> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(
        `${gateway.url}/mcp`,
        { method: 'POST', agent, headers: { ...HEADERS, 'content-length': Buffer.byteLength(ECHO) } },
        (res) => {
          const serial = (res.socket as TLSSocket).getPeerCertificate().serialNumber;
          res.resume();
          res.once('end', () => resolve({ status: res.statusCode ?? 0, serial, reused: req.reusedSocket }));
        },
      );
      req.once('error', reject);
      req.end(ECHO);
    });
  }

  /** Polls fresh connections until `check` holds (or the deadline passes); returns the last result. */
  async function eventually<T>(probe: () => Promise<T>, check: (value: T) => boolean, ms = 5000): Promise<T> {
    const deadline = Date.now() + ms;
    let value = await probe();
    while (!check(value) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      value = await probe();
    }
    return value;
  }

  const serialOf = (pem: string) => new X509Certificate(pem).serialNumber.toUpperCase();

  it('serves a new server certificate to new connections while an open keep-alive connection keeps working', async () => {
    const first = await keepAliveRequest(held);
    expect(first).toMatchObject({ status: 200, serial: serialOf(serving.cert), reused: false });

    const renewed = await serverCA.issue({ cn: 'gateway.test', dns: ['localhost'], ips: ['127.0.0.1'] });
    expect(serialOf(renewed.cert)).not.toBe(serialOf(serving.cert));
    writeFileSync(join(dir, 'tls.crt'), renewed.cert);
    writeFileSync(join(dir, 'tls.key'), renewed.key);

    const fresh = await eventually(
      () => rawRequest(gateway.url, ops),
      (r) => r.serial === serialOf(renewed.cert),
    );
    expect(fresh.serial, 'a new connection sees the renewed certificate').toBe(serialOf(renewed.cert));
    expect(fresh.statusLine).toBe('HTTP/1.1 200 OK');

    const again = await keepAliveRequest(held);
    expect(again, 'the open connection keeps its certificate and keeps serving').toEqual({
      status: 200,
      serial: serialOf(serving.cert),
      reused: true,
    });
    const other = keepAlive();
    try {
      expect(await keepAliveRequest(other)).toMatchObject({ status: 200, serial: serialOf(renewed.cert) });
    } finally {
      other.destroy();
    }
  });

  it('trusts a new client CA once its file is replaced, and stops trusting the old one', async () => {
    const nextCA = await createTestCA('Client CA 2');
    const newcomer = await nextCA.issue({ cn: 'agent-ops', client: true });
    const before = await rawRequest(gateway.url, newcomer);
    expect(before.statusLine, 'refused before the CA file changes').toBeUndefined();

    writeFileSync(join(dir, 'client-ca.crt'), nextCA.cert);
    const after = await eventually(
      () => rawRequest(gateway.url, newcomer),
      (r) => r.statusLine !== undefined,
    );
    expect(after.statusLine).toBe('HTTP/1.1 200 OK');

    const answer = await callEcho(gateway.url, '/mcp', { client: newcomer });
    expectEchoed(answer);
    expect((await auditOf(gateway, answer)).identity).toMatchObject({ key: 'mtls:ops-agent' });

    const old = await rawRequest(gateway.url, ops);
    expect(
      old.statusLine,
      'a certificate from the replaced CA is refused on new connections',
    ).toBeUndefined();
  });

  it('does not let a TLS session from before a client CA change resume for a certificate of the removed CA', async () => {
    const currentCA = await createTestCA('Client CA 3');
    const member = await currentCA.issue({ cn: 'agent-ops', client: true });
    writeFileSync(join(dir, 'client-ca.crt'), currentCA.cert);
    const first = await eventually(
      () => rawRequest(gateway.url, member),
      (r) => r.statusLine !== undefined,
    );
    expect(first.statusLine).toBe('HTTP/1.1 200 OK');
    expect(first.session).toBeDefined();
    // Resumption works, and a resumed session is still authenticated as its certificate.
    const resumed = await rawRequest(gateway.url, member, first.session);
    expect(resumed).toMatchObject({ statusLine: 'HTTP/1.1 200 OK', resumed: true });

    const nextCA = await createTestCA('Client CA 4');
    writeFileSync(join(dir, 'client-ca.crt'), nextCA.cert);
    const refused = await eventually(
      () => rawRequest(gateway.url, member),
      (r) => r.statusLine === undefined,
    );
    expect(refused.statusLine, 'a fresh handshake is refused once the CA is gone').toBeUndefined();
    const replayed = await rawRequest(gateway.url, member, resumed.session ?? first.session);
    expect(
      replayed.statusLine,
      'the old session must not carry the removed CA past the change',
    ).toBeUndefined();
    expect(replayed.resumed).toBe(false);
  });
});
