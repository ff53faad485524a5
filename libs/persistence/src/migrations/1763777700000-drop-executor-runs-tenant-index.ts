import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Drops executor_runs_tenant_idx (tenant_id, started_at DESC). No query of the executor lists a
 * tenant's runs (the gateway's projection serves that), and the index did harm: the executor's
 * hot statements are named prepared statements (`WHERE run_id = $1 AND tenant_id = $2 ...`), and on
 * a fresh, empty table Postgres' generic plan for them picked this index over the primary key, so
 * every finish scanned all of the tenant's runs. Cached per connection, the plan made each run
 * slower than the one before until autovacuum's ANALYZE replaced it (measured: the finish
 * statement from ~0.3 ms to 7 ms median over 6,000 runs). Without the index the primary key is the
 * only candidate; apps/agent-executor/test/integration/query-plans.test.ts keeps it that way.
 */
export class DropExecutorRunsTenantIndex1763777700000 implements MigrationInterface {
  name = 'DropExecutorRunsTenantIndex1763777700000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX IF EXISTS executor.executor_runs_tenant_idx`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE INDEX IF NOT EXISTS executor_runs_tenant_idx ON executor.runs (tenant_id, started_at DESC)`,
    );
  }
}
