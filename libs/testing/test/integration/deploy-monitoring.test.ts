// deploy/monitoring: the PrometheusRule and the Grafana dashboard read only metrics that exist
// (the aob_* series the apps and libs register today, found in their sources, and the upstream
// exporters' series listed below), their PromQL is well-formed as far as a lexer can tell, and
// every alert leads to a runbook. promtool, when installed (Debian package `prometheus`), parses
// the rules for real as well.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { findKustomize, parseYamlDocuments, renderWithKustomize } from './deploy-kustomize';

const root = path.resolve(__dirname, '../../../..');
const monitoring = path.join(root, 'deploy/monitoring');

/**
 * Series from outside AOB that the rules and dashboard read (deploy/README.md, "metrics the rules
 * expect"): prometheus-nats-exporter's JetStream collector under the NATS chart's -prefix=nats and
 * under its default `jetstream` prefix, kube-state-metrics, and Prometheus' own `up`.
 */
const EXTERNAL_METRICS = new Set([
  'nats_consumer_num_pending',
  'nats_consumer_num_ack_pending',
  'nats_consumer_num_redelivered',
  'nats_stream_total_messages',
  'jetstream_consumer_num_pending',
  'jetstream_consumer_num_ack_pending',
  'jetstream_consumer_num_redelivered',
  'jetstream_stream_total_messages',
  'kube_horizontalpodautoscaler_status_current_replicas',
  'kube_horizontalpodautoscaler_spec_max_replicas',
  'up',
]);

/** PromQL words that are not metric names: functions, aggregations, keywords. */
const PROMQL_WORDS = new Set(
  (
    'sum min max avg count stddev stdvar topk bottomk quantile count_values group by without ' +
    'on ignoring group_left group_right and or unless bool offset rate irate increase delta ' +
    'idelta deriv predict_linear histogram_quantile abs ceil floor round clamp clamp_min ' +
    'clamp_max absent absent_over_time avg_over_time max_over_time min_over_time sum_over_time ' +
    'count_over_time quantile_over_time last_over_time changes resets vector scalar time ' +
    'timestamp label_replace label_join sort sort_desc exp ln log2 log10 sqrt inf nan'
  ).split(' '),
);

function walk(dir: string, out: string[] = []): string[] {
  for (const entry of readdirSync(dir)) {
    if (entry === 'node_modules' || entry === 'dist') continue;
    const p = path.join(dir, entry);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (p.endsWith('.ts') && !p.endsWith('.spec.ts')) out.push(p);
  }
  return out;
}

/** The aob_* metrics registered in the apps' and libs' sources, with a histogram's series. */
function aobMetrics(): Map<string, 'counter' | 'gauge' | 'histogram'> {
  const metrics = new Map<string, 'counter' | 'gauge' | 'histogram'>();
  const files = ['apps', 'libs'].flatMap((d) =>
    readdirSync(path.join(root, d)).flatMap((pkg) => {
      const src = path.join(root, d, pkg, 'src');
      return existsSync(src) ? walk(src) : [];
    }),
  );
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(
      /\b(counter|gauge|histogram)\(\{\s*name:\s*'(aob_[a-z0-9_]+)'/g,
    )) {
      metrics.set(m[2]!, m[1] as 'counter' | 'gauge' | 'histogram');
    }
  }
  return metrics;
}

const registered = aobMetrics();

function knownSeries(): Set<string> {
  const known = new Set(EXTERNAL_METRICS);
  for (const [name, type] of registered) {
    if (type === 'histogram') for (const s of ['_bucket', '_count', '_sum']) known.add(name + s);
    else known.add(name);
  }
  return known;
}

/** Brackets balance and close in order, outside string literals. */
function checkBrackets(expr: string): string | undefined {
  const stack: string[] = [];
  const pairs: Record<string, string> = { ')': '(', ']': '[', '}': '{' };
  let quote: string | undefined;
  for (let i = 0; i < expr.length; i++) {
    const ch = expr[i]!;
    if (quote) {
      if (ch === '\\') i++;
      else if (ch === quote) quote = undefined;
      continue;
    }
    if (ch === '"' || ch === "'" || ch === '`') quote = ch;
    else if ('([{'.includes(ch)) stack.push(ch);
    else if (ch in pairs) {
      if (stack.pop() !== pairs[ch]) return `unbalanced ${ch} at ${i}`;
    }
  }
  if (quote) return 'unterminated string';
  return stack.length ? `unclosed ${stack.join('')}` : undefined;
}

/** Metric names an expression selects: bare identifiers and `__name__` matchers. */
function selectedMetrics(expr: string): { names: string[]; nameRegexes: string[] } {
  const nameRegexes = [...expr.matchAll(/__name__\s*=~?\s*"([^"]+)"/g)].map((m) => m[1]!);
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""') // strings
    .replace(/\{[^}]*\}/g, '{}') // label matchers
    .replace(/\[[^\]]*\]/g, '[]') // ranges
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '$1()'); // label lists
  const names = [...stripped.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)]
    .map((m) => m[0])
    .filter((w) => !PROMQL_WORDS.has(w) && !/^\d/.test(w));
  return { names, nameRegexes };
}

