import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * executor.runs.replays: the highest dead-letter replay (`ce-aobreplay`) the run has accepted. A
 * replayed request whose number is above it reopens a `failed` run (it resumes after its last
 * checkpoint); a number at or below it is a repeat and is answered with the run's current state.
 */
export class ExecutorRunReplays1763777400000 implements MigrationInterface {
  name = 'ExecutorRunReplays1763777400000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE executor.runs ADD COLUMN replays int NOT NULL DEFAULT 0`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE executor.runs DROP COLUMN IF EXISTS replays`);
  }
}
