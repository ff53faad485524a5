import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * dlq.dead_letters: one row per dead message (unique on its stream and stream sequence, so a
 * re-captured advisory is harmless), with the original headers and payload kept for replay.
 * tenant_id is null when the message was not a CloudEvent naming one (platform admins only).
 */
export class DlqDeadLetters1763777300000 implements MigrationInterface {
  name = 'DlqDeadLetters1763777300000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE dlq.dead_letters (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        tenant_id text,
        stream text NOT NULL,
        consumer text NOT NULL,
        stream_seq bigint NOT NULL,
        subject text NOT NULL,
        event_id text,
        type text,
        code text,
        reason text NOT NULL,
        deliveries int NOT NULL,
        replays int NOT NULL DEFAULT 0,
        status text NOT NULL CHECK (status IN ('quarantined','parked','replayed','discarded')),
        first_failed_at timestamptz NOT NULL DEFAULT now(),
        last_failed_at timestamptz NOT NULL DEFAULT now(),
        quarantine_until timestamptz,
        last_replayed_at timestamptz,
        headers jsonb NOT NULL DEFAULT '{}'::jsonb,
        data bytea,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT dead_letters_stream_seq_uq UNIQUE (stream, stream_seq)
      )`);
    await q.query(
      `CREATE INDEX dead_letters_tenant_created_idx ON dlq.dead_letters (tenant_id, created_at DESC, id DESC)`,
    );
    await q.query(
      `CREATE INDEX dead_letters_created_idx ON dlq.dead_letters (created_at DESC, id DESC)`,
    );
    // The sweeper's scan: only quarantined rows, by due time.
    await q.query(
      `CREATE INDEX dead_letters_due_idx ON dlq.dead_letters (quarantine_until) WHERE status = 'quarantined'`,
    );
    // A failed replay is matched back to its entry by event id.
    await q.query(
      `CREATE INDEX dead_letters_event_idx ON dlq.dead_letters (subject, event_id) WHERE event_id IS NOT NULL`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE IF EXISTS dlq.dead_letters`);
  }
}
