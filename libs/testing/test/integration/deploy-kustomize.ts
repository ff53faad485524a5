// Renders the Kustomize trees under deploy/ for the deploy-*.test.ts suites, two ways:
// - with the real tool (`kubectl kustomize`, or a `kustomize` binary), when one of Kustomize v4+
//   is on PATH (GitHub's runners and these machines have kubectl; Debian's own kubectl is 1.20,
//   whose Kustomize v2 cannot read this tree);
// - in-process, for the subset of Kustomize that deploy/ uses (resources, namespace, images,
//   strategic-merge `patches` by path). Anything outside that subset throws, so the subset can
//   never be left silently; deploy-k8s.test.ts checks that both renderings agree wherever the
//   real tool runs.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

/** One Kubernetes object as parsed YAML. */
export type K8sObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
};

/** Parses every non-empty document of a multi-document YAML text, failing on YAML errors. */
export function parseYamlDocuments(text: string, source: string): unknown[] {
  return parseAllDocuments(text).flatMap((doc) => {
    if (doc.errors.length > 0) {
      throw new Error(`${source}: ${doc.errors.map((e) => e.message).join('; ')}`);
    }
    const value: unknown = doc.toJS();
    return value === null || value === undefined ? [] : [value];
  });
}

function asObjects(docs: unknown[], source: string): K8sObject[] {
  return docs.map((d, i) => {
    const o = d as Partial<K8sObject>;
    if (typeof o?.apiVersion !== 'string' || typeof o.kind !== 'string' || !o.metadata?.name) {
      throw new Error(
        `${source}: document ${i + 1} is not a Kubernetes object (apiVersion, kind, metadata.name)`,
      );
    }
    return o as K8sObject;
  });
}

interface KustomizeTool {
  command: string;
  args: string[];
  version: string;
}

let toolCache: KustomizeTool | null | undefined;

function runs(command: string, args: string[]): string | undefined {
  const r = spawnSync(command, args, { encoding: 'utf8', timeout: 30_000 });
  return r.status === 0 ? r.stdout : undefined;
}

/** Kustomize v4 or later on PATH, as `kubectl kustomize` or `kustomize build`; null when none. */
export function findKustomize(): KustomizeTool | null {
  if (toolCache !== undefined) return toolCache;
  toolCache = null;
  const kubectl = runs('kubectl', ['version', '--client', '-o', 'json']);
  if (kubectl) {
    const version = (JSON.parse(kubectl) as { kustomizeVersion?: string }).kustomizeVersion ?? '';
    if (/^v?([4-9]|\d{2,})\./.test(version)) {
      toolCache = {
        command: 'kubectl',
        args: ['kustomize'],
        version: `kubectl, Kustomize ${version}`,
      };
      return toolCache;
    }
  }
  const kustomize = runs('kustomize', ['version']);
  const match = kustomize?.match(/v(\d+)\.\d+\.\d+/);
  if (match && Number(match[1]) >= 4) {
    toolCache = { command: 'kustomize', args: ['build'], version: `kustomize ${match[0]}` };
  }
  return toolCache;
}

/** Renders a kustomization directory with the real tool. */
export function renderWithKustomize(tool: KustomizeTool, dir: string): K8sObject[] {
  const r = spawnSync(tool.command, [...tool.args, dir], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) {
    throw new Error(
      `${tool.command} ${tool.args.join(' ')} ${dir} failed: ${r.stderr || r.error?.message}`,
    );
  }
  return asObjects(parseYamlDocuments(r.stdout, dir), dir);
}

// ---- in-process rendering of the subset deploy/ uses ------------------------------------

const SUPPORTED_FIELDS = new Set([
  'apiVersion',
  'kind',
  'namespace',
  'resources',
  'images',
  'patches',
]);

interface ImageRule {
  name: string;
  newName?: string;
  newTag?: string;
  digest?: string;
}

interface Kustomization {
  namespace?: string;
  resources?: string[];
  images?: ImageRule[];
  patches?: { path?: string }[];
}

/** Cluster-scoped kinds deploy/ may contain: the namespace transformer leaves them alone. */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'ClusterRole',
  'ClusterRoleBinding',
  'CustomResourceDefinition',
  'ClusterSecretStore',
  'PriorityClass',
  'StorageClass',
]);

/** Built-in API groups: patched with strategic merge. Other kinds (CRDs) get JSON merge patch. */
const BUILTIN_GROUPS = new Set([
  '',
  'apps',
  'batch',
  'policy',
  'autoscaling',
  'networking.k8s.io',
  'rbac.authorization.k8s.io',
]);

/** patchMergeKey of the built-in list fields deploy/ patches; other lists are replaced whole. */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  ports: 'containerPort',
  topologySpreadConstraints: 'topologyKey',
};

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const clone = <T>(v: T): T => structuredClone(v);

function mergeValue(base: unknown, patch: unknown, strategic: boolean, field: string): unknown {
  if (isPlainObject(base) && isPlainObject(patch)) {
    const out: Record<string, unknown> = { ...base };
    for (const [k, v] of Object.entries(patch)) {
      if (k.startsWith('$')) {
        throw new Error(`patch directive ${k} is outside the supported Kustomize subset`);
      }
      if (v === null) delete out[k];
      else out[k] = k in out ? mergeValue(out[k], v, strategic, k) : clone(v);
    }
    return out;
  }
  const key = MERGE_KEYS[field];
  if (strategic && key && Array.isArray(base) && Array.isArray(patch)) {
    const keyOf = (item: unknown) => (isPlainObject(item) ? item[key] : undefined);
    const patched = patch.map((p) => {
      const match = base.find((b) => keyOf(b) !== undefined && keyOf(b) === keyOf(p));
      return match === undefined ? clone(p) : mergeValue(match, p, strategic, '');
    });
    // Kustomize lists the patched items first, then the untouched ones.
    const rest = base.filter((b) => !patch.some((p) => keyOf(p) === keyOf(b)));
    return [...patched, ...rest.map(clone)];
  }
  return clone(patch);
}

