// The Dockerfile, .dockerignore and .github/workflows. No Docker engine or GitHub runner exists
// here, so these check what can be checked without one: the Dockerfile's structure (stages,
// build args, user, entrypoint), that turbo's build filter the image uses covers what the image
// runs (the app, and for the gateway image the migration and provisioning CLIs), and that the
// workflows do what deploy/README.md says they do.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parseYamlDocuments } from './deploy-kustomize';

const root = path.resolve(__dirname, '../../../..');
const read = (file: string) => readFileSync(path.join(root, file), 'utf8');
const APPS = readdirSync(path.join(root, 'apps'))
  .filter((a) => existsSync(path.join(root, 'apps', a, 'package.json')))
  .sort();

interface Instruction {
  op: string;
  args: string;
  line: number;
}

/** Dockerfile instructions with continuation lines joined and comments dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending: Instruction | undefined;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!pending && (line === '' || line.startsWith('#'))) return;
    if (pending && line.startsWith('#')) return;
    const continues = line.endsWith('\\');
    const body = continues ? line.slice(0, -1) : line;
    if (pending) pending.args += ` ${body.trim()}`;
    else {
      const m = /^([A-Za-z]+)\s+(.*)$/.exec(body);
      if (!m) throw new Error(`Dockerfile line ${i + 1}: not an instruction: ${line}`);
      pending = { op: m[1]!.toUpperCase(), args: m[2]!, line: i + 1 };
    }
    if (!continues) {
      out.push(pending);
      pending = undefined;
    }
  });
  if (pending) throw new Error('Dockerfile ends inside a continued instruction');
  return out;
}

interface Stage {
  name: string;
  from: string;
  instructions: Instruction[];
}

function stages(instructions: Instruction[]): { globalArgs: string[]; stages: Stage[] } {
  const globalArgs: string[] = [];
  const result: Stage[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!m) throw new Error(`line ${ins.line}: FROM ${ins.args}`);
      result.push({ name: m[2] ?? String(result.length), from: m[1]!, instructions: [] });
    } else if (result.length === 0) {
      if (ins.op !== 'ARG') throw new Error(`line ${ins.line}: ${ins.op} before the first FROM`);
      globalArgs.push(ins.args.split('=')[0]!);
    } else {
      result[result.length - 1]!.instructions.push(ins);
    }
  }
  return { globalArgs, stages: result };
}

const KNOWN_OPS = new Set([
  'FROM',
  'ARG',
  'ENV',
  'WORKDIR',
  'COPY',
  'RUN',
  'USER',
  'EXPOSE',
  'CMD',
  'ENTRYPOINT',
  'LABEL',
]);

describe('Dockerfile', () => {
  const instructions = parseDockerfile(read('Dockerfile'));
  const { globalArgs, stages: all } = stages(instructions);
  const runtime = all[all.length - 1]!;

  it('uses only known instructions and a syntax directive', () => {
    expect(read('Dockerfile').split('\n')[0]).toMatch(/^# syntax=docker\/dockerfile:1/);
    for (const ins of instructions)
      expect({ line: ins.line, op: KNOWN_OPS.has(ins.op) }).toEqual({ line: ins.line, op: true });
  });

  it('builds FROM a pinned Node 20 slim image, never latest', () => {
    const nodeImage = instructions
      .find((i) => i.op === 'ARG' && i.args.startsWith('NODE_IMAGE='))
      ?.args.split('=')[1];
    expect(nodeImage).toMatch(/^node:20\.\d+-bookworm-slim$/);
    const stageNames = new Set(all.map((s) => s.name));
    for (const s of all) {
      expect(s.from === '${NODE_IMAGE}' || stageNames.has(s.from)).toBe(true);
    }
    expect(read('Dockerfile')).not.toMatch(/:latest\b/);
  });

  it('declares the APP build arg in every stage that reads it', () => {
    expect(globalArgs).toContain('NODE_IMAGE');
    for (const s of all) {
      const uses = s.instructions.some((i) => i.op !== 'ARG' && /\$\{?APP\b/.test(i.args));
      const declares = s.instructions.some((i) => i.op === 'ARG' && /^APP\b/.test(i.args));
      expect({ stage: s.name, declared: !uses || declares }).toEqual({
        stage: s.name,
        declared: true,
      });
    }
  });

  it('copies only from stages defined before', () => {
    const seen: string[] = [];
    for (const s of all) {
      for (const i of s.instructions.filter((x) => x.op === 'COPY')) {
        const from = /--from=(\S+)/.exec(i.args)?.[1];
        if (from)
          expect({ stage: s.name, from, defined: seen.includes(from) }).toEqual({
            stage: s.name,
            from,
            defined: true,
          });
      }
      seen.push(s.name);
    }
  });

  it('installs with the lockfile, builds the app with turbo and prunes dev dependencies', () => {
    const runs = instructions.filter((i) => i.op === 'RUN').map((i) => i.args);
    expect(runs.some((r) => r.includes('scripts/lib/clean-install.mjs'))).toBe(true);
    expect(runs.some((r) => r.includes('turbo run build --filter="@aob/${APP}..."'))).toBe(true);
    expect(runs.some((r) => r.includes('npm prune --omit=dev'))).toBe(true);
    expect(existsSync(path.join(root, 'scripts/lib/clean-install.mjs'))).toBe(true);
  });

  it('runs the app as uid 10001 with node as PID 1', () => {
    const user = runtime.instructions.filter((i) => i.op === 'USER').at(-1);
    expect(user?.args).toBe('10001:10001');
    const cmd = runtime.instructions.filter((i) => i.op === 'CMD').at(-1);
    expect(JSON.parse(cmd!.args)).toEqual([
      '/bin/sh',
      '-c',
      'exec node "apps/${AOB_APP}/dist/main.js"',
    ]);
    const env = runtime.instructions
      .filter((i) => i.op === 'ENV')
      .map((i) => i.args)
      .join(' ');
    expect(env).toMatch(/AOB_APP=\$\{APP\}/);
    expect(env).toMatch(/NODE_ENV=production/);
    // Nothing runs as root in the runtime stage after USER, and no build tools are installed there.
    expect(runtime.instructions.filter((i) => i.op === 'RUN')).toEqual([]);
  });

  it('keeps dependencies, secrets and local state out of the build context', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const p of ['**/node_modules', '**/dist', '.git', '.env', '.aob', 'reports'])
      expect(ignored).toContain(p);
    // What the build needs must not be ignored.
    for (const needed of [
      'package.json',
      'package-lock.json',
      'apps',
      'libs',
      'scripts',
      'turbo.json',
      'tsconfig.base.json',
    ]) {
      expect(ignored).not.toContain(needed);
    }
  });

  it("builds, for every app, the libs its image runs (turbo's filter follows workspace dependencies)", () => {
    const dry = spawnSync(
      'npx',
      ['turbo', 'run', 'build', '--filter=@aob/gateway...', '--dry=json'],
      {
        cwd: root,
        encoding: 'utf8',
        env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1' },
        timeout: 60_000,
      },
    );
    expect(dry.status).toBe(0);
    const packages = (JSON.parse(dry.stdout) as { packages: string[] }).packages;
    // The gateway image also runs the migration Job (libs/persistence, libs/events CLIs).
    expect(packages).toEqual(
      expect.arrayContaining(['@aob/gateway', '@aob/persistence', '@aob/events']),
    );
    expect(packages).not.toContain('@aob/agent-executor');
  });
});

