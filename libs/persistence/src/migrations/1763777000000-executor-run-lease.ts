import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A lease on executor.runs: the worker executing a run owns it until `lease_expires_at`, renewing it
 * while it works. A duplicate delivery of the same run waits while the lease is live, and takes the
 * run over once it has expired (its holder crashed).
 */
export class ExecutorRunLease1763777000000 implements MigrationInterface {
  name = 'ExecutorRunLease1763777000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE executor.runs ADD COLUMN lease_owner text, ADD COLUMN lease_expires_at timestamptz`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE executor.runs DROP COLUMN IF EXISTS lease_expires_at, DROP COLUMN IF EXISTS lease_owner`,
    );
  }
}