function apiGroup(apiVersion: string): string {
  return apiVersion.includes('/') ? apiVersion.split('/')[0]! : '';
}

function readKustomization(dir: string): Kustomization {
  const file = path.join(dir, 'kustomization.yaml');
  if (!existsSync(file)) throw new Error(`${dir}: no kustomization.yaml`);
  const [doc] = parseYamlDocuments(readFileSync(file, 'utf8'), file);
  if (!isPlainObject(doc)) throw new Error(`${file}: not a mapping`);
  const unsupported = Object.keys(doc).filter((k) => !SUPPORTED_FIELDS.has(k));
  if (unsupported.length > 0) {
    throw new Error(
      `${file}: ${unsupported.join(', ')} outside the in-process renderer's Kustomize subset ` +
        `(${[...SUPPORTED_FIELDS].join(', ')}); extend deploy-kustomize.ts or render with kubectl`,
    );
  }
  return doc;
}

function splitImage(image: string): { name: string; tag?: string; digest?: string } {
  const [withTag, digest] = image.split('@') as [string, string | undefined];
  const colon = withTag.lastIndexOf(':');
  const tagged = colon > withTag.lastIndexOf('/');
  return tagged
    ? { name: withTag.slice(0, colon), tag: withTag.slice(colon + 1), digest }
    : { name: withTag, digest };
}

function setImages(obj: K8sObject, rules: ImageRule[]): void {
  const spec = (obj.spec as { template?: { spec?: Record<string, unknown> } } | undefined)?.template
    ?.spec;
  if (!spec) return;
  for (const field of ['containers', 'initContainers']) {
    for (const c of (spec[field] as { image?: string }[] | undefined) ?? []) {
      if (!c.image) continue;
      const current = splitImage(c.image);
      const rule = rules.find((r) => r.name === current.name);
      if (!rule) continue;
      const name = rule.newName ?? current.name;
      const tag = rule.newTag ?? current.tag;
      const digest = rule.digest ?? current.digest;
      c.image = digest ? `${name}@${digest}` : tag ? `${name}:${tag}` : name;
    }
  }
}

/** Renders a kustomization directory in-process (see the header for the supported subset). */
export function renderInProcess(dir: string): K8sObject[] {
  const k = readKustomization(dir);
  const objects: K8sObject[] = [];
  for (const resource of k.resources ?? []) {
    const target = path.resolve(dir, resource);
    if (!existsSync(target)) throw new Error(`${dir}: resource ${resource} does not exist`);
    if (statSync(target).isDirectory()) objects.push(...renderInProcess(target));
    else
      objects.push(...asObjects(parseYamlDocuments(readFileSync(target, 'utf8'), target), target));
  }
  for (const { path: patchPath, ...rest } of k.patches ?? []) {
    if (!patchPath || Object.keys(rest).length > 0) {
      throw new Error(
        `${dir}: only patches given by path (no target, no inline patch) are supported`,
      );
    }
    const file = path.resolve(dir, patchPath);
    for (const patch of asObjects(parseYamlDocuments(readFileSync(file, 'utf8'), file), file)) {
      const index = objects.findIndex(
        (o) =>
          o.kind === patch.kind &&
          o.metadata.name === patch.metadata.name &&
          apiGroup(o.apiVersion) === apiGroup(patch.apiVersion),
      );
      if (index < 0) throw new Error(`${file}: no ${patch.kind}/${patch.metadata.name} to patch`);
      const strategic = BUILTIN_GROUPS.has(apiGroup(patch.apiVersion));
      objects[index] = mergeValue(objects[index], patch, strategic, '') as K8sObject;
    }
  }
  for (const obj of objects) {
    if (k.images) setImages(obj, k.images);
    if (k.namespace) {
      // As Kustomize does: a Namespace object takes the kustomization's namespace as its name.
      if (obj.kind === 'Namespace') obj.metadata.name = k.namespace;
      else if (!CLUSTER_SCOPED.has(obj.kind)) obj.metadata.namespace = k.namespace;
    }
  }
  return objects;
}

/**
 * A canonical form for comparing two renderings: objects keyed by kind/namespace/name, and lists
 * of named items sorted by name (Kustomize's strategic merge reorders them).
 */
export function canonical(objects: K8sObject[]): Record<string, unknown> {
  const sortNamed = (v: unknown): unknown => {
    if (Array.isArray(v)) {
      const items = v.map(sortNamed);
      const named = items.every((i) => isPlainObject(i) && typeof i.name === 'string');
      return named
        ? [...items].sort((a, b) =>
            String((a as { name: string }).name).localeCompare(
              String((b as { name: string }).name),
            ),
          )
        : items;
    }
    if (isPlainObject(v)) {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sortNamed(v[k])]),
      );
    }
    return v;
  };
  return Object.fromEntries(
    objects.map((o) => [
      `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`,
      sortNamed(o),
    ]),
  );
}
