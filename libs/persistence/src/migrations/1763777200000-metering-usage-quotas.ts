import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Metering: raw usage records (audit, and the idempotency key of ingestion), daily aggregates per
 * tenant x model x deployment x agent, and per-tenant quota overrides.
 */
export class MeteringUsageQuotas1763777200000 implements MigrationInterface {
  name = 'MeteringUsageQuotas1763777200000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE SCHEMA IF NOT EXISTS metering`);
    // (source, event_id) is the CloudEvent identity: a redelivered or republished usage event
    // conflicts here and is counted once, however long after the JetStream duplicate window.
    await q.query(`
      CREATE TABLE metering.usage_records (
        source text NOT NULL,
        event_id text NOT NULL,
        tenant_id text NOT NULL,
        run_id text,
        agent text,
        requested text,
        model text NOT NULL,
        deployment text NOT NULL,
        prompt_tokens bigint NOT NULL,
        completion_tokens bigint NOT NULL,
        cost_usd numeric NOT NULL,
        latency_ms double precision NOT NULL,
        occurred_at timestamptz NOT NULL,
        received_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (source, event_id)
      )`);
    await q.query(
      `CREATE INDEX usage_records_received_idx ON metering.usage_records (received_at)`,
    );
    await q.query(
      `CREATE INDEX usage_records_tenant_occurred_idx ON metering.usage_records (tenant_id, occurred_at)`,
    );
    // agent '' = usage outside any run: the key columns stay NOT NULL so the upsert key is plain.
    await q.query(`
      CREATE TABLE metering.usage_daily (
        tenant_id text NOT NULL,
        day date NOT NULL,
        model text NOT NULL,
        deployment text NOT NULL,
        agent text NOT NULL DEFAULT '',
        requests bigint NOT NULL DEFAULT 0,
        prompt_tokens bigint NOT NULL DEFAULT 0,
        completion_tokens bigint NOT NULL DEFAULT 0,
        total_tokens bigint NOT NULL DEFAULT 0,
        cost_usd numeric NOT NULL DEFAULT 0,
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (tenant_id, day, model, deployment, agent)
      )`);
    // NULL = the environment's default applies; 0 = unlimited.
    await q.query(`
      CREATE TABLE metering.tenant_quotas (
        tenant_id text PRIMARY KEY,
        requests_per_second double precision CHECK (requests_per_second >= 0),
        burst integer CHECK (burst >= 0),
        tokens_per_minute bigint CHECK (tokens_per_minute >= 0),
        monthly_budget_usd numeric CHECK (monthly_budget_usd >= 0),
        updated_by text,
        updated_at timestamptz NOT NULL DEFAULT now()
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE IF EXISTS metering.tenant_quotas`);
    await q.query(`DROP TABLE IF EXISTS metering.usage_daily`);
    await q.query(`DROP TABLE IF EXISTS metering.usage_records`);
  }
}