/** Problems of one expression: syntax as far as a lexer tells, and unknown series. */
function checkExpr(expr: string, recorded: Set<string>): string[] {
  const problems: string[] = [];
  const bracket = checkBrackets(expr);
  if (bracket) problems.push(bracket);
  if (/\$\{?[a-z]/i.test(expr.replace(/\$__\w+/g, '')))
    problems.push('unresolved template variable');
  const known = knownSeries();
  const { names, nameRegexes } = selectedMetrics(expr);
  for (const name of names) {
    if (name.includes(':') ? !recorded.has(name) : !known.has(name))
      problems.push(`unknown series ${name}`);
  }
  for (const re of nameRegexes) {
    for (const alt of re.split('|'))
      if (!known.has(alt)) problems.push(`unknown series ${alt} in __name__`);
  }
  if (names.length === 0 && nameRegexes.length === 0) problems.push('selects no series');
  return problems;
}

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface PrometheusRule {
  kind: string;
  spec: { groups: { name: string; rules: Rule[] }[] };
}

const [prometheusRule] = parseYamlDocuments(
  readFileSync(path.join(monitoring, 'prometheus-rules.yaml'), 'utf8'),
  'prometheus-rules.yaml',
) as [PrometheusRule];
const rules = prometheusRule.spec.groups.flatMap((g) => g.rules);
const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));
const alerts = rules.filter((r) => r.alert);

