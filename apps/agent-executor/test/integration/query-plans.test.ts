import { createDataSource, type DataSource } from '@aob/persistence';
import { createTestDatabase, type TestDatabase } from '@aob/testing';
import { CheckpointRepository } from '../../src/runs/checkpoint.repository';
import { ExecutorRunRepository } from '../../src/runs/executor-run.repository';

jest.setTimeout(60_000);

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

/** Every node that reads a table: `<relation> by <index | seq scan>`. */
function scans(node: PlanNode, out: string[] = []): string[] {
  if (node['Relation Name'] !== undefined && /Scan/.test(node['Node Type']))
    out.push(`${node['Relation Name']} by ${node['Index Name'] ?? node['Node Type']}`);
  for (const child of node.Plans ?? []) scans(child, out);
  return out;
}

/**
 * The executor's hot statements are named prepared statements: Postgres plans them once per
 * connection and, after five executions, may keep a generic plan (one for any parameters) for as
 * long as the connection lives. A generic plan made while the tables were empty once picked an
 * index on tenant_id over the primary key, so every finish scanned the tenant's whole history and
 * runs slowed down one after another. Here every hot statement is prepared on a fresh database
 * exactly as the executor prepares it, and its generic plan must reach rows by run id only.
 */
describe('executor statements: generic plans reach a run by its id', () => {
  let db: TestDatabase;
  let ds: DataSource;

  beforeAll(async () => {
    db = await createTestDatabase('aob_exec_plans');
    // one connection: the statements the repositories prepare are the ones EXPLAIN sees
    ds = createDataSource({ url: db.url, poolSize: 1, applicationName: 'plans-under-test' });
    await ds.initialize();
    const runs = new ExecutorRunRepository(ds);
    const checkpoints = new CheckpointRepository(ds);
    // claims issued together go as one multi-row statement
    for (let round = 0; round < 7; round++) {
      const claims = await Promise.all(
        [0, 1, 2].map((i) =>
          runs.claim({
            tenantId: 'tenant-a',
            runId: `plan-batch-${round}-${i}`,
            agent: 'echo',
            threadId: `plan-batch-${round}-${i}`,
            eventId: `plan-batch-${round}-${i}`,
            input: {},
            attempts: 1,
            replay: 0,
            leaseOwner: `plans/batch/${round}/${i}`,
            leaseTtlMs: 30_000,
          }),
        ),
      );
      expect(claims.map((c) => c.kind)).toEqual(['claimed', 'claimed', 'claimed']);
    }
    for (let i = 0; i < 8; i++) {
      const runId = `plan-run-${i}`;
      const owner = `plans/${i}`;
      const claim = await runs.claim({
        tenantId: 'tenant-a',
        runId,
        agent: 'echo',
        threadId: runId,
        eventId: runId,
        input: { message: i },
        attempts: 1,
        replay: 0,
        leaseOwner: owner,
        leaseTtlMs: 30_000,
        streamSeq: i + 1,
      });
      expect(claim.kind).toBe('claimed');
      const step = {
        tenantId: 'tenant-a',
        threadId: runId,
        runId,
        stepId: 'echo',
        state: { i },
        output: { i },
      };
      await checkpoints.save({ ...step, step: 1 }, owner, 30_000);
      const terminal = {
        status: 'completed' as const,
        eventId: `${runId}.completed`,
        eventType: 'aob.agent.completed.v1',
        result: { runId },
        attempts: 1,
      };
      // both finish statements: with the run's last checkpoint, and without one
      expect(
        await runs.finish(
          'tenant-a',
          runId,
          owner,
          terminal,
          i % 2 === 0 ? { ...step, step: 2 } : undefined,
        ),
      ).not.toBeNull();
    }
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  it('prepares the hot statements and plans each of them with primary or run-id keys only', async () => {
    const prepared: { name: string; parameter_types: string }[] = await ds.query(
      `SELECT name, parameter_types::text FROM pg_prepared_statements WHERE NOT from_sql ORDER BY name`,
    );
    expect(prepared.map((p) => p.name)).toEqual([
      'executor_checkpoint_save',
      'executor_run_claim',
      'executor_run_claim_batch',
      'executor_run_finish',
      'executor_run_finish_with_checkpoint',
    ]);
    const qr = ds.createQueryRunner();
    try {
      await qr.query(`SET plan_cache_mode = force_generic_plan`);
      for (const { name, parameter_types } of prepared) {
        const arity = parameter_types.replace(/[{}]/g, '').split(',').length;
        const nulls = Array.from({ length: arity }, () => 'NULL').join(', ');
        const [row] = (await qr.query(`EXPLAIN (FORMAT JSON) EXECUTE ${name}(${nulls})`)) as {
          'QUERY PLAN': { Plan: PlanNode }[];
        }[];
        const found = scans(row!['QUERY PLAN'][0]!.Plan);
        expect({
          name,
          scans: found.filter((s) => !/ by (runs_pkey|checkpoints_run_step_uq)$/.test(s)),
        }).toEqual({
          name,
          scans: [],
        });
      }
    } finally {
      await qr.query(`RESET plan_cache_mode`).catch(() => undefined);
      await qr.release();
    }
  });
});
