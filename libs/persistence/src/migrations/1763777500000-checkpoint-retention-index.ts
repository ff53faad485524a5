import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The checkpoint pruner of the agent-executor walks executor.checkpoints oldest first in bounded
 * batches (`created_at < cut-off ORDER BY created_at LIMIT n`): this index keeps each batch from
 * scanning the whole table. Keys grow with time, so inserts only touch the right-most page.
 */
export class CheckpointRetentionIndex1763777500000 implements MigrationInterface {
  name = 'CheckpointRetentionIndex1763777500000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `CREATE INDEX IF NOT EXISTS checkpoints_created_idx ON executor.checkpoints (created_at)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX IF EXISTS executor.checkpoints_created_idx`);
  }
}
