import { challengeScopes } from '../auth/challenge.js';
import {
  type Config,
  entryScopes,
  type RouteConfig,
  type ToolEntry,
  type UpstreamConfig,
  type UpstreamIdentityConfig,
} from '../config/schema.js';
import { isStdioTarget, upstreamTargets } from '../config/upstreams.js';
import { identityKeyProblems } from '../upstream/identity/key-problems.js';
import { accountProblems } from '../upstream/stdio/environment.js';
import { findExecutable } from '../upstream/stdio/executable.js';
import { loadFromArgs } from './config-arg.js';

/**
 * `portcullis check --config FILE [--connect]`: validate, then print what the policy means; with
 * `--connect`, also what every server offers, as clients will see it (`connect.ts`).
 */
export async function runCheck(args: string[]): Promise<number> {
  const found = loadFromArgs(args, 'check', { connect: { type: 'boolean' } });
  if (!found) return 1;
  process.stdout.write(describeConfig(found.loaded.config, found.path));
  const problems = commandProblems(found.loaded.config);
  if (found.flags.has('connect') && problems.length === 0) {
    const { connectAndDescribe } = await import('./connect.js');
    const connected = await connectAndDescribe(found.loaded.config);
    process.stdout.write(`${connected.lines.join('\n')}\n`);
    for (const warning of connected.warnings) process.stdout.write(`warning: ${warning}\n`);
    problems.push(...connected.problems);
  }
  for (const problem of problems) process.stderr.write(`error: ${problem}\n`);
  return problems.length === 0 ? 0 : 1;
}

/**
 * Each stdio route's program must be an executable the child can run (not a load error: it may be
 * installed later), and each of `gatewayIdentity.signingKeys` a key that signs.
 */
export function commandProblems(config: Config): string[] {
  const problems = [...accountProblems(config), ...identityKeyProblems(config)];
  config.routes.forEach((route, i) => {
    for (const target of upstreamTargets(route, i)) {
      if (!isStdioTarget(target) || findExecutable(target.upstream) !== undefined) continue;
      const program = target.upstream.command[0];
      problems.push(
        `${target.field}.command: ${JSON.stringify(program)} is not an executable file${program?.includes('/') ? '' : " on the child's PATH"}`,
      );
    }
  });
  return problems;
}

export function describeConfig(config: Config, path: string, env: NodeJS.ProcessEnv = process.env): string {
  const lines = [`${path}: valid, ${config.routes.length} route(s)`];
  for (const warning of warnings(config, env)) lines.push(`warning: ${warning}`);
  config.routes.forEach((route, i) => {
    lines.push('', ...describeRoute(route, i));
  });
  return `${lines.join('\n')}\n`;
}

function describeRoute(route: RouteConfig, index: number): string[] {
  const auth = route.authentication;
  const lines = [
    `route ${route.route}`,
    ...upstreamTargets(route, index).map(
      (target) =>
        (target.server === undefined
          ? `  upstream        ${describeUpstream(target.upstream)}`
          : `  server ${target.server.padEnd(8)} ${describeUpstream(target.upstream)}${route.servers?.[target.server]?.required ? ' (required)' : ''}`) +
        describeIdentity(target.identity),
    ),
    `  resource        ${route.resource}`,
    `  authentication  ${auth.methods.join(', ')} (require ${auth.require})`,
    `  mode            ${route.mode}, default ${route.default}`,
    `  authorization   ${route.authorizationServers.length > 0 ? route.authorizationServers.join(', ') : 'none (no OAuth metadata, no resource_metadata)'}`,
    `  challenge scope ${challengeScopes(route).join(' ') || '(none)'}${route.challengeScopes === undefined ? ' (default: single-scope entries)' : ''}`,
  ];
  const sections: [string, Readonly<Record<string, ToolEntry>>][] = [
    ['methods', route.methods],
    ['tools', route.tools],
    ['resources', route.resources],
    ['prompts', route.prompts],
  ];
  for (const [title, entries] of sections) {
    const names = Object.keys(entries);
    if (names.length === 0) continue;
    lines.push(`  ${title}:`);
    const width = Math.max(...names.map((n) => n.length));
    for (const name of names) {
      const entry = entries[name] as ToolEntry;
      const object =
        typeof entry === 'object' && !Array.isArray(entry)
          ? (entry as { when?: string; confirm?: string })
          : undefined;
      const when = object?.when === undefined ? '' : ` when ${object.when}`;
      // A call a person must say yes to: shown, since it changes what a client experiences.
      const confirm = object?.confirm === undefined ? '' : `, confirmed by the ${object.confirm}`;
      lines.push(`    ${name.padEnd(width)} → ${entryScopes(entry).join(' + ')}${when}${confirm}`);
    }
  }
  if (route.rateLimits) {
    lines.push(`  rate limits (failMode ${route.failMode}):`);
    for (const rule of route.rateLimits) {
      lines.push(`    per ${rule.per} ${rule.limit}${rule.tools ? ` on ${rule.tools.join(', ')}` : ''}`);
    }
  }
  return lines;
}

