// deploy/k8s: renders every overlay and checks the policies of the operations issue on the result
// (what kubectl apply would send), not on the source files. Rendering uses Kustomize when it is on
// PATH and the in-process renderer otherwise; where both exist they must agree.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { CONSUMERS, STREAMS } from '@aob/events';
import {
  canonical,
  findKustomize,
  parseYamlDocuments,
  renderInProcess,
  renderWithKustomize,
  type K8sObject,
} from './deploy-kustomize';
import { connectionAllowed, selects, type Endpoint } from './deploy-network-policy';

const root = path.resolve(__dirname, '../../../..');
const k8s = path.join(root, 'deploy/k8s');
const OVERLAYS = ['dev', 'prod'] as const;
const NAMESPACE = 'aob';

/** CONTRACT.md section 1. */
const APP_PORTS = {
  gateway: 8080,
  'model-gateway': 8081,
  metering: 8082,
  'agent-executor': 8083,
  'dlq-replayer': 8084,
} as const;
type App = keyof typeof APP_PORTS;
const APPS = Object.keys(APP_PORTS) as App[];

const tool = findKustomize();
if (!tool) {
  console.warn(
    'deploy tests: no Kustomize v4+ on PATH (kubectl kustomize / kustomize): rendering with the ' +
      'in-process subset renderer only; the cross-check against Kustomize is skipped.',
  );
}

const renderCache = new Map<string, K8sObject[]>();
function render(overlay: string): K8sObject[] {
  let objects = renderCache.get(overlay);
  if (!objects) {
    const dir = path.join(k8s, 'overlays', overlay);
    objects = tool ? renderWithKustomize(tool, dir) : renderInProcess(dir);
    renderCache.set(overlay, objects);
  }
  return objects;
}

// ---- typed views of the parts the checks read ------------------------------------------

interface Container {
  name: string;
  image: string;
  command?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: {
    name: string;
    value?: string;
    valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean } };
  }[];
  envFrom?: { configMapRef?: { name: string }; secretRef?: { name: string } }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
  lifecycle?: { preStop?: { sleep?: { seconds: number } } };
  securityContext?: SecurityContext;
  volumeMounts?: { name: string; mountPath: string }[];
}

interface SecurityContext {
  runAsNonRoot?: boolean;
  runAsUser?: number;
  privileged?: boolean;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  capabilities?: { drop?: string[]; add?: string[] };
  seccompProfile?: { type: string };
}

interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  securityContext?: SecurityContext;
  terminationGracePeriodSeconds?: number;
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  volumes?: { name: string; emptyDir?: object; hostPath?: object; configMap?: { name: string } }[];
  topologySpreadConstraints?: {
    topologyKey: string;
    labelSelector: { matchLabels: Record<string, string> };
  }[];
  affinity?: { podAntiAffinity?: object };
}

interface Workload extends K8sObject {
  spec: {
    replicas?: number;
    selector?: { matchLabels: Record<string, string> };
    template: { metadata: { labels: Record<string, string> }; spec: PodSpec };
  };
}

const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'Job']);
const workloads = (objs: K8sObject[]) =>
  objs.filter((o) => WORKLOAD_KINDS.has(o.kind)) as Workload[];
const allContainers = (pod: PodSpec) => [...(pod.initContainers ?? []), ...pod.containers];

