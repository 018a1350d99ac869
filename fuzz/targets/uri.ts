import type { Identity } from '../../src/auth/identity.js';
import type { RpcMessage } from '../../src/jsonrpc/parse.js';
import { type CompiledPolicy, compileTable } from '../../src/policy/compile.js';
import { decide } from '../../src/policy/decide.js';
import { canonicalResourceUri } from '../../src/policy/uri.js';
import { type Clock, shown, type Target, type Verdict } from '../harness.js';
import type { Prng } from '../prng.js';

/**
 * The canonicalizer under test (`src/policy/uri.ts`): the URI policy matches, or undefined when refused.
 */
export const canonicalize = (uri: string): string | undefined => canonicalResourceUri(uri);

/** The policy the oracle reasons about: allow zones and, under them, deny zones. */
export const RESOURCES = {
  'file:///public/**': 'read',
  'file:///public/secret/**': 'admin',
  'file:///secret/**': 'admin',
  'https://docs.example.com/api/**': 'read',
  'https://internal.example.com/**': 'admin',
  'notes://team/*': 'read',
} as const;

export function policyWith(defaultEffect: 'allow' | 'deny'): CompiledPolicy {
  return {
    tools: compileTable('tools', { echo: 'read', 'admin_*': 'admin', read_file: 'read' }),
    resources: compileTable('resources', RESOURCES),
    prompts: compileTable('prompts', { greet: 'read', admin_prompt: 'admin' }),
    methods: compileTable('methods', {}),
    defaultEffect,
    mode: 'enforce',
  };
}

export const POLICIES = { allow: policyWith('allow'), deny: policyWith('deny') } as const;

export const READER: Identity = {
  key: 'apiKey:fuzz',
  subject: 'fuzz',
  methods: ['apiKey'],
  scopes: new Set(['read']),
};

