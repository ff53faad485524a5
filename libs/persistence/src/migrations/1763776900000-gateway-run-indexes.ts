import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Indexes for the gateway's read paths: run lists filtered by status or agent (keyset pagination,
 * newest first), thread lookups, and the outbox prune of sent rows.
 */
export class GatewayRunIndexes1763776900000 implements MigrationInterface {
  name = 'GatewayRunIndexes1763776900000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE INDEX IF NOT EXISTS runs_tenant_status_created_idx ON gateway.runs (tenant_id, status, created_at DESC, run_id DESC)`,
    );
    await q.query(
      `CREATE INDEX IF NOT EXISTS runs_tenant_agent_created_idx ON gateway.runs (tenant_id, agent, created_at DESC, run_id DESC)`,
    );
    await q.query(
      `CREATE INDEX IF NOT EXISTS runs_tenant_thread_idx ON gateway.runs (tenant_id, thread_id)`,
    );
    await q.query(
      `CREATE INDEX IF NOT EXISTS outbox_sent_at_idx ON gateway.outbox (sent_at) WHERE sent_at IS NOT NULL`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX IF EXISTS gateway.outbox_sent_at_idx`);
    await q.query(`DROP INDEX IF EXISTS gateway.runs_tenant_thread_idx`);
    await q.query(`DROP INDEX IF EXISTS gateway.runs_tenant_agent_created_idx`);
    await q.query(`DROP INDEX IF EXISTS gateway.runs_tenant_status_created_idx`);
  }
}