describe('.github/workflows', () => {
  type Workflow = {
    on: Record<string, unknown>;
    permissions?: Record<string, string>;
    jobs: Record<
      string,
      {
        permissions?: Record<string, string>;
        services?: Record<string, { image: string }>;
        strategy?: { matrix: { app: string[] } };
        steps: { uses?: string; run?: string; with?: Record<string, unknown>; name?: string }[];
      }
    >;
  };
  const load = (file: string) =>
    parseYamlDocuments(read(`.github/workflows/${file}`), file)[0] as Workflow;
  const ci = load('ci.yml');
  const release = load('release.yml');
  const steps = (w: Workflow) => Object.values(w.jobs).flatMap((j) => j.steps);
  const script = (w: Workflow) =>
    steps(w)
      .map((s) => s.run ?? '')
      .join('\n');

  it('runs .ci/run in CI against PostgreSQL, Redis and NATS with JetStream', () => {
    expect(script(ci)).toMatch(/^bash \.ci\/run$/m);
    const [job] = Object.values(ci.jobs);
    expect(Object.keys(job!.services ?? {}).sort()).toEqual(['postgres', 'redis']);
    expect(script(ci)).toMatch(/nats-server .*-js/);
    expect(ci.permissions).toEqual({ contents: 'read' });
  });

  it('builds, SBOMs, signs, verifies and scans an image for every app', () => {
    const job = release.jobs.image!;
    expect([...job.strategy!.matrix.app].sort()).toEqual(APPS);
    expect(job.permissions).toMatchObject({
      'id-token': 'write',
      'security-events': 'write',
      packages: 'write',
    });
    const s = script(release);
    expect(s).toMatch(/npm sbom --sbom-format cyclonedx/);
    expect(s).toMatch(/cosign sign --yes "\$IMAGE"/);
    expect(s).toMatch(/cosign verify "\$IMAGE"/);
    expect(s).toMatch(/--certificate-oidc-issuer https:\/\/token\.actions\.githubusercontent\.com/);
    const uses = steps(release).map((x) => x.uses ?? '');
    expect(uses.some((u) => u.startsWith('actions/upload-artifact@'))).toBe(true);
    expect(uses.some((u) => u.startsWith('aquasecurity/trivy-action@'))).toBe(true);
    expect(uses.some((u) => u.startsWith('github/codeql-action/upload-sarif@'))).toBe(true);
    const build = steps(release).find((x) => x.uses?.startsWith('docker/build-push-action@'));
    expect(build?.with?.['build-args']).toBe('APP=${{ matrix.app }}');
  });

  it('signs and scans the pushed digest, never a movable tag', () => {
    for (const step of steps(release)) {
      const text = JSON.stringify(step);
      if (/cosign|trivy/.test(text) && /IMAGE|image-ref/.test(text))
        expect(text).toContain('steps.build.outputs.digest');
    }
  });

  it('pins every action to a release', () => {
    for (const u of [...steps(ci), ...steps(release)].flatMap((x) => (x.uses ? [x.uses] : []))) {
      expect(u).toMatch(/@(v\d[\w.]*|\d+\.\d+\.\d+|[0-9a-f]{40})$/);
    }
  });
});