function decodePath(path: string): string {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/**
 * Where a WHATWG URL parser (what Node and the TypeScript SDK use) sends a URI, judged against
 * the policy: `deny` when it lands in a zone the reader may not read, `allow` when in one it may,
 * `other` elsewhere. The path is compared percent-decoded: that is what a file server opens.
 */
export function zoneOf(url: URL): 'allow' | 'deny' | 'other' {
  const path = decodePath(url.pathname);
  if (url.protocol === 'file:') {
    if (path.startsWith('/secret/') || path.startsWith('/public/secret/')) return 'deny';
    if (url.hostname === '' && path.startsWith('/public/')) return 'allow';
    return 'other';
  }
  if (url.protocol === 'https:') {
    // The deny pattern `https://internal.example.com/**` names one origin: the default port. Another
    // port is another origin (another server), matched by its own patterns, as RFC 3986 reads it.
    if (url.hostname === 'internal.example.com' && url.port === '') return 'deny';
    if (
      url.hostname === 'docs.example.com' &&
      url.port === '' &&
      path.startsWith('/api/') &&
      url.username === ''
    )
      return 'allow';
    return 'other';
  }
  if (url.protocol === 'notes:' && url.hostname === 'team' && /^\/[^/]+$/.test(url.pathname)) return 'allow';
  return 'other';
}

/** Whether an allowed URI, as spelled, may be forwarded: it lands where the policy allowed. */
export function landsWell(spelling: string, defaultEffect: 'allow' | 'deny'): string | undefined {
  let url: URL;
  try {
    url = new URL(spelling);
  } catch {
    return undefined; // no WHATWG client resolves it anywhere
  }
  const zone = zoneOf(url);
  if (zone === 'deny' || (defaultEffect === 'deny' && zone !== 'allow')) return url.href;
  return undefined;
}

const BASES = [
  'file:///public/a.txt',
  'file:///public/docs/b.md',
  'file:///public/x/../secret/a',
  'file:///secret/a',
  'file:///public/secret/k',
  'https://docs.example.com/api/v1',
  'https://internal.example.com/x',
  'notes://team/n1',
];

const CONTROLS = ['\t', '\n', '\r', ' ', '\u0000', '\u007f', '\u000b', '\u000c', '\u001f'];
const DOTS = [
  '/..',
  '/.',
  '/.%2e',
  '/%2e%2e',
  '/%2E.',
  '/.\t.',
  '/.\n.',
  '/.\r.',
  '/..;',
  '\\..',
  '/..\\',
  '/%252e%252e',
  '/\uff0e\uff0e',
  '/%2e%2E/%2e%2e',
];
const FILE_SPELLINGS = [
  'file:///',
  'FILE:///',
  'File:///',
  'file:/',
  'file:',
  'file://localhost/',
  'file://LOCALHOST/',
  'file:////',
  'file://127.0.0.1/',
  'file://evil/',
  'file:\\\\',
  'file:/\\',
  'fi\tle:///',
  ' file:///',
];
const HOST_TRICKS: readonly ((host: string) => string)[] = [
  (h) => h.toUpperCase(),
  (h) => `${h}.`,
  (h) => `${h}:443`,
  (h) => `user@${h}`,
  (h) => h.replace(/\./g, '\u3002'),
  (h) => h.replace('.', '%2e'),
  (h) => `${h}%2F@docs.example.com`,
  (h) => `docs.example.com@${h}`,
  (h) => h.replace('i', 'I'),
  (h) => `${h}\t`,
];

function mutate(uri: string, rng: Prng): string {
  const slashes: number[] = [];
  for (let i = 0; i < uri.length; i++) if (uri[i] === '/') slashes.push(i);
  // Mostly at a segment boundary, where a dot-segment or separator does harm.
  const at = slashes.length > 3 && rng.chance(0.7) ? rng.pick(slashes.slice(3)) : rng.int(uri.length + 1);
  const insert = (text: string) => uri.slice(0, at) + text + uri.slice(at);
  switch (rng.int(12)) {
    case 0:
      return insert(rng.pick(CONTROLS));
    case 1:
    case 2:
      return insert(rng.pick(DOTS) + (rng.chance(0.5) ? '/secret' : ''));
    case 3:
      return uri.slice(0, at) + rng.pick(['\\', '%2f', '%2F', '%5c', '%5C', '//', '/./']) + uri.slice(at + 1);
    case 4: {
      const colon = uri.indexOf(':');
      return colon === -1 ? uri : uri.slice(0, colon).toUpperCase() + uri.slice(colon);
    }
    case 5: {
      const m = /^file:\/\/\/?/.exec(uri);
      return m ? rng.pick(FILE_SPELLINGS) + uri.slice(m[0].length) : uri;
    }
    case 6: {
      // Percent-encode one character (unreserved ones must decode; `%` itself double-encodes).
      const i = rng.int(uri.length);
      const ch = uri[i] ?? 'a';
      const hex = ch.charCodeAt(0).toString(16).padStart(2, '0');
      const esc = `%${rng.chance(0.5) ? hex : hex.toUpperCase()}`;
      return uri.slice(0, i) + (rng.chance(0.2) ? `%25${hex}` : esc) + uri.slice(i + 1);
    }
    case 7: {
      const m = /^(https:\/\/)([^/]*)/.exec(uri);
      return m ? `${m[1]}${rng.pick(HOST_TRICKS)(m[2] ?? '')}${uri.slice(m[0].length)}` : uri;
    }
    case 8:
      return (
        uri + rng.pick(['?x', '#f', '/..?', '#/../secret', '?/../../secret', '%00', '%', '%zz', '%e2%82'])
      );
    case 9:
      return insert(rng.pick(['%09', '%0a', '%0D', '%7f', '%00', '%20', '%41', '%7e', '%2d']));
    case 10:
      return uri.replace('public', rng.pick(['Public', 'PUBLIC', 'publi%63', 'pub\u0131ic', 'public\u0000']));
    default:
      return insert(rng.pick(['/', '//', '.', '..', '...', '~', ';', '@', ':']));
  }
}

interface UriInput {
  readonly uri: string;
  readonly defaultEffect: 'allow' | 'deny';
}

function generate(rng: Prng): UriInput {
  let uri = rng.pick(BASES);
  for (let m = rng.range(1, 4); m > 0; m--) uri = mutate(uri, rng);
  return { uri, defaultEffect: rng.chance(0.5) ? 'allow' : 'deny' };
}

function check(input: UriInput, clock: Clock): Verdict {
  const { uri, defaultEffect } = input;
  const policy = POLICIES[defaultEffect];
  const canonical = clock.time(() => canonicalize(uri));
  if (canonical !== undefined) {
    const again = clock.time(() => canonicalize(canonical));
    if (again !== canonical)
      return `canonical-form-not-a-fixed-point: ${shown(canonical, 200)} canonicalizes to ${again === undefined ? 'a refusal' : shown(again, 200)}`;
    const requirement = policy.resources.lookup(canonical);
    const allowed =
      requirement === undefined
        ? defaultEffect === 'allow'
        : requirement.scopes.every((scope) => READER.scopes.has(scope));
    if (allowed) {
      for (const spelling of [uri, canonical]) {
        const landed = landsWell(spelling, defaultEffect);
        if (landed !== undefined)
          return `resolves-outside-the-matched-pattern: allowed as ${shown(canonical, 200)} (${requirement?.rule ?? `default: ${defaultEffect}`}), but new URL(${shown(spelling, 200)}) is ${landed}`;
      }
    }
  }
  const message: RpcMessage = { kind: 'request', id: 1, method: 'resources/read', params: { uri } };
  const decision = clock.time(() => decide(policy, message, READER, false));
  if (decision.effect === 'allow') {
    const landed = landsWell(uri, defaultEffect);
    if (landed !== undefined)
      return `decide-allows-a-uri-that-resolves-outside: rule ${decision.rule}, new URL is ${landed}`;
  }
  return undefined;
}

export const uriTarget: Target<UriInput> = {
  name: 'resource-uri',
  weight: 25,
  generate,
  check,
  describe: (input) => `${shown(input.uri)} default=${input.defaultEffect}`,
};
