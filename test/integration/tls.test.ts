/**
 * TLS on both sides with certificates made in the test: the gateway's main listener over HTTPS
 * (TLS 1.2 minimum), and an HTTPS upstream verified against its own CA through `upstreamTls`.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { Agent, fetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestCA, type TestCA } from '../support/certs.js';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

describe('TLS', () => {
  let dir: string;
  let gatewayCA: TestCA;
  let upstream: Server;
  let gateway: TestGateway;
  let wrongCaGateway: TestGateway;
  let agent: Agent;
  const seen: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-'));
    gatewayCA = await createTestCA('Gateway CA');
    const upstreamCA = await createTestCA('Upstream CA');
    const otherCA = await createTestCA('Other CA');
    const serving = await gatewayCA.issue({ cn: 'gateway.test', dns: ['localhost'], ips: ['127.0.0.1'] });
    const upstreamLeaf = await upstreamCA.issue({ cn: 'files-mcp', dns: ['files-mcp.internal'] });
    const files: Record<string, string> = {
      'tls.crt': serving.cert,
      'tls.key': serving.key,
      'upstream-ca.crt': upstreamCA.cert,
      'other-ca.crt': otherCA.cert,
    };
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);

    upstream = createServer({ cert: upstreamLeaf.cert, key: upstreamLeaf.key }, (req, res) => {
      seen.push(req.url ?? '');
      req.resume();
      req.on('end', () =>
        res
          .writeHead(200, { 'content-type': 'application/json' })
          .end('{"jsonrpc":"2.0","id":1,"result":{}}'),
      );
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const upstreamUrl = `https://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp`;
    const tls = `tls: { cert: ${join(dir, 'tls.crt')}, key: ${join(dir, 'tls.key')} }`;
    gateway = await startTestGateway({
      top: tls,
      routes: [
        {
          upstream: upstreamUrl,
          extra: `    upstreamTls: { ca: ${join(dir, 'upstream-ca.crt')}, serverName: files-mcp.internal }\n`,
        },
      ],
    });
    wrongCaGateway = await startTestGateway({
      top: tls,
      routes: [
        {
          upstream: upstreamUrl,
          extra: `    upstreamTls: { ca: ${join(dir, 'other-ca.crt')}, serverName: files-mcp.internal }\n`,
        },
      ],
    });
    agent = new Agent({ connect: { ca: gatewayCA.cert } });
  });

  afterAll(async () => {
    await agent?.close();
    await gateway?.close();
    await wrongCaGateway?.close();
    upstream?.closeAllConnections();
    await new Promise((resolve) => upstream?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const ping = (base: string) =>
    fetch(`${base}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: '{"jsonrpc":"2.0","id":1,"method":"ping"}',
      dispatcher: agent,
    });

  it('serves HTTPS and forwards to an HTTPS upstream verified by its CA', async () => {
    expect(gateway.url).toMatch(/^https:/);
    const answer = await ping(gateway.url);
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ jsonrpc: '2.0', id: 1, result: {} });
  });

  it('answers 502 when the upstream certificate does not verify, and never sends it the request', async () => {
    const before = seen.length;
    const answer = await ping(wrongCaGateway.url);
    expect(answer.status).toBe(502);
    expect(await answer.json()).toMatchObject({
      id: 1,
      error: { code: -31095, data: { reason: 'upstream_unreachable' } },
    });
    expect(seen.length).toBe(before);
  });

  it('refuses TLS 1.1 handshakes', async () => {
    const { port } = new URL(gateway.url);
    const error = await new Promise<Error | undefined>((resolve) => {
      const socket = connect({
        host: '127.0.0.1',
        port: Number(port),
        ca: gatewayCA.cert,
        minVersion: 'TLSv1',
        maxVersion: 'TLSv1.1',
      });
      socket.once('secureConnect', () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once('error', resolve);
    });
    expect(error).toBeInstanceOf(Error);
  });
});