function find<T extends K8sObject = K8sObject>(objs: K8sObject[], kind: string, name: string): T {
  const found = objs.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind}/${name} in the rendering`);
  return found as T;
}

const deployment = (objs: K8sObject[], app: App) => find<Workload>(objs, 'Deployment', app);
const appContainer = (objs: K8sObject[], app: App) => {
  const c = deployment(objs, app).spec.template.spec.containers.find((x) => x.name === app);
  if (!c) throw new Error(`Deployment ${app} has no container named ${app}`);
  return c;
};

/** Kubernetes quantities to numbers (cores, bytes) so sizes compare. */
function quantity(q: string): number {
  const m = /^([0-9.]+)(m|Ki|Mi|Gi|Ti|k|M|G)?$/.exec(q);
  if (!m) throw new Error(`unparsable quantity ${q}`);
  const factor: Record<string, number> = {
    m: 1e-3,
    Ki: 2 ** 10,
    Mi: 2 ** 20,
    Gi: 2 ** 30,
    Ti: 2 ** 40,
    k: 1e3,
    M: 1e6,
    G: 1e9,
  };
  return Number(m[1]) * (m[2] ? factor[m[2]]! : 1);
}

function configValue(objs: K8sObject[], name: string): string | undefined {
  const cm = find<K8sObject & { data: Record<string, string> }>(objs, 'ConfigMap', 'aob-config');
  return cm.data[name];
}

/** Keys each Secret name provides: a plain Secret's data, or an ExternalSecret's target. */
function secretKeys(objs: K8sObject[]): Map<string, Set<string>> {
  const keys = new Map<string, Set<string>>();
  for (const o of objs) {
    if (o.kind === 'Secret') {
      const s = o as K8sObject & { data?: object; stringData?: object };
      keys.set(
        o.metadata.name,
        new Set([...Object.keys(s.data ?? {}), ...Object.keys(s.stringData ?? {})]),
      );
    } else if (o.kind === 'ExternalSecret') {
      const spec = (
        o as K8sObject & { spec: { target?: { name?: string }; data?: { secretKey: string }[] } }
      ).spec;
      keys.set(
        spec.target?.name ?? o.metadata.name,
        new Set((spec.data ?? []).map((d) => d.secretKey)),
      );
    }
  }
  return keys;
}

const podOf = (objs: K8sObject[], app: App): Endpoint => ({
  namespace: NAMESPACE,
  labels: deployment(objs, app).spec.template.metadata.labels,
});
const NATS_POD: Endpoint = {
  namespace: NAMESPACE,
  labels: {
    'app.kubernetes.io/name': 'nats',
    'app.kubernetes.io/component': 'nats',
    'app.kubernetes.io/instance': 'nats',
  },
};
const DRAGONFLY_POD: Endpoint = {
  namespace: NAMESPACE,
  labels: { 'app.kubernetes.io/name': 'dragonfly', 'app.kubernetes.io/instance': 'dragonfly' },
};
const inNamespace = (ns: string): Endpoint => ({ namespace: ns, labels: { app: 'anything' } });
const KUBE_DNS: Endpoint = { namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' } };
const OUTSIDE: Endpoint = { external: true };

// ---- the checks ----------------------------------------------------------------------------

describe('deploy/k8s renderers', () => {
  (tool ? it : it.skip)(
    'the in-process renderer agrees with Kustomize on the base and every overlay',
    () => {
      for (const dir of ['base', 'overlays/dev', 'overlays/prod']) {
        const ours = canonical(renderInProcess(path.join(k8s, dir)));
        const theirs = canonical(renderWithKustomize(tool!, path.join(k8s, dir)));
        expect({ dir, objects: ours }).toEqual({ dir, objects: theirs });
      }
    },
  );

  it('refuses Kustomize features outside its subset instead of ignoring them', () => {
    // Every kustomization in deploy/k8s must stay inside the subset, or the fallback would be wrong.
    for (const dir of ['base', 'overlays/dev', 'overlays/prod', '../k8s/external-secrets']) {
      expect(() => renderInProcess(path.join(k8s, dir))).not.toThrow();
    }
    expect(() => renderInProcess(path.join(root, 'deploy/monitoring'))).toThrow(
      /configMapGenerator/,
    );
  });
});

describe.each(OVERLAYS)('deploy/k8s/overlays/%s', (overlay) => {
  const objs = () => render(overlay);

  it('puts every namespaced object into the aob namespace, labelled for the restricted Pod Security Standard', () => {
    const ns = find(objs(), 'Namespace', NAMESPACE);
    for (const mode of ['enforce', 'audit', 'warn']) {
      expect(ns.metadata.labels?.[`pod-security.kubernetes.io/${mode}`]).toBe('restricted');
    }
    const stray = objs().filter(
      (o) => o.kind !== 'Namespace' && o.metadata.namespace !== NAMESPACE,
    );
    expect(stray.map((o) => `${o.kind}/${o.metadata.name}`)).toEqual([]);
  });

  it('runs every container restricted: non-root, read-only root, no escalation, no capabilities, RuntimeDefault seccomp', () => {
    const problems: string[] = [];
    for (const w of workloads(objs())) {
      const pod = w.spec.template.spec;
      if (pod.hostNetwork || pod.hostPID || pod.hostIPC)
        problems.push(`${w.metadata.name}: host namespaces`);
      if (pod.volumes?.some((v) => v.hostPath))
        problems.push(`${w.metadata.name}: hostPath volume`);
      for (const c of allContainers(pod)) {
        const where = `${w.kind}/${w.metadata.name}/${c.name}`;
        const sc = c.securityContext ?? {};
        const nonRoot = sc.runAsNonRoot ?? pod.securityContext?.runAsNonRoot;
        const uid = sc.runAsUser ?? pod.securityContext?.runAsUser;
        const seccomp = sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type;
        if (nonRoot !== true) problems.push(`${where}: runAsNonRoot is not true`);
        if (uid === undefined || uid === 0) problems.push(`${where}: no non-zero runAsUser`);
        if (sc.privileged) problems.push(`${where}: privileged`);
        if (sc.allowPrivilegeEscalation !== false)
          problems.push(`${where}: allowPrivilegeEscalation is not false`);
        if (sc.readOnlyRootFilesystem !== true)
          problems.push(`${where}: root filesystem is writable`);
        if (!sc.capabilities?.drop?.includes('ALL'))
          problems.push(`${where}: capabilities not dropped`);
        if (sc.capabilities?.add?.length) problems.push(`${where}: adds capabilities`);
        if (seccomp !== 'RuntimeDefault') problems.push(`${where}: seccomp ${seccomp ?? 'unset'}`);
        // A read-only root needs somewhere to write temporary files.
        const tmp = c.volumeMounts?.find((m) => m.mountPath === '/tmp');
        const tmpVolume = pod.volumes?.find((v) => v.name === tmp?.name);
        if (!tmpVolume?.emptyDir) problems.push(`${where}: /tmp is not an emptyDir`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('sets CPU and memory requests and limits on every container, requests within limits', () => {
    const problems: string[] = [];
    for (const w of workloads(objs())) {
      for (const c of allContainers(w.spec.template.spec)) {
        for (const r of ['cpu', 'memory']) {
          const request = c.resources?.requests?.[r];
          const limit = c.resources?.limits?.[r];
          if (!request || !limit)
            problems.push(`${w.metadata.name}/${c.name}: ${r} request or limit missing`);
          else if (quantity(request) > quantity(limit))
            problems.push(`${w.metadata.name}/${c.name}: ${r} request above limit`);
        }
      }
    }
    expect(problems).toEqual([]);
  });

  it.each(APPS)(
    'runs %s from its own image on its contract port, probed on /healthz and /readyz',
    (app) => {
      const c = appContainer(objs(), app);
      expect(c.image).toMatch(new RegExp(`(^|/)aob-${app}[:@]`));
      expect(c.command).toEqual(['node', `apps/${app}/dist/main.js`]);
      expect(c.ports).toEqual([
        expect.objectContaining({ name: 'http', containerPort: APP_PORTS[app] }),
      ]);
      expect(c.env?.find((e) => e.name === 'PORT')?.value).toBe(String(APP_PORTS[app]));
      expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'http' });
      expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'http' });
    },
  );

  it.each(APPS)(
    'gives %s a termination grace period that covers its drain (SHUTDOWN_GRACE_MS) and preStop pause',
    (app) => {
      const pod = deployment(objs(), app).spec.template.spec;
      const c = appContainer(objs(), app);
      const graceMs = Number(
        c.env?.find((e) => e.name === 'SHUTDOWN_GRACE_MS')?.value ??
          configValue(objs(), 'SHUTDOWN_GRACE_MS'),
      );
      expect(graceMs).toBeGreaterThan(0);
      const preStopMs = (c.lifecycle?.preStop?.sleep?.seconds ?? 0) * 1000;
      // 5 s of margin to close connections after the drain.
      expect((pod.terminationGracePeriodSeconds ?? 30) * 1000).toBeGreaterThanOrEqual(
        graceMs + preStopMs + 5_000,
      );
    },
  );

  it('runs the model gateway with a larger young generation, as npm start and the bench do', () => {
    const options = appContainer(objs(), 'model-gateway').env?.find(
      (e) => e.name === 'NODE_OPTIONS',
    )?.value;
    expect(options).toBe('--max-semi-space-size=64');
    // the memory limit holds the young generation (up to 3 × 64 MiB) and the old one
    expect(
      quantity(appContainer(objs(), 'model-gateway').resources!.limits!.memory!),
    ).toBeGreaterThanOrEqual(quantity('768Mi'));
    const start = readFileSync(path.join(root, 'scripts/start.mjs'), 'utf8');
    expect(start).toContain(`node: ['${options}']`);
  });

  it('gives the agent executor 35 s to stop: the default 25 s drain plus 10 s', () => {
    expect(configValue(objs(), 'SHUTDOWN_GRACE_MS')).toBe('25000');
    expect(
      deployment(objs(), 'agent-executor').spec.template.spec.terminationGracePeriodSeconds,
    ).toBe(35);
  });

  it('wires the environment of CONTRACT.md section 2 from the ConfigMap and Secrets that exist', () => {
    const secrets = secretKeys(objs());
    expect(configValue(objs(), 'NATS_URL')).toBe('nats://nats:4222');
    expect(configValue(objs(), 'MODEL_GATEWAY_URL')).toBe(
      `http://model-gateway:${APP_PORTS['model-gateway']}/v1`,
    );
    const needs: Record<App, string[]> = {
      gateway: ['DATABASE_URL', 'REDIS_URL'],
      'model-gateway': ['AOB_SERVICE_KEY'],
      'agent-executor': ['DATABASE_URL', 'REDIS_URL', 'AOB_SERVICE_KEY'],
      metering: ['DATABASE_URL', 'REDIS_URL'],
      'dlq-replayer': ['DATABASE_URL', 'REDIS_URL'],
    };
    for (const app of APPS) {
      const c = appContainer(objs(), app);
      expect(c.envFrom).toContainEqual({ configMapRef: { name: 'aob-config' } });
      const fromSecrets = new Map(
        (c.env ?? []).flatMap((e) =>
          e.valueFrom?.secretKeyRef ? [[e.name, e.valueFrom.secretKeyRef]] : [],
        ),
      );
      for (const name of needs[app])
        expect({ app, name, ref: fromSecrets.has(name) }).toEqual({ app, name, ref: true });
      for (const [name, ref] of fromSecrets) {
        if (ref.optional) continue;
        expect({ app, name, provided: secrets.get(ref.name)?.has(ref.key) ?? false }).toEqual({
          app,
          name,
          provided: true,
        });
      }
    }
    // The model gateway reads its catalog from the mounted ConfigMap.
    const mg = appContainer(objs(), 'model-gateway');
    const catalogPath = mg.env?.find((e) => e.name === 'MODEL_CATALOG')?.value ?? '';
    const mount = mg.volumeMounts?.find((m) => catalogPath.startsWith(`${m.mountPath}/`));
    const volume = deployment(objs(), 'model-gateway').spec.template.spec.volumes?.find(
      (v) => v.name === mount?.name,
    );
    const catalog = find<K8sObject & { data: Record<string, string> }>(
      objs(),
      'ConfigMap',
      volume?.configMap?.name ?? '?',
    );
    const [parsed] = parseYamlDocuments(
      catalog.data[path.basename(catalogPath)] ?? '',
      'model catalog',
    ) as [{ deployments: unknown[] }];
    expect(parsed.deployments.length).toBeGreaterThan(0);
  });

  it.each(APPS)(
    'exposes %s through a Service and a PodDisruptionBudget that select its pods',
    (app) => {
      const labels = deployment(objs(), app).spec.template.metadata.labels;
      const svc = find<
        K8sObject & {
          spec: { selector: Record<string, string>; ports: { port: number; targetPort: string }[] };
        }
      >(objs(), 'Service', app);
      expect(selects({ matchLabels: svc.spec.selector }, labels)).toBe(true);
      expect(svc.spec.ports).toEqual([
        expect.objectContaining({ port: APP_PORTS[app], targetPort: 'http' }),
      ]);
      const pdb = find<
        K8sObject & {
          spec: {
            selector: { matchLabels: Record<string, string> };
            minAvailable?: number;
            maxUnavailable?: number;
          };
        }
      >(objs(), 'PodDisruptionBudget', app);
      expect(selects(pdb.spec.selector, labels)).toBe(true);
      expect(
        [pdb.spec.minAvailable, pdb.spec.maxUnavailable].filter((v) => v !== undefined),
      ).toHaveLength(1);
    },
  );

  it('scales the gateway and the model gateway with an HPA that never lets a PDB block a drain', () => {
    const hpas = objs().filter((o) => o.kind === 'HorizontalPodAutoscaler') as (K8sObject & {
      spec: {
        scaleTargetRef: { kind: string; name: string };
        minReplicas: number;
        maxReplicas: number;
      };
    })[];
    expect(hpas.map((h) => h.spec.scaleTargetRef.name).sort()).toEqual([
      'gateway',
      'model-gateway',
    ]);
    for (const hpa of hpas) {
      expect(hpa.spec.scaleTargetRef.kind).toBe('Deployment');
      expect(hpa.spec.maxReplicas).toBeGreaterThanOrEqual(hpa.spec.minReplicas);
      // An autoscaled Deployment must not set replicas: every apply would fight the autoscaler.
      expect(deployment(objs(), hpa.spec.scaleTargetRef.name as App).spec.replicas).toBeUndefined();
      const pdb = find<K8sObject & { spec: { minAvailable?: number } }>(
        objs(),
        'PodDisruptionBudget',
        hpa.spec.scaleTargetRef.name,
      );
      if (pdb.spec.minAvailable !== undefined)
        expect(hpa.spec.minReplicas).toBeGreaterThan(pdb.spec.minAvailable);
    }
  });

  it('scales the workers with KEDA on their JetStream consumers, as the event catalog names them', () => {
    interface ScaledObject extends K8sObject {
      spec: {
        scaleTargetRef: { name: string };
        minReplicaCount: number;
        maxReplicaCount: number;
        triggers: { type: string; metadata: Record<string, string> }[];
      };
    }
    const scaled = objs().filter((o) => o.kind === 'ScaledObject') as ScaledObject[];
    expect(scaled.map((s) => s.spec.scaleTargetRef.name).sort()).toEqual([
      'agent-executor',
      'metering',
    ]);
    const expected = {
      'agent-executor': CONSUMERS.agentExecutorWorkers,
      metering: CONSUMERS.metering,
    };
    for (const s of scaled) {
      const consumer = expected[s.spec.scaleTargetRef.name as keyof typeof expected];
      expect(s.spec.triggers).toHaveLength(1);
      const [trigger] = s.spec.triggers;
      expect(trigger!.type).toBe('nats-jetstream');
      expect(trigger!.metadata).toMatchObject({
        stream: STREAMS[consumer.stream].name,
        consumer: consumer.durable,
        account: '$G',
        natsServerMonitoringEndpoint: `nats-headless.${NAMESPACE}.svc.cluster.local:8222`,
      });
      expect(trigger!.metadata.lagThreshold).toMatch(/^[1-9]\d*$/);
      expect(trigger!.metadata.activationLagThreshold).toMatch(/^\d+$/);
      expect(s.spec.minReplicaCount).toBe(1);
      // KEDA owns the replica count of its target.
      expect(deployment(objs(), s.spec.scaleTargetRef.name as App).spec.replicas).toBeUndefined();
    }
    const executor = find<ScaledObject>(objs(), 'ScaledObject', 'agent-executor');
    expect(executor.spec.maxReplicaCount).toBe(10);
    // shared/NOTES-nats.md: max_ack_pending must cover every replica's concurrent runs.
    const concurrency = Number(
      appContainer(objs(), 'agent-executor').env?.find((e) => e.name === 'EXECUTOR_CONCURRENCY')
        ?.value ?? 16,
    );
    expect(executor.spec.maxReplicaCount * concurrency).toBeLessThanOrEqual(
      CONSUMERS.agentExecutorWorkers.maxAckPending,
    );
  });

  it('denies all traffic by default', () => {
    const deny = objs().filter(
      (o) =>
        o.kind === 'NetworkPolicy' &&
        Object.keys((o.spec as { podSelector: object }).podSelector).length === 0 &&
        !(o.spec as { ingress?: unknown }).ingress &&
        !(o.spec as { egress?: unknown }).egress,
    );
    expect(
      deny.map((d) => (d.spec as { policyTypes: string[] }).policyTypes.sort()),
    ).toContainEqual(['Egress', 'Ingress']);
    const stranger = inNamespace('somewhere-else');
    for (const app of APPS) {
      expect(connectionAllowed(objs(), stranger, podOf(objs(), app), APP_PORTS[app])).toBe(false);
    }
    expect(connectionAllowed(objs(), stranger, NATS_POD, 4222)).toBe(false);
    expect(connectionAllowed(objs(), stranger, DRAGONFLY_POD, 6379)).toBe(false);
  });

  it('allows exactly the flows the apps need', () => {
    const o = objs();
    const pod = (app: App) => podOf(o, app);
    const allowed = (from: Endpoint, to: Endpoint, port: number, protocol = 'TCP') =>
      connectionAllowed(o, from, to, port, protocol);
    const dbClients: App[] = ['gateway', 'agent-executor', 'metering', 'dlq-replayer'];
    for (const app of APPS) {
      expect({ app, dns: allowed(pod(app), KUBE_DNS, 53, 'UDP') }).toEqual({ app, dns: true });
      expect({ app, nats: allowed(pod(app), NATS_POD, 4222) }).toEqual({ app, nats: true });
      expect({ app, postgres: allowed(pod(app), OUTSIDE, 5432) }).toEqual({
        app,
        postgres: dbClients.includes(app),
      });
      expect({ app, dragonfly: allowed(pod(app), DRAGONFLY_POD, 6379) }).toEqual({
        app,
        dragonfly: dbClients.includes(app),
      });
      expect({
        app,
        metrics: allowed(inNamespace('monitoring'), pod(app), APP_PORTS[app]),
      }).toEqual({ app, metrics: true });
      // Nothing else from outside: the ingress controller reaches the gateway only.
      expect({
        app,
        ingress: allowed(inNamespace('ingress-nginx'), pod(app), APP_PORTS[app]),
      }).toEqual({ app, ingress: app === 'gateway' });
    }
    const collector: Endpoint = {
      namespace: 'observability',
      namespaceLabels: { 'kubernetes.io/metadata.name': 'observability' },
      labels: { 'app.kubernetes.io/name': 'opentelemetry-collector' },
    };
    for (const app of APPS) {
      expect({ app, otlp: allowed(pod(app), collector, 4318) }).toEqual({ app, otlp: true });
      expect({ app, otherPort: allowed(pod(app), collector, 8888) }).toEqual({
        app,
        otherPort: false,
      });
    }
    expect(allowed(pod('gateway'), { ...collector, labels: { app: 'other' } }, 4318)).toBe(false);
    expect(allowed(pod('agent-executor'), pod('model-gateway'), 8081)).toBe(true);
    expect(allowed(pod('gateway'), pod('model-gateway'), 8081)).toBe(false);
    expect(allowed(pod('agent-executor'), pod('gateway'), 8080)).toBe(false);
    expect(allowed(pod('agent-executor'), OUTSIDE, 443)).toBe(false);
    expect(allowed(pod('model-gateway'), OUTSIDE, 443)).toBe(true);
    // KEDA reads consumer lag from the monitoring port; nothing else of KEDA's gets in.
    expect(allowed(inNamespace('keda'), NATS_POD, 8222)).toBe(true);
    expect(allowed(inNamespace('keda'), NATS_POD, 4222)).toBe(false);
    // NATS cluster routes between the servers.
    expect(allowed(NATS_POD, NATS_POD, 6222)).toBe(true);
    // The migration Job reaches PostgreSQL and NATS.
    const job = find<Workload>(o, 'Job', 'aob-migrate');
    const jobPod: Endpoint = { namespace: NAMESPACE, labels: job.spec.template.metadata.labels };
    expect(allowed(jobPod, OUTSIDE, 5432)).toBe(true);
    expect(allowed(jobPod, NATS_POD, 4222)).toBe(true);
  });

  it('migrates the database and provisions the streams in a Job before the apps need them', () => {
    const job = find<Workload>(objs(), 'Job', 'aob-migrate');
    const steps = allContainers(job.spec.template.spec).map((c) => c.command);
    expect(steps).toEqual([
      ['node', 'libs/persistence/dist/cli/migrate.js'],
      ['node', 'libs/events/dist/cli/provision.js'],
    ]);
    const gatewayImage = appContainer(objs(), 'gateway').image;
    for (const c of allContainers(job.spec.template.spec)) expect(c.image).toBe(gatewayImage);
    for (const cli of ['libs/persistence/src/cli/migrate.ts', 'libs/events/src/cli/provision.ts']) {
      expect(existsSync(path.join(root, cli))).toBe(true);
    }
  });

  it('pins every image to a tag or digest, never latest', () => {
    for (const w of workloads(objs())) {
      for (const c of allContainers(w.spec.template.spec)) {
        expect(c.image).toMatch(/(:[\w][\w.-]*|@sha256:[0-9a-f]{64})$/);
        expect(c.image).not.toMatch(/:latest$/);
      }
    }
  });
});

