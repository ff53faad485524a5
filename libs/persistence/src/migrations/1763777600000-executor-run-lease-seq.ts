import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * executor.runs.lease_seq: the JetStream stream sequence of the request message whose delivery
 * holds (or last held) the run's lease; meaningful only while lease_owner is set. A delivery that
 * finds the run busy can tell a previous delivery of its own message (gone without releasing the
 * lease, say during a database outage: it waits the lease out and takes over) from a duplicate
 * request (another message: retried later, dropped on its last delivery).
 */
export class ExecutorRunLeaseSeq1763777600000 implements MigrationInterface {
  name = 'ExecutorRunLeaseSeq1763777600000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE executor.runs ADD COLUMN lease_seq bigint`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE executor.runs DROP COLUMN IF EXISTS lease_seq`);
  }
}
