/**
 * The Helm chart (`helm/portcullis`): `helm lint --strict` and `helm template` for the default
 * values and each example value set; every rendered manifest validated against the Kubernetes API
 * schemas (kubernetes-models: types, required fields, enums, patterns) and — through the TypeScript
 * interfaces of the same models — for unknown fields; the Deployment's security context, probes
 * and shutdown timing; the rendered policy accepted by `portcullis check`; the dashboard and alert
 * rules embedded as they are; and the settings that cannot be correct with several replicas
 * refused at render time.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Certificate } from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import {
  PrometheusRule,
  ServiceMonitor,
} from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ConfigMap, Service, ServiceAccount } from 'kubernetes-models/v1';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { ensureHelm, helm, helmError } from '../support/helm.js';

const ROOT = join(import.meta.dirname, '../..');
const CHART = join(ROOT, 'helm/portcullis');
const CLI = join(ROOT, 'dist/cli/main.js');
const API_VERSIONS = ['--api-versions', 'monitoring.coreos.com/v1', '--api-versions', 'cert-manager.io/v1'];
const KUBE = ['--kube-version', '1.31.0'];

/** Value sets: the defaults and each example the chart ships. */
const VALUE_SETS: Record<string, string[]> = {
  default: [],
  ...Object.fromEntries(
    readdirSync(join(CHART, 'examples'))
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => [f.replace(/\.yaml$/, ''), ['-f', join(CHART, 'examples', f)]]),
  ),
};

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

/** apiVersion/kind → the model that validates it, and its TypeScript interface. */
const MODELS: Record<
  string,
  { model: new (data: never) => { validate(): void }; type: string; from: string }
> = {
  'v1/ServiceAccount': {
    model: ServiceAccount,
    type: 'IServiceAccount',
    from: 'kubernetes-models/v1/ServiceAccount',
  },
  'v1/ConfigMap': { model: ConfigMap, type: 'IConfigMap', from: 'kubernetes-models/v1/ConfigMap' },
  'v1/Service': { model: Service, type: 'IService', from: 'kubernetes-models/v1/Service' },
  'apps/v1/Deployment': {
    model: Deployment,
    type: 'IDeployment',
    from: 'kubernetes-models/apps/v1/Deployment',
  },
  'autoscaling/v2/HorizontalPodAutoscaler': {
    model: HorizontalPodAutoscaler,
    type: 'IHorizontalPodAutoscaler',
    from: 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler',
  },
  'policy/v1/PodDisruptionBudget': {
    model: PodDisruptionBudget,
    type: 'IPodDisruptionBudget',
    from: 'kubernetes-models/policy/v1/PodDisruptionBudget',
  },
  'networking.k8s.io/v1/NetworkPolicy': {
    model: NetworkPolicy,
    type: 'INetworkPolicy',
    from: 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy',
  },
  'monitoring.coreos.com/v1/ServiceMonitor': {
    model: ServiceMonitor,
    type: 'IServiceMonitor',
    from: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor',
  },
  'monitoring.coreos.com/v1/PrometheusRule': {
    model: PrometheusRule,
    type: 'IPrometheusRule',
    from: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule',
  },
  'cert-manager.io/v1/Certificate': {
    model: Certificate,
    type: 'ICertificate',
    from: '@kubernetes-models/cert-manager/cert-manager.io/v1/Certificate',
  },
};

function render(args: readonly string[]): Manifest[] {
  const text = helm(['template', 'rel', CHART, '--namespace', 'mcp', ...KUBE, ...API_VERSIONS, ...args]);
  const docs = parseAllDocuments(text);
  for (const doc of docs) expect(doc.errors, 'rendered YAML parses').toEqual([]);
  return docs.map((d) => d.toJS() as Manifest | null).filter((m): m is Manifest => m !== null);
}

const rendered = new Map<string, Manifest[]>();
let scratch: string;

