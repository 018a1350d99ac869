// The `identity` row of npm run bench (issue 20): the cost of telling the upstream who calls. The
// same API-key route in front of the same upstream, without `upstreamIdentity` and with
// `upstreamIdentity: { mode: assertion }` (an ES256 key made here). Assertions are cached per
// caller, so the load — one caller, one key — measures the cached path: the lookup and the header.
// Before the load a probe proves the assertion arrives (`sub`, `aud`, ES256) and the client's key
// does not.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { newApiKey } from '../dist/auth/api-key.js';
import { callBody, compare, HEADERS, report, start, stopAll, verdict, writePolicy } from './harness.mjs';

const AUDIENCE = 'https://bench-upstream.local';

/** What the bench upstream was last sent in `Authorization`. */
function lastAuthorization(upstream) {
  return new Promise((resolve) => {
    const listen = (m) => {
      if (m?.counts === undefined) return;
      upstream.child.off('message', listen);
      resolve(m.authorization);
    };
    upstream.child.on('message', listen);
    upstream.child.send('counts');
  });
}

export async function benchIdentity() {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-bench-identity-'));
  const participants = [];
  try {
    const upstream = await start('upstream');
    participants.push(upstream);
    const signingKey = join(dir, 'signing.pem');
    writeFileSync(
      signingKey,
      generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    );
    const key = newApiKey('pk_bench_');
    const common = {
      upstream: upstream.url,
      identities: `  apiKeys: [{ id: bench, hash: "${key.hash}", scopes: [notes:read] }]`,
      methods: 'apiKey',
      top: `gatewayIdentity: { issuer: "https://portcullis.bench", signingKeys: [${JSON.stringify(signingKey)}] }`,
    };
    const client = { headers: { authorization: `Bearer ${key.key}` } };
    const plain = await start(
      'policy',
      [writePolicy(dir, 'no-identity', { ...common, route: '    tools: { list_notes: notes:read }' })],
      client,
      undefined,
      'no-identity',
    );
    participants.push(plain);
    const asserted = await start(
      'policy',
      [
        writePolicy(dir, 'assertion', {
          ...common,
          route: `    upstreamIdentity: { mode: assertion, audience: "${AUDIENCE}" }\n    tools: { list_notes: notes:read }`,
        }),
      ],
      client,
      undefined,
      'assertion',
    );
    participants.push(asserted);

    // Probes: the plain route sends no Authorization; the assertion route sends the assertion, never the key.
    const callOnce = (target) =>
      fetch(target.url, {
        method: 'POST',
        headers: { ...HEADERS, authorization: `Bearer ${key.key}` },
        body: callBody('list_notes'),
      }).then(async (answer) => {
        await answer.arrayBuffer();
        if (answer.status !== 200) throw new Error(`${target.kind}: probe answered ${answer.status}`);
      });
    await callOnce(plain);
    if ((await lastAuthorization(upstream)) !== undefined)
      throw new Error('no-identity: the upstream received an Authorization header');
    await callOnce(asserted);
    const header = await lastAuthorization(upstream);
    const token = header?.startsWith('Bearer ') ? header.slice(7) : '';
    if (token === '' || header.includes(key.key))
      throw new Error(`assertion: the upstream received ${header}`);
    const claims = decodeJwt(token);
    if (
      claims.sub !== 'apiKey:bench' ||
      claims.aud !== AUDIENCE ||
      decodeProtectedHeader(token).alg !== 'ES256'
    )
      throw new Error(`assertion: unexpected assertion ${JSON.stringify(claims)}`);

    const s = await compare([plain, asserted]);
    report(s, [
      verdict('assertion ÷ no identity', s.assertion.rps / s['no-identity'].rps, 0.95, {
        note: `CPU µs/req ${s.assertion.cpuPerReqUs.toFixed(1)} vs ${s['no-identity'].cpuPerReqUs.toFixed(1)}`,
      }),
      `assertion: probed before the load — the upstream received an ES256 assertion (sub ${claims.sub}, aud ${claims.aud}, exp − iat ${claims.exp - claims.iat} s), never the client's key`,
    ]);
  } finally {
    stopAll(participants);
    rmSync(dir, { recursive: true, force: true });
  }
}