describe('deploy/k8s/overlays/prod specifics', () => {
  const objs = () => render('prod');

  it('pulls registry-qualified images', () => {
    for (const w of workloads(objs())) {
      for (const c of allContainers(w.spec.template.spec))
        expect(c.image).toMatch(/^[a-z0-9.-]+\.[a-z]+\//);
    }
  });

  it('exports sampled traces to the collector the network policies allow', () => {
    const cm = find<K8sObject & { data: Record<string, string> }>(
      objs(),
      'ConfigMap',
      'aob-config',
    );
    const endpoint = new URL(cm.data.OTEL_EXPORTER_OTLP_ENDPOINT ?? 'missing:');
    expect(endpoint.hostname).toMatch(/\.observability\.svc\.cluster\.local$/);
    expect(endpoint.port).toBe('4318');
    expect(cm.data.OTEL_EXPORTER_OTLP_PROTOCOL).toBe('http/protobuf');
    expect(cm.data.OTEL_TRACES_SAMPLER).toBe('parentbased_traceidratio');
    expect(Number(cm.data.OTEL_TRACES_SAMPLER_ARG)).toBeGreaterThan(0);
    expect(Number(cm.data.OTEL_TRACES_SAMPLER_ARG)).toBeLessThanOrEqual(1);
    // the merge kept the base's settings
    expect(cm.data.NATS_URL).toBe('nats://nats:4222');
    // dev has tracing off: no SDK is started without an endpoint
    const dev = find<K8sObject & { data: Record<string, string> }>(
      render('dev'),
      'ConfigMap',
      'aob-config',
    );
    expect(dev.data.OTEL_EXPORTER_OTLP_ENDPOINT).toBeUndefined();
  });

  it('keeps at least three HTTP replicas and two through voluntary disruptions', () => {
    for (const app of ['gateway', 'model-gateway'] as const) {
      const hpa = find<K8sObject & { spec: { minReplicas: number } }>(
        objs(),
        'HorizontalPodAutoscaler',
        app,
      );
      expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(3);
      const pdb = find<K8sObject & { spec: { minAvailable?: number } }>(
        objs(),
        'PodDisruptionBudget',
        app,
      );
      expect(pdb.spec.minAvailable).toBe(2);
    }
  });

  it('spreads the scalable apps over zones and nodes', () => {
    for (const app of ['gateway', 'model-gateway', 'agent-executor', 'metering'] as const) {
      const pod = deployment(objs(), app).spec.template.spec;
      expect(pod.topologySpreadConstraints?.map((t) => t.topologyKey).sort()).toEqual([
        'kubernetes.io/hostname',
        'topology.kubernetes.io/zone',
      ]);
      for (const t of pod.topologySpreadConstraints ?? []) {
        expect(
          selects(t.labelSelector, deployment(objs(), app).spec.template.metadata.labels),
        ).toBe(true);
      }
      expect(pod.affinity?.podAntiAffinity).toBeDefined();
    }
  });

  it('sizes every app at least as large as dev', () => {
    for (const app of APPS) {
      for (const kind of ['requests', 'limits'] as const) {
        for (const r of ['cpu', 'memory']) {
          const prod = quantity(appContainer(render('prod'), app).resources?.[kind]?.[r] ?? '0');
          const dev = quantity(appContainer(render('dev'), app).resources?.[kind]?.[r] ?? '0');
          expect({ app, kind, r, bigger: prod >= dev }).toEqual({ app, kind, r, bigger: true });
        }
      }
    }
  });

  it('takes its secrets from External Secrets, including the Dragonfly password the chart reads', () => {
    expect(objs().filter((o) => o.kind === 'Secret')).toEqual([]);
    const names = objs()
      .filter((o) => o.kind === 'ExternalSecret')
      .map((o) => (o.spec as { target: { name: string } }).target.name)
      .sort();
    expect(names).toEqual(['aob-provider-keys', 'aob-secrets', 'dragonfly-auth']);
    const [dragonflyValues] = parseYamlDocuments(
      readFileSync(path.join(root, 'deploy/helm-values/dragonfly.yaml'), 'utf8'),
      'dragonfly.yaml',
    ) as [
      { passwordFromSecret: { enable: boolean; existingSecret: { name: string; key: string } } },
    ];
    expect(dragonflyValues.passwordFromSecret.enable).toBe(true);
    expect(
      secretKeys(objs()).get(dragonflyValues.passwordFromSecret.existingSecret.name),
    ).toContain(dragonflyValues.passwordFromSecret.existingSecret.key);
  });

  it('serves real model upstreams whose keys the model gateway receives', () => {
    const catalog = find<K8sObject & { data: Record<string, string> }>(
      objs(),
      'ConfigMap',
      'aob-model-catalog',
    );
    const [parsed] = parseYamlDocuments(catalog.data['catalog.yaml']!, 'catalog') as [
      { deployments: { provider: string; apiKeyEnv?: string }[] },
    ];
    const env = new Set(appContainer(objs(), 'model-gateway').env?.map((e) => e.name));
    for (const d of parsed.deployments) {
      expect(d.provider).not.toBe('local');
      if (d.apiKeyEnv) expect(env).toContain(d.apiKeyEnv);
    }
  });
});

describe('deploy/helm-values', () => {
  const load = (file: string) =>
    parseYamlDocuments(
      readFileSync(path.join(root, 'deploy/helm-values', file), 'utf8'),
      file,
    )[0] as Record<string, any>;

  it('runs NATS with a JetStream file store that fsyncs every write, and monitoring on for KEDA', () => {
    const nats = load('nats.yaml');
    expect(nats.config.jetstream.enabled).toBe(true);
    expect(nats.config.jetstream.fileStore.enabled).toBe(true);
    expect(nats.config.jetstream.fileStore.pvc.enabled).toBe(true);
    // shared/NOTES-nats.md (Jepsen 2025-12): acknowledged writes are lost without it.
    expect(nats.config.jetstream.merge.sync_interval).toBe('always');
    expect(nats.config.monitor).toEqual({ enabled: true, port: 8222 });
    expect(nats.promExporter.enabled).toBe(true);
  });

  it('keeps the chart pods within the restricted Pod Security Standard of the namespace', () => {
    const nats = load('nats.yaml');
    const dragonfly = load('dragonfly.yaml');
    const containerContexts = [
      nats.container.merge.securityContext,
      nats.reloader.merge.securityContext,
      nats.promExporter.merge.securityContext,
      nats.natsBox.container.merge.securityContext,
      dragonfly.securityContext,
    ];
    for (const sc of containerContexts) {
      expect(sc).toMatchObject({
        runAsNonRoot: true,
        allowPrivilegeEscalation: false,
        capabilities: { drop: ['ALL'] },
        seccompProfile: { type: 'RuntimeDefault' },
      });
    }
    for (const pod of [
      nats.podTemplate.merge.spec.securityContext,
      nats.natsBox.podTemplate.merge.spec.securityContext,
      dragonfly.podSecurityContext,
    ]) {
      expect(pod).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    }
  });
});
