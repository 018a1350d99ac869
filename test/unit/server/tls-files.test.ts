/**
 * server/tls-files.ts through the one directory watcher: a rotated certificate and key are put in
 * force for new handshakes; a certificate written before its key (a pair that does not match) is
 * not — the old material keeps serving, a warning says why — until the key arrives.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createFileWatch, type FileWatch } from '../../../src/config/reload.js';
import {
  followTlsFiles,
  readTlsMaterial,
  type TlsMaterial,
  tlsOptions,
} from '../../../src/server/tls-files.js';
import { createTestCA, type TestCA } from '../../support/certs.js';

/** The serial number of the certificate a new TLS connection to `port` is served. */
function servedSerial(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
      const serial = socket.getPeerCertificate().serialNumber;
      socket.destroy();
      resolve(serial);
    });
    socket.once('error', reject);
  });
}

const serialOf = (pem: string) => new X509Certificate(pem).serialNumber.toUpperCase();

describe('followTlsFiles', () => {
  let dir: string;
  let ca: TestCA;
  let server: Server;
  let port: number;
  let watch: FileWatch;
  const applied: TlsMaterial[] = [];
  const lines: string[] = [];
  const settings = () => ({ cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'portcullis-tls-files-'));
    ca = await createTestCA('TLS files CA');
    const first = await ca.issue({ cn: 'first', dns: ['localhost'], ips: ['127.0.0.1'] });
    writeFileSync(settings().cert, first.cert);
    writeFileSync(settings().key, first.key);
    const material = readTlsMaterial(settings());
    server = createServer(tlsOptions(settings(), material), (_req, res) => res.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    watch = createFileWatch({ logger, settleMs: 20, pollMs: 100 });
    followTlsFiles({
      watch,
      settings: settings(),
      server,
      current: material,
      onApplied: (next) => applied.push(next),
      logger,
    });
  });
  afterAll(async () => {
    watch?.close();
    await new Promise((resolve) => server?.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the old certificate while the new one has not its key, and swaps once both are written', async () => {
    const before = await servedSerial(port, ca.cert);
    const renewed = await ca.issue({ cn: 'renewed', dns: ['localhost'], ips: ['127.0.0.1'] });
    writeFileSync(settings().cert, renewed.cert);
    await vi.waitFor(() => expect(lines.join('')).toContain('do not form a valid pair yet'));
    expect(applied).toEqual([]);
    expect(await servedSerial(port, ca.cert), 'the old pair keeps serving').toBe(before);

    writeFileSync(settings().key, renewed.key);
    await vi.waitFor(() => expect(applied).toHaveLength(1));
    expect(applied[0]?.cert.toString('utf8')).toBe(renewed.cert);
    expect(await servedSerial(port, ca.cert)).toBe(serialOf(renewed.cert));
    expect(lines.join('')).toContain('tls certificate, key or client CA reloaded');
  });
});
