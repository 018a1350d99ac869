/** A JWT-authenticated SSE stream ends when its token expires (DESIGN.md step 9). */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { createSigningKey, nowSec, type SigningKey, signJwt } from '../support/jwks.js';

const IDP = 'https://idp.expiry.test/';

describe('JWT stream expiry', () => {
  let upstream: Server;
  let gateway: TestGateway;
  let key: SigningKey;

  beforeAll(async () => {
    // An upstream GET stream that never ends by itself.
    upstream = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(': open\n\n');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    key = await createSigningKey('ES256');
    gateway = await startTestGateway({
      policy: `identities:
  jwt:
    - { issuer: "${IDP}", keys: [${JSON.stringify(key.publicJwk)}], algorithms: [ES256], clockToleranceSec: 0 }
routes:
  - route: /mcp
    resource: http://127.0.0.1/mcp
    upstream: http://127.0.0.1:${(upstream.address() as AddressInfo).port}/mcp
    authentication: { methods: [jwt] }
`,
    });
  });
  afterAll(async () => {
    await gateway?.close();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  });

  it('closes the stream at exp, not before', async () => {
    const token = await signJwt(key, {
      iss: IDP,
      sub: 'agent',
      aud: 'http://127.0.0.1/mcp',
      iat: nowSec(),
      exp: nowSec() + 2,
    });
    const opened = performance.now();
    const answer = await fetch(`${gateway.url}/mcp`, {
      headers: { accept: 'text/event-stream', authorization: `Bearer ${token}` },
    });
    expect(answer.status).toBe(200);
    const ended = await answer.body!.pipeTo(new WritableStream()).then(
      () => performance.now(),
      () => performance.now(),
    );
    const lived = ended - opened;
    expect(lived).toBeGreaterThan(500);
    expect(lived).toBeLessThan(4_000);
  });
});
