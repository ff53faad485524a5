// Evaluates Kubernetes NetworkPolicy semantics over rendered manifests, so the deploy tests can
// ask "may this pod open this port on that one?" instead of pattern-matching YAML. Covers what
// deploy/ uses: podSelector / namespaceSelector (matchLabels, matchExpressions In/NotIn/Exists/
// DoesNotExist), peers without `to`/`from` (anyone), ipBlock (anything outside the cluster),
// numeric ports with protocol.
import type { K8sObject } from './deploy-kustomize';

/** One end of a connection. A pod in the cluster, or an address outside it. */
export type Endpoint =
  | { namespace: string; namespaceLabels?: Record<string, string>; labels: Record<string, string> }
  | { external: true };

interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: { key: string; operator: string; values?: string[] }[];
}

interface Peer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: { cidr: string };
}

interface Rule {
  ports?: { protocol?: string; port?: number | string }[];
  from?: Peer[];
  to?: Peer[];
}

interface PolicySpec {
  podSelector: LabelSelector;
  policyTypes?: ('Ingress' | 'Egress')[];
  ingress?: Rule[];
  egress?: Rule[];
}

/** Whether labels satisfy a selector; an empty selector selects everything. */
export function selects(selector: LabelSelector, labels: Record<string, string>): boolean {
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const e of selector.matchExpressions ?? []) {
    const has = e.key in labels;
    const value = labels[e.key];
    const ok =
      e.operator === 'In'
        ? has && (e.values ?? []).includes(value!)
        : e.operator === 'NotIn'
          ? !has || !(e.values ?? []).includes(value!)
          : e.operator === 'Exists'
            ? has
            : e.operator === 'DoesNotExist'
              ? !has
              : (() => {
                  throw new Error(`unknown selector operator ${e.operator}`);
                })();
    if (!ok) return false;
  }
  return true;
}

const namespaceLabelsOf = (e: Extract<Endpoint, { namespace: string }>) => ({
  'kubernetes.io/metadata.name': e.namespace,
  ...e.namespaceLabels,
});

function peerMatches(peer: Peer, policyNamespace: string, other: Endpoint): boolean {
  if (peer.ipBlock) return 'external' in other;
  if ('external' in other) return false;
  if (peer.namespaceSelector) {
    if (!selects(peer.namespaceSelector, namespaceLabelsOf(other))) return false;
    return peer.podSelector ? selects(peer.podSelector, other.labels) : true;
  }
  // A podSelector alone means pods of the policy's own namespace.
  return other.namespace === policyNamespace && selects(peer.podSelector ?? {}, other.labels);
}

function ruleAllows(
  rule: Rule,
  peers: Peer[] | undefined,
  policyNamespace: string,
  other: Endpoint,
  port: number,
  protocol: string,
): boolean {
  const portOk =
    !rule.ports ||
    rule.ports.length === 0 ||
    rule.ports.some(
      (p) => (p.protocol ?? 'TCP') === protocol && (p.port === undefined || p.port === port),
    );
  const peerOk =
    !peers || peers.length === 0 || peers.some((p) => peerMatches(p, policyNamespace, other));
  return portOk && peerOk;
}

function policies(objects: K8sObject[]): { namespace: string; spec: PolicySpec }[] {
  return objects
    .filter((o) => o.kind === 'NetworkPolicy')
    .map((o) => ({ namespace: o.metadata.namespace ?? 'default', spec: o.spec as PolicySpec }));
}

const typesOf = (spec: PolicySpec) =>
  spec.policyTypes ?? (spec.egress ? ['Ingress', 'Egress'] : ['Ingress']);

/** Whether the pod `self` may send to `other` (egress side only). */
function egressAllowed(
  objects: K8sObject[],
  self: Endpoint,
  other: Endpoint,
  port: number,
  protocol: string,
) {
  if ('external' in self) return true;
  const selecting = policies(objects).filter(
    (p) =>
      p.namespace === self.namespace &&
      typesOf(p.spec).includes('Egress') &&
      selects(p.spec.podSelector, self.labels),
  );
  if (selecting.length === 0) return true;
  return selecting.some((p) =>
    (p.spec.egress ?? []).some((r) => ruleAllows(r, r.to, p.namespace, other, port, protocol)),
  );
}

/** Whether the pod `self` may receive from `other` (ingress side only). */
function ingressAllowed(
  objects: K8sObject[],
  self: Endpoint,
  other: Endpoint,
  port: number,
  protocol: string,
) {
  if ('external' in self) return true;
  const selecting = policies(objects).filter(
    (p) =>
      p.namespace === self.namespace &&
      typesOf(p.spec).includes('Ingress') &&
      selects(p.spec.podSelector, self.labels),
  );
  if (selecting.length === 0) return true;
  return selecting.some((p) =>
    (p.spec.ingress ?? []).some((r) => ruleAllows(r, r.from, p.namespace, other, port, protocol)),
  );
}

/** Whether a connection from `source` to `destination` on `port` passes both ends' policies. */
export function connectionAllowed(
  objects: K8sObject[],
  source: Endpoint,
  destination: Endpoint,
  port: number,
  protocol = 'TCP',
): boolean {
  return (
    egressAllowed(objects, source, destination, port, protocol) &&
    ingressAllowed(objects, destination, source, port, protocol)
  );
}