/** How the upstream is told who calls, after its address: ` (told who calls: assertion for aud …)`. */
function describeIdentity(identity: UpstreamIdentityConfig | undefined): string {
  if (identity === undefined) return '';
  const scopes = identity.scopes === 'call' ? "the call's scopes" : "the caller's scopes";
  return identity.mode === 'assertion'
    ? ` (told who calls: assertion for ${identity.audience}, ${scopes})`
    : ` (told who calls: token exchanged at ${identity.tokenEndpoint} for ${identity.audience}, ${scopes})`;
}

function describeUpstream(upstream: UpstreamConfig): string {
  if (typeof upstream === 'string') return upstream;
  // argv as JSON strings: where one argument ends and the next begins stays visible.
  const argv = upstream.command.map((arg) => JSON.stringify(arg)).join(' ');
  const who = upstream.user === undefined ? 'as the gateway user' : `as ${upstream.user}`;
  return `stdio ${argv} (${upstream.processes}, at most ${upstream.maxProcesses}, ${who})`;
}

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[::1\])$/;

/** Environment variable names that look like they hold a secret (never their values). */
const SECRET_NAME = /(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|PRIVATE)/i;

function warnings(config: Config, env: NodeJS.ProcessEnv = process.env): string[] {
  const out: string[] = [];
  const plain = (label: string, value: string) => {
    const url = new URL(value);
    if (url.protocol === 'http:' && !LOOPBACK.test(url.hostname))
      out.push(`${label} uses plain http off loopback: ${value}`);
  };
  // People log in and decide on these pages: their session cookie is Secure (kept on loopback only over http).
  if (config.approvals.publicUrl !== undefined) plain('approvals.publicUrl', config.approvals.publicUrl);
  if (config.approvals.oidc !== undefined) plain('approvals.oidc.issuer', config.approvals.oidc.issuer);
  if (config.approvals.allowSelfApproval)
    out.push('approvals.allowSelfApproval: a requester may approve their own call (no second person)');
  // Two upstreams told who calls under one audience accept each other's assertions and tokens.
  const audiences = new Map<string, string>();
  config.routes.forEach((route, i) => {
    for (const target of upstreamTargets(route, i)) {
      if (target.identity === undefined) continue;
      const field = target.field.replace(/\.upstream$/, '');
      const first = audiences.get(target.identity.audience);
      if (first === undefined) audiences.set(target.identity.audience, field);
      else
        out.push(
          `${field}.upstreamIdentity.audience ${target.identity.audience} is ${first}'s too: what is sent to one is good at the other`,
        );
    }
  });
  config.routes.forEach((route, i) => {
    const targets = upstreamTargets(route, i);
    for (const target of targets) {
      if (!isStdioTarget(target)) plain(target.field, target.upstream as string);
      // The callers' tokens travel to the token endpoint.
      if (target.identity?.mode === 'tokenExchange')
        plain(
          `${target.field.replace(/\.upstream$/, '')}.upstreamIdentity.tokenEndpoint`,
          target.identity.tokenEndpoint,
        );
    }
    plain(`routes[${i}].resource`, route.resource);
    if (route.mode === 'shadow') out.push(`routes[${i}] is in shadow mode: denied calls are forwarded`);
    if (route.default === 'allow')
      out.push(`routes[${i}] allows names the policy does not list (default: allow)`);
    const ownUser = targets.filter((t) => isStdioTarget(t) && t.upstream.user === undefined);
    if (ownUser.length > 0) {
      const secrets = Object.keys(env)
        .filter((name) => SECRET_NAME.test(name))
        .sort();
      if (secrets.length > 0)
        out.push(
          `routes[${i}] runs a stdio server as the gateway's own user while the gateway's environment holds ${secrets.join(', ')}: the server can read them through /proc — set ${ownUser.map((t) => `${t.field.slice(`routes[${i}].`.length)}.user`).join(', ')} to run it outside the trust boundary`,
        );
    }
    for (const [server, spec] of Object.entries(route.servers ?? {})) {
      const prefix = spec.prefix ?? `${server}__`;
      if (prefix.includes('.'))
        out.push(
          `routes[${i}].servers.${server}.prefix ${JSON.stringify(prefix)} contains '.': every exposed name will, which some LLM providers refuse in function names (check --connect lists them)`,
        );
    }
    if (route.authentication.methods.includes('jwt') && route.authorizationServers.length === 0)
      out.push(
        `routes[${i}] accepts JWTs but names no authorizationServers: OAuth clients cannot discover where to get a token`,
      );
  });
  config.identities.jwt.forEach((issuer, i) => {
    plain(`identities.jwt[${i}].issuer`, issuer.issuer);
    if (issuer.jwksUri) plain(`identities.jwt[${i}].jwksUri`, issuer.jwksUri);
  });
  if (!config.tls) out.push('no tls: the main listener speaks plain HTTP (terminate TLS in front of it)');
  return out;
}
