import type { MigrationInterface, QueryRunner } from 'typeorm';

/** One schema per app: gateway, executor, metering, dlq. */
export class InitialSchema1763776800000 implements MigrationInterface {
  name = 'InitialSchema1763776800000';

  async up(q: QueryRunner): Promise<void> {
    for (const schema of ['gateway', 'executor', 'metering', 'dlq']) {
      await q.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    }
    await q.query(`
      CREATE TABLE gateway.runs (
        run_id text PRIMARY KEY,
        tenant_id text NOT NULL,
        agent text NOT NULL,
        thread_id text NOT NULL,
        status text NOT NULL CHECK (status IN ('queued','running','completed','failed','cancelled')),
        input jsonb,
        options jsonb,
        output jsonb,
        error jsonb,
        usage jsonb,
        attempts int NOT NULL DEFAULT 0,
        duration_ms int,
        idempotency_key text,
        request_hash text,
        event_id text,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(
      `CREATE INDEX runs_tenant_created_idx ON gateway.runs (tenant_id, created_at DESC, run_id DESC)`,
    );
    await q.query(
      `CREATE UNIQUE INDEX runs_tenant_idempotency_key_uq ON gateway.runs (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL`,
    );
    await q.query(`
      CREATE TABLE gateway.outbox (
        id bigserial PRIMARY KEY,
        event_id text NOT NULL UNIQUE,
        subject text NOT NULL,
        headers jsonb NOT NULL,
        payload bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        sent_at timestamptz,
        attempts int NOT NULL DEFAULT 0,
        last_error text
      )`);
    await q.query(`CREATE INDEX outbox_unsent_idx ON gateway.outbox (id) WHERE sent_at IS NULL`);

    await q.query(`
      CREATE TABLE executor.runs (
        run_id text PRIMARY KEY,
        tenant_id text NOT NULL,
        agent text NOT NULL,
        thread_id text NOT NULL,
        status text NOT NULL CHECK (status IN ('running','completed','failed','cancelled')),
        event_id text NOT NULL,
        input jsonb,
        attempts int NOT NULL DEFAULT 0,
        result_event_id text,
        result_type text,
        result jsonb,
        started_at timestamptz NOT NULL DEFAULT now(),
        finished_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
    await q.query(
      `CREATE INDEX executor_runs_tenant_idx ON executor.runs (tenant_id, started_at DESC)`,
    );
    await q.query(`
      CREATE TABLE executor.checkpoints (
        checkpoint_id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        tenant_id text NOT NULL,
        thread_id text NOT NULL,
        run_id text NOT NULL,
        step int NOT NULL CHECK (step >= 1),
        step_id text,
        state jsonb,
        output jsonb,
        created_at timestamptz NOT NULL DEFAULT clock_timestamp()
      )`);
    await q.query(
      `CREATE UNIQUE INDEX checkpoints_run_step_uq ON executor.checkpoints (run_id, step)`,
    );
    await q.query(
      `CREATE INDEX checkpoints_thread_idx ON executor.checkpoints (tenant_id, thread_id, created_at DESC)`,
    );

    await q.query(`
      CREATE TABLE executor.agents (
        name text PRIMARY KEY,
        description text NOT NULL,
        input_schema jsonb NOT NULL,
        version text NOT NULL DEFAULT '1',
        registered_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);

    await q.query(`
      CREATE TABLE dlq.terminations (
        stream text NOT NULL,
        consumer text NOT NULL,
        stream_seq bigint NOT NULL,
        subject text NOT NULL,
        event_id text,
        event_type text,
        tenant_id text,
        code text NOT NULL,
        reason text NOT NULL,
        deliveries int NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (stream, consumer, stream_seq)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE IF EXISTS dlq.terminations`);
    await q.query(`DROP TABLE IF EXISTS executor.agents`);
    await q.query(`DROP TABLE IF EXISTS executor.checkpoints`);
    await q.query(`DROP TABLE IF EXISTS executor.runs`);
    await q.query(`DROP TABLE IF EXISTS gateway.outbox`);
    await q.query(`DROP TABLE IF EXISTS gateway.runs`);
  }
}