describe('deploy/monitoring/prometheus-rules.yaml', () => {
  it('finds the metrics the apps register (the check below is only as good as this list)', () => {
    for (const m of [
      'aob_http_request_duration_seconds',
      'aob_runs_total',
      'aob_run_duration_seconds',
      'aob_outbox_backlog',
      'aob_jetstream_consumer_pending',
      'aob_jetstream_consumer_ack_pending',
      'aob_jetstream_consumer_redelivered',
      'aob_jetstream_redeliveries_total',
      'aob_jetstream_stream_messages',
      'aob_quota_checks_total',
      'aob_model_gateway_circuit_state',
    ]) {
      expect(registered.has(m)).toBe(true);
    }
  });

  it("reads JetStream lag, redeliveries and the DLQ size from the apps' own series too", () => {
    const expr = (name: string) => rules.find((r) => r.record === name)?.expr ?? '';
    expect(expr('aob:jetstream_consumer_lag:max')).toContain('aob_jetstream_consumer_pending');
    expect(expr('aob:jetstream_consumer_lag:max')).toContain('aob_jetstream_consumer_ack_pending');
    expect(expr('aob:jetstream_consumer_redelivered:max')).toContain(
      'aob_jetstream_consumer_redelivered',
    );
    expect(expr('aob:jetstream_stream_messages:max')).toContain('aob_jetstream_stream_messages');
  });

  it('uses only well-formed PromQL over series that exist', () => {
    const problems = rules.flatMap((r) =>
      checkExpr(r.expr, recorded).map((p) => `${r.record ?? r.alert}: ${p}`),
    );
    expect(problems).toEqual([]);
  });

  it('catches what it claims to catch', () => {
    // The checks above must be able to fail.
    expect(checkExpr('sum(rate(aob_runs_total[5m])', recorded)).toContain('unclosed (');
    expect(checkExpr('rate(aob_no_such_metric_total[5m])', recorded)).toContain(
      'unknown series aob_no_such_metric_total',
    );
    expect(checkExpr('aob:never_recorded:ratio > 1', recorded)).toContain(
      'unknown series aob:never_recorded:ratio',
    );
    expect(
      checkExpr(
        'sum by (app) (rate(aob_http_request_duration_seconds_count{status=~"5.."}[5m]))',
        recorded,
      ),
    ).toEqual([]);
  });

  it('names recording rules level:metric:operations and records each once', () => {
    const names = rules.flatMap((r) => (r.record ? [r.record] : []));
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(/^[a-z]+:[a-z0-9_]+:[a-z0-9_]+$/);
  });

  it('alerts on availability, run latency, consumer lag, dead letters, the outbox and error-budget burn', () => {
    const names = alerts.map((a) => a.alert);
    for (const expected of [
      'AobApiAvailabilityErrorBudgetBurnFast',
      'AobApiAvailabilityErrorBudgetBurnSlow',
      'AobRunSuccessErrorBudgetBurnFast',
      'AobRunSuccessErrorBudgetBurnSlow',
      'AobRunLatencyHigh',
      'AobConsumerLagHigh',
      'AobDeadLettersGrowing',
      'AobOutboxBacklogHigh',
      'AobOutboxStalled',
    ]) {
      expect(names).toContain(expected);
    }
  });

  it('burns error budgets over paired long and short windows (multi-window, multi-burn-rate)', () => {
    const windowsOf = (expr: string) =>
      [...expr.matchAll(/ratio_rate(\d+[mhd])/g)].map((m) => m[1]);
    const fast = alerts.filter((a) => a.alert!.endsWith('BurnFast'));
    const slow = alerts.filter((a) => a.alert!.endsWith('BurnSlow'));
    expect(fast.length).toBeGreaterThan(0);
    for (const a of fast) {
      expect(windowsOf(a.expr)).toEqual(['1h', '5m', '6h', '30m']);
      expect(a.expr).toMatch(/14\.4 \*/);
      expect(a.labels?.severity).toBe('critical');
    }
    for (const a of slow) {
      expect(windowsOf(a.expr)).toEqual(['1d', '2h', '3d', '6h']);
      expect(a.labels?.severity).toBe('warning');
    }
    for (const w of ['5m', '30m', '1h', '2h', '6h', '1d', '3d']) {
      expect(recorded).toContain(`aob:http_errors:ratio_rate${w}`);
      expect(recorded).toContain(`aob:run_failures:ratio_rate${w}`);
    }
  });

  it('gives every alert a severity, a summary and a runbook that exists', () => {
    for (const a of alerts) {
      expect({ alert: a.alert, severity: a.labels?.severity }).toEqual({
        alert: a.alert,
        severity: expect.stringMatching(/^(critical|warning|info)$/),
      });
      expect(a.annotations?.summary).toBeTruthy();
      const runbook = a.annotations?.runbook_url ?? '';
      expect({ alert: a.alert, runbook, exists: existsSync(path.join(root, runbook)) }).toEqual({
        alert: a.alert,
        runbook,
        exists: true,
      });
      if (a.for) expect(a.for).toMatch(/^\d+[smh]$/);
    }
  });

  const promtool = spawnSync('promtool', ['--version'], { encoding: 'utf8' }).status === 0;
  if (!promtool) {
    console.warn(
      'deploy tests: promtool not on PATH (Debian package `prometheus`): PromQL checked by the lexer only.',
    );
  }
  (promtool ? it : it.skip)('parses with promtool', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'aob-rules-'));
    try {
      const file = path.join(dir, 'rules.yaml');
      writeFileSync(file, stringify({ groups: prometheusRule.spec.groups }));
      const r = spawnSync('promtool', ['check', 'rules', file], { encoding: 'utf8' });
      expect({ status: r.status, output: r.stdout + r.stderr }).toEqual({
        status: 0,
        output: expect.stringContaining('SUCCESS'),
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('deploy/monitoring/grafana-dashboard.json', () => {
  interface Panel {
    type: string;
    title: string;
    gridPos: { x: number; y: number; w: number; h: number };
    targets?: { expr: string; refId: string }[];
  }
  const dashboard = JSON.parse(
    readFileSync(path.join(monitoring, 'grafana-dashboard.json'), 'utf8'),
  ) as {
    uid: string;
    title: string;
    templating: { list: { name: string; type: string }[] };
    panels: Panel[];
  };

  it('queries only well-formed PromQL over series and recording rules that exist', () => {
    const problems = dashboard.panels.flatMap((p) =>
      (p.targets ?? []).flatMap((t) => checkExpr(t.expr, recorded).map((e) => `${p.title}: ${e}`)),
    );
    expect(problems).toEqual([]);
    expect(
      dashboard.panels.filter((p) => p.type !== 'row').every((p) => (p.targets ?? []).length > 0),
    ).toBe(true);
  });

  it('has a data source variable and panels that do not overlap', () => {
    expect(dashboard.uid).toBe('aob-overview');
    expect(dashboard.templating.list).toContainEqual(
      expect.objectContaining({ name: 'datasource', type: 'datasource' }),
    );
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      const { x, y, w, h } = p.gridPos;
      expect(x + w).toBeLessThanOrEqual(24);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`)).toBe(false);
          cells.add(`${i},${j}`);
        }
      }
    }
  });
});

describe('deploy/monitoring kustomization', () => {
  const tool = findKustomize();
  (tool ? it : it.skip)(
    'renders the rules, the PodMonitor and the dashboard ConfigMap for Grafana',
    () => {
      const objects = renderWithKustomize(tool!, monitoring);
      expect(objects.map((o) => o.kind).sort()).toEqual([
        'ConfigMap',
        'PodMonitor',
        'PrometheusRule',
      ]);
      const cm = objects.find((o) => o.kind === 'ConfigMap')!;
      expect(cm.metadata.labels?.grafana_dashboard).toBe('1');
      expect(Object.keys((cm as unknown as { data: object }).data)).toEqual([
        'grafana-dashboard.json',
      ]);
      // AobTargetDown selects the job label prometheus-operator gives this PodMonitor.
      const pm = objects.find((o) => o.kind === 'PodMonitor')!;
      expect(alerts.find((a) => a.alert === 'AobTargetDown')?.expr).toContain(
        `job="${pm.metadata.namespace}/${pm.metadata.name}"`,
      );
    },
  );
});