describe('docs/runbooks and deploy/README.md', () => {
  it.each([
    'replaying-dead-letters.md',
    'scaling-workers.md',
    'rotating-keys.md',
    'postgres-backup-restore.md',
    'nats-dragonfly-outage.md',
  ])('has the %s runbook, linked from the index', (file) => {
    expect(read(`docs/runbooks/${file}`).length).toBeGreaterThan(1_000);
    expect(read('docs/runbooks/README.md')).toContain(`(${file})`);
  });

  it('documents the dead-letter routes and that a replay resumes the same run', () => {
    const text = read('docs/runbooks/replaying-dead-letters.md');
    for (const route of ['GET /v1/dlq', 'POST', '/v1/dlq/<id>/replay'])
      expect(text).toContain(route.split(' ').at(-1));
    expect(text).toMatch(/resumes the[\s>]+\*\*same run\*\*/);
  });

  it('documents how to apply, the prerequisites and the metrics the rules expect', () => {
    const readme = read('deploy/README.md');
    expect(readme).toContain('kubectl apply -k deploy/k8s/overlays/dev');
    for (const word of ['KEDA', 'External Secrets', 'metrics the rules expect', 'only on GitHub'])
      expect(readme.toLowerCase()).toContain(word.toLowerCase());
  });
});
