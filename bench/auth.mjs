// npm run bench:auth (and the `auth` row of npm run bench): the authentication paths under the same tools/call load — the gateway with an
// API key, with a JWT (RS256, one token reused as agents do), and with mTLS, beside a bare TLS
// pass-through that also requires a client certificate. Certificates come from openssl, keys and
// tokens from the gateway's own code and jose, all made fresh in a temporary directory. Every
// route grants the call by one tool entry, and every identity (the token's `scope` claim) holds
// its scope: without them the default-deny route answers 403.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { newApiKey } from '../dist/auth/api-key.js';
import { compare, isMain, report, start, stopAll, verdict } from './harness.mjs';

const openssl = (...args) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });

function certificates(file) {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  openssl(
    'req',
    '-x509',
    ...ec,
    '-keyout',
    file('ca.key'),
    '-out',
    file('ca.crt'),
    '-subj',
    '/CN=bench-ca',
    '-days',
    '2',
  );
  for (const [name, ext] of [
    ['server', 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n'],
    ['client', 'subjectAltName=URI:spiffe://bench/agent\nextendedKeyUsage=clientAuth\n'],
  ]) {
    writeFileSync(file(`${name}.ext`), ext);
    openssl(
      'req',
      ...ec,
      '-keyout',
      file(`${name}.key`),
      '-out',
      file(`${name}.csr`),
      '-subj',
      `/CN=bench-${name}`,
    );
    openssl(
      'x509',
      '-req',
      '-in',
      file(`${name}.csr`),
      '-CA',
      file('ca.crt'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-out',
      file(`${name}.crt`),
      '-days',
      '2',
      '-extfile',
      file(`${name}.ext`),
    );
  }
}

function policy(file, upstream, name, { tls = '', identities, methods }) {
  const scheme = tls ? 'https' : 'http';
  writeFileSync(
    file(`${name}.yaml`),
    `listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0 }
audit: { destination: ${JSON.stringify(file(`${name}-audit.jsonl`))} }
log: { level: warn }
authFailures: { limit: 1000/second }
${tls}
identities:
${identities}
routes:
  - route: /mcp
    resource: ${scheme}://127.0.0.1/mcp
    upstream: ${upstream}
    authentication: { methods: [${methods}] }
    tools: { list_notes: notes:read }
`,
  );
  return file(`${name}.yaml`);
}

/** Starts the participants, drives the load, prints the table and the verdicts. */
export async function benchAuth() {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-auth-'));
  const file = (name) => join(dir, name);
  certificates(file);
  const upstream = await start('upstream');

  const apiKey = newApiKey('pk_bench_');
  const { publicKey, privateKey } = await generateKeyPair('RS256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'bench-1', alg: 'RS256', use: 'sig' };
  const token = await new SignJWT({ scope: 'notes:read' })
    .setProtectedHeader({ alg: 'RS256', kid: 'bench-1' })
    .setIssuer('https://idp.bench.example/')
    .setSubject('agent-7')
    .setAudience('http://127.0.0.1/mcp')
    .setIssuedAt()
    .setExpirationTime('1h')
    .sign(privateKey);
  const tlsSection = `tls: { cert: ${file('server.crt')}, key: ${file('server.key')}, clientCA: ${file('ca.crt')}, clientCertificate: required }`;
  const clientTls = {
    tlsOptions: {
      cert: readFileSync(file('client.crt')),
      key: readFileSync(file('client.key')),
      ca: readFileSync(file('ca.crt')),
    },
  };

  const targets = [
    await start(
      'policy',
      [
        policy(file, upstream.url, 'apikey', {
          identities: `  apiKeys: [{ id: bench, hash: "${apiKey.hash}", scopes: [notes:read] }]`,
          methods: 'apiKey',
        }),
      ],
      {
        headers: { authorization: `Bearer ${apiKey.key}` },
      },
    ),
    await start(
      'policy',
      [
        policy(file, upstream.url, 'jwt', {
          identities: `  jwt: [{ issuer: "https://idp.bench.example/", keys: [${JSON.stringify(jwk)}], algorithms: [RS256] }]`,
          methods: 'jwt',
        }),
      ],
      { headers: { authorization: `Bearer ${token}` } },
    ),
    await start(
      'policy',
      [
        policy(file, upstream.url, 'mtls', {
          tls: tlsSection,
          identities:
            '  mtls: [{ name: agent, match: { uri: "spiffe://bench/agent" }, scopes: [notes:read] }]',
          methods: 'mtls',
        }),
      ],
      clientTls,
    ),
    await start('bare-tls', [upstream.url, dir], clientTls),
  ];
  // One process per participant: name them for the report.
  ['gateway-apikey', 'gateway-jwt', 'gateway-mtls', 'bare-tls'].forEach((kind, i) => {
    targets[i].kind = kind;
  });
  try {
    const s = await compare(targets);
    report(s, [
      verdict('jwt ÷ api key', s['gateway-jwt'].rps / s['gateway-apikey'].rps, 0.95),
      verdict('mtls ÷ bare TLS', s['gateway-mtls'].rps / s['bare-tls'].rps, 0.85),
    ]);
  } finally {
    stopAll([upstream, ...targets]);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (isMain(import.meta.url)) await benchAuth();