beforeAll(() => {
  ensureHelm();
  if (!readdirSync(join(ROOT, 'dist/cli')).includes('main.js'))
    execFileSync('npm', ['run', 'build'], { cwd: ROOT });
  scratch = mkdtempSync(join(ROOT, '.tmp/helm-test-'));
  for (const [name, args] of Object.entries(VALUE_SETS)) rendered.set(name, render(args));
}, 300_000);
afterAll(() => {
  if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
});

const of = (set: string, kind: string): Manifest[] =>
  (rendered.get(set) ?? []).filter((m) => m.kind === kind);
const one = (set: string, kind: string): Manifest => {
  const found = of(set, kind);
  expect(found, `${set}: one ${kind}`).toHaveLength(1);
  return found[0] as Manifest;
};

describe.each(Object.keys(VALUE_SETS))('value set %s', (set) => {
  it('passes helm lint --strict', () => {
    expect(helm(['lint', CHART, '--strict', ...KUBE, ...(VALUE_SETS[set] ?? [])])).toContain(
      '0 chart(s) failed',
    );
  });

  it('renders manifests the Kubernetes API schemas accept', () => {
    const manifests = rendered.get(set) ?? [];
    expect(manifests.length).toBeGreaterThanOrEqual(4);
    const problems: string[] = [];
    for (const manifest of manifests) {
      const entry = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
      if (entry === undefined) {
        problems.push(`no schema for ${manifest.apiVersion}/${manifest.kind}`);
        continue;
      }
      try {
        new entry.model(manifest as never).validate();
      } catch (err) {
        problems.push(`${manifest.kind} ${manifest.metadata.name}: ${(err as Error).message}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('has no field the API does not know (checked against the typed models)', () => {
    // kubernetes-models' validate() allows unknown fields; TypeScript's excess-property check does not.
    expect(unknownFields(rendered.get(set) ?? [], set)).toBe('');
  });

  it('runs the gateway hardened: non-root, read-only root, no privilege escalation, no capabilities', () => {
    const pod = one(set, 'Deployment').spec?.template as {
      spec: {
        securityContext: Record<string, unknown>;
        automountServiceAccountToken: boolean;
        containers: {
          securityContext: Record<string, unknown> & { capabilities: { drop: string[] } };
          image: string;
        }[];
      };
    };
    expect(pod.spec.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 10001,
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect(pod.spec.automountServiceAccountToken).toBe(false);
    const [container] = pod.spec.containers;
    expect(container?.securityContext).toMatchObject({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
    });
    expect(container?.securityContext.capabilities.drop).toEqual(['ALL']);
    expect((pod.spec as Record<string, unknown>).shareProcessNamespace).toBe(
      set === 'values-stdio' ? true : undefined,
    );
    if (set === 'values-stdio') {
      // Starting stdio servers as another user: root with exactly the three capabilities that
      // needs (setuid, setgid, chown of their HOME); the children run with none.
      expect(container?.securityContext).toMatchObject({ runAsUser: 0, runAsNonRoot: false });
      expect(container?.securityContext.capabilities).toEqual({
        drop: ['ALL'],
        add: ['SETUID', 'SETGID', 'CHOWN'],
      });
    } else {
      expect(container?.securityContext).toMatchObject({ runAsNonRoot: true });
      expect(container?.securityContext.capabilities).toEqual({ drop: ['ALL'] });
    }
  });

  it('probes the admin port, pauses before the drain and waits for it', () => {
    const deployment = one(set, 'Deployment');
    const pod = templateOf(deployment).spec as {
      terminationGracePeriodSeconds: number;
      containers: {
        ports: { name: string; containerPort: number }[];
        livenessProbe: { httpGet: { path: string; port: string } };
        readinessProbe: { httpGet: { path: string; port: string } };
        lifecycle: { preStop: { sleep: { seconds: number } } };
      }[];
    };
    const container = pod.containers[0];
    const policy = policyOf(set);
    const admin = container?.ports.find((p) => p.name === 'admin');
    expect(admin?.containerPort).toBe(policy.admin.port);
    expect(container?.ports.find((p) => p.name === 'gateway')?.containerPort).toBe(policy.listen.port);
    expect(container?.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'admin' });
    expect(container?.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'admin' });
    const pause = container?.lifecycle.preStop.sleep.seconds ?? 0;
    expect(pause).toBeGreaterThan(0);
    const drainSec = (policy.limits?.drainTimeoutMs ?? 30_000) / 1000;
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(pause + drainSec);
  });

  it('renders a policy `portcullis check` accepts', () => {
    const file = join(scratch, `${set}-policy.yaml`);
    writeFileSync(file, policyMap(set).data?.['portcullis.yaml'] ?? '');
    // The secrets the policy names as ${VAR} come from the pod's environment.
    const env: NodeJS.ProcessEnv = {
      PATH: process.env.PATH ?? '',
      REDIS_URL: 'redis://redis:6379',
      AUDIT_CHAIN_KEY: 'a-chain-key-of-sufficient-length',
      FILES_UPSTREAM_TOKEN: 'token',
      PORTCULLIS_SESSION_KEY_0: Buffer.alloc(32, 7).toString('base64'),
    };
    const out = execFileSync(process.execPath, [CLI, 'check', '--config', file], { env, encoding: 'utf8' });
    expect(out).toMatch(/route/i);
  });
});

interface PodTemplate {
  metadata: { annotations?: Record<string, string> };
  spec: Record<string, unknown> & { containers: unknown[] };
}

/** A Deployment's pod template; every rendered Deployment has one. */
function templateOf(deployment: Manifest | undefined): PodTemplate {
  const template = deployment?.spec?.template;
  if (template === undefined) throw new Error('no Deployment with a pod template');
  return template as PodTemplate;
}

/** tsc's complaints about the manifests as typed model objects: '' when every field is known. */
function unknownFields(manifests: readonly Manifest[], name: string): string {
  const dir = join(scratch, name);
  mkdirSync(dir, { recursive: true });
  const imports = new Set<string>();
  const lines = manifests.map((manifest, i) => {
    const entry = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
    if (entry === undefined) throw new Error(`no model for ${manifest.kind}`);
    imports.add(`import type { ${entry.type} } from '${entry.from}';`);
    return `export const m${i}: ${entry.type} = ${JSON.stringify(manifest)};`;
  });
  writeFileSync(join(dir, 'manifests.ts'), [...imports, ...lines].join('\n'));
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        skipLibCheck: true,
        types: [],
      },
      files: ['manifests.ts'],
    }),
  );
  try {
    execFileSync(join(ROOT, 'node_modules/.bin/tsc'), ['-p', dir, '--pretty', 'false'], { encoding: 'utf8' });
    return '';
  } catch (err) {
    return String((err as { stdout?: unknown }).stdout);
  }
}

describe('the schema checks themselves', () => {
  it('catch an unknown field and a wrong type', () => {
    const typo = render(['--set', 'securityContext.readOnlyRootFilesystm=true']);
    expect(unknownFields(typo, 'typo')).toContain('readOnlyRootFilesystm');
    const wrong = render([]).find((m) => m.kind === 'Deployment') as Manifest;
    const containers = templateOf(wrong).spec.containers as { ports: { containerPort: unknown }[] }[];
    const container = (containers[0]?.ports[1] ?? {}) as { containerPort: unknown };
    container.containerPort = 'admin';
    expect(() => new Deployment(wrong as never).validate()).toThrow(/containerPort/);
  });
});

/** The ConfigMap holding the policy file (not the dashboard's). */
function policyMap(set: string): Manifest {
  const found = of(set, 'ConfigMap').filter((c) => c.data?.['portcullis.yaml'] !== undefined);
  expect(found, `${set}: one policy ConfigMap`).toHaveLength(1);
  return found[0] as Manifest;
}

/** The policy a value set renders, parsed. */
function policyOf(set: string): {
  listen: { port: number };
  admin: { port: number };
  limits?: { drainTimeoutMs?: number };
  tls?: Record<string, string>;
  sessions?: { keys?: string[] };
} {
  return parse(policyMap(set).data?.['portcullis.yaml'] ?? '') as ReturnType<typeof policyOf>;
}

describe('the production example', () => {
  const set = 'values-production';
  it('wires TLS from cert-manager, the client CA and the session keys into the policy and the pod', () => {
    const policy = policyOf(set);
    expect(policy.tls).toEqual({
      cert: '/etc/portcullis/tls/tls.crt',
      key: '/etc/portcullis/tls/tls.key',
      clientCA: '/etc/portcullis/client-ca/ca.crt',
      clientCertificate: 'optional',
    });
    expect(policy.sessions?.keys).toEqual(['${PORTCULLIS_SESSION_KEY_0}']);
    const certificate = one(set, 'Certificate');
    const pod = JSON.stringify(one(set, 'Deployment'));
    expect(pod).toContain(`"secretName":"${(certificate.spec as { secretName: string }).secretName}"`);
    expect(pod).toContain('"PORTCULLIS_SESSION_KEY_0"');
    expect(pod).toContain('"secretName":"agents-ca"');
  });

  it('autoscales, keeps one replica in a disruption, and is scraped and alerted on', () => {
    expect(one(set, 'HorizontalPodAutoscaler').spec).toMatchObject({ minReplicas: 3, maxReplicas: 10 });
    expect(one(set, 'Deployment').spec?.replicas).toBeUndefined();
    expect(one(set, 'PodDisruptionBudget').spec).toMatchObject({ maxUnavailable: 1 });
    expect(one(set, 'ServiceMonitor').spec).toMatchObject({
      endpoints: [{ port: 'admin', path: '/metrics' }],
    });
    const rules = parse(readFileSync(join(CHART, 'alerts/rules.yaml'), 'utf8')) as { groups: unknown[] };
    expect(one(set, 'PrometheusRule').spec).toEqual(rules);
    const dashboard = of(set, 'ConfigMap').find((c) => c.metadata.name.endsWith('-dashboard'));
    expect(dashboard?.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(JSON.parse(dashboard?.data?.['portcullis.json'] ?? '')).toEqual(
      JSON.parse(readFileSync(join(CHART, 'dashboards/portcullis.json'), 'utf8')),
    );
  });

  it('lets only the gateway reach the upstream, and the gateway only what it needs', () => {
    const policies = of(set, 'NetworkPolicy');
    const upstream = policies.find((p) => p.metadata.name.endsWith('-upstream-files'));
    expect(upstream?.spec).toEqual({
      podSelector: { matchLabels: { app: 'files-mcp' } },
      policyTypes: ['Ingress'],
      ingress: [
        {
          from: [
            {
              podSelector: {
                matchLabels: { 'app.kubernetes.io/name': 'portcullis', 'app.kubernetes.io/instance': 'rel' },
              },
            },
          ],
          ports: [{ port: 8080, protocol: 'TCP' }],
        },
      ],
    });
    const own = policies.find((p) => p.metadata.name === 'rel-portcullis');
    expect(own?.spec?.policyTypes).toEqual(['Ingress', 'Egress']);
  });
});

describe('rollout on a policy change', () => {
  it('adds a checksum of the policy to the pod only when asked, and it follows the policy', () => {
    const checksum = (extra: string[]) =>
      templateOf(
        render(['--set', 'rolloutOnConfigChange=true', ...extra]).find((m) => m.kind === 'Deployment'),
      ).metadata.annotations?.['checksum/config'];
    const plain = templateOf(render([]).find((m) => m.kind === 'Deployment')).metadata.annotations;
    expect(plain?.['checksum/config']).toBeUndefined();
    const a = checksum([]);
    const b = checksum(['--set', 'config.log.level=debug']);
    expect(a).toMatch(/^[0-9a-f]{64}$/);
    expect(b).toMatch(/^[0-9a-f]{64}$/);
    expect(a).not.toBe(b);
  });
});

describe('settings that cannot be correct with several replicas are refused', () => {
  const single = ['-f', join(CHART, 'examples/values-single.yaml')];
  const production = ['-f', join(CHART, 'examples/values-production.yaml')];
  const template = (args: string[]) =>
    helmError(['template', 'rel', CHART, ...KUBE, ...API_VERSIONS, ...args]);

  it('rate limits without Redis on 3 replicas, or an autoscaler that may reach them', () => {
    expect(template(single)).toBeUndefined();
    for (const more of [
      ['--set', 'replicaCount=3', '--set', 'sessionKeys.existingSecret=keys'],
      [
        '--set',
        'autoscaling.enabled=true',
        '--set',
        'autoscaling.maxReplicas=3',
        '--set',
        'sessionKeys.existingSecret=keys',
      ],
    ]) {
      const error = template([...single, ...more]);
      expect(error).toContain('rateLimits but config.redis is not set');
      expect(error).toContain('[/mcp]');
    }
  });

  it('stdio routes on several replicas without session affinity, and a separate user a route does not use', () => {
    const stdio = ['-f', join(CHART, 'examples/values-stdio.yaml')];
    expect(template(stdio)).toBeUndefined();
    const more = ['--set', 'replicaCount=2', '--set', 'sessionKeys.existingSecret=keys'];
    expect(template([...stdio, ...more])).toContain(
      'config.routes [/files/mcp /everything/mcp] run stdio servers',
    );
    expect(template([...stdio, ...more, '--set', 'stdio.sessionAffinity=true'])).toBeUndefined();
    const withoutUser = JSON.stringify([
      {
        route: '/files/mcp',
        resource: 'https://mcp.example.com/files/mcp',
        upstream: { command: ['node', 'server.js'] },
        authentication: { methods: ['jwt'] },
      },
    ]);
    expect(template([...stdio, '--set-json', `config.routes=${withoutUser}`])).toContain(
      'config.routes [/files/mcp] run their stdio server without upstream.user',
    );
    // A federated route with a stdio server is a stdio route too, and its servers need users.
    const federated = JSON.stringify([
      {
        route: '/mcp',
        resource: 'https://mcp.example.com/mcp',
        servers: {
          files: { upstream: 'http://files.tools.svc:8080/mcp' },
          git: { upstream: { command: ['node', 'git.js'] } },
        },
        authentication: { methods: ['jwt'] },
      },
    ]);
    expect(template([...stdio, '--set-json', `config.routes=${federated}`])).toContain(
      'config.routes [/mcp] run their stdio server without upstream.user',
    );
    expect(
      template([
        ...stdio,
        ...more,
        '--set',
        'stdio.separateUser=false',
        '--set-json',
        `config.routes=${federated}`,
      ]),
    ).toContain('config.routes [/mcp] run stdio servers');
  });

  it('several replicas without session keys', () => {
    expect(template(production)).toBeUndefined();
    const error = template([...production, '--set', 'sessionKeys.existingSecret=']);
    expect(error).toContain('no session keys');
  });

  it('and the values schema refuses what no chart setting means', () => {
    expect(template(['--set', 'replicaCount=0'])).toContain('replicaCount');
    expect(template(['--set', 'unknownSetting=1'])).toContain('unknownSetting');
    expect(template(['--set', 'tls.enabled=true'])).toContain('tls.existingSecret');
  });
});

describe('exposure', () => {
  it('never exposes the admin port with the gateway: it has its own ClusterIP Service', () => {
    const services = render(['--set', 'service.type=LoadBalancer']).filter((m) => m.kind === 'Service');
    const gateway = services.find((s) => s.metadata.name === 'rel-portcullis');
    const admin = services.find((s) => s.metadata.name === 'rel-portcullis-admin');
    expect(gateway?.spec).toMatchObject({ type: 'LoadBalancer', ports: [{ name: 'gateway' }] });
    expect(gateway?.spec?.ports).toHaveLength(1);
    expect(admin?.spec).toMatchObject({ type: 'ClusterIP', ports: [{ name: 'admin', port: 9090 }] });
    const monitor = one('values-production', 'ServiceMonitor').spec as { selector: { matchLabels: object } };
    expect(monitor.selector.matchLabels).toMatchObject({ 'app.kubernetes.io/component': 'admin' });
  });

  it('refuses clusters without the native preStop sleep, and a zero-second pause', () => {
    expect(helmError(['template', 'rel', CHART, '--kube-version', '1.29.9'])).toMatch(
      /kubeVersion|compatible/i,
    );
    expect(helmError(['template', 'rel', CHART, ...KUBE, '--set', 'preStopSleepSeconds=0'])).toContain(
      'preStopSleepSeconds',
    );
  });
});

describe('identity keys for upstreamIdentity', () => {
  const values = [
    '--set',
    'identityKeys.existingSecret=portcullis-identity',
    '--set',
    'identityKeys.signingKeys={current,previous}',
    '--set',
    'config.gatewayIdentity.issuer=https://portcullis.example.com',
  ];

  it('mounts the Secret readable by the gateway only and points gatewayIdentity.signingKeys at its keys, first signing', () => {
    const manifests = render(values);
    const map = manifests.find((m) => m.kind === 'ConfigMap' && m.data?.['portcullis.yaml'] !== undefined);
    const policy = parse(map?.data?.['portcullis.yaml'] ?? '') as {
      gatewayIdentity?: Record<string, unknown>;
    };
    expect(policy.gatewayIdentity).toEqual({
      issuer: 'https://portcullis.example.com',
      signingKeys: ['/etc/portcullis/identity/current', '/etc/portcullis/identity/previous'],
    });
    const pod = templateOf(manifests.find((m) => m.kind === 'Deployment')).spec as {
      volumes: { name: string; secret?: { secretName: string; defaultMode?: number } }[];
      containers: { volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[] }[];
    };
    expect(pod.volumes.find((v) => v.name === 'identity-keys')?.secret).toEqual({
      secretName: 'portcullis-identity',
      defaultMode: 0o440,
    });
    expect(pod.containers[0]?.volumeMounts).toContainEqual({
      name: 'identity-keys',
      mountPath: '/etc/portcullis/identity',
      readOnly: true,
    });
    expect(unknownFields(manifests, 'identity-keys')).toBe('');
    // The rendered policy is one the gateway accepts once the Secret's keys are where it says.
    const dir = join(scratch, 'identity-keys');
    mkdirSync(dir, { recursive: true });
    for (const name of ['current', 'previous'])
      writeFileSync(
        join(dir, name),
        generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({
          type: 'pkcs8',
          format: 'pem',
        }),
      );
    const file = join(dir, 'policy.yaml');
    writeFileSync(file, (map?.data?.['portcullis.yaml'] ?? '').replaceAll('/etc/portcullis/identity', dir));
    const out = execFileSync(process.execPath, [CLI, 'check', '--config', file], { encoding: 'utf8' });
    expect(out).toMatch(/valid/);
  });

  it('refuses signing keys without the Secret or without the issuer', () => {
    const template = (args: string[]) =>
      helmError(['template', 'rel', CHART, ...KUBE, ...API_VERSIONS, ...args]);
    expect(template(['--set', 'identityKeys.signingKeys={current}'])).toMatch(/set the Secret/);
    expect(
      template(['--set', 'identityKeys.existingSecret=s', '--set', 'identityKeys.signingKeys={current}']),
    ).toMatch(/config.gatewayIdentity.issuer/);
  });
});
