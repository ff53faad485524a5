import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * executor.runs.has_checkpoints: set in the statements that write a run's checkpoints (the
 * checkpoint save and the finish that carries the last step), read by the claim. It replaces an
 * EXISTS probe of executor.checkpoints in the claim's RETURNING list, which a generic plan (the
 * claim is a named prepared statement, and a batch of claims is planned for many rows) could turn
 * into a sequential scan of the whole checkpoints table per claim.
 */
export class ExecutorRunHasCheckpoints1763777800000 implements MigrationInterface {
  name = 'ExecutorRunHasCheckpoints1763777800000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE executor.runs ADD COLUMN has_checkpoints boolean NOT NULL DEFAULT false`,
    );
    await q.query(
      `UPDATE executor.runs r SET has_checkpoints = true
        WHERE EXISTS (SELECT 1 FROM executor.checkpoints c WHERE c.run_id = r.run_id)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE executor.runs DROP COLUMN IF EXISTS has_checkpoints`);
  }
}
