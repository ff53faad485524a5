import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Schema `auth`: stored API keys (hash only, never the key) and the audit log of authorization
 * denials and admin actions.
 */
export class AuthApiKeysAuditLog1763777100000 implements MigrationInterface {
  name = 'AuthApiKeysAuditLog1763777100000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`CREATE SCHEMA IF NOT EXISTS auth`);
    await q.query(`
      CREATE TABLE auth.api_keys (
        id uuid PRIMARY KEY,
        tenant_id text NOT NULL,
        name text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
        prefix text NOT NULL UNIQUE CHECK (prefix ~ '^[0-9a-f]{8}$'),
        key_hash bytea NOT NULL CHECK (octet_length(key_hash) = 32),
        role text NOT NULL CHECK (role IN ('admin','developer','executor','viewer')),
        scopes text[],
        created_by text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz,
        last_used_at timestamptz,
        revoked_at timestamptz,
        revoked_by text
      )`);
    // listing: a tenant's live keys, newest first (keyset pagination on created_at, id)
    await q.query(
      `CREATE INDEX api_keys_tenant_created_idx ON auth.api_keys (tenant_id, created_at DESC, id DESC) WHERE revoked_at IS NULL`,
    );
    await q.query(`
      CREATE TABLE auth.audit_log (
        id bigserial PRIMARY KEY,
        at timestamptz NOT NULL DEFAULT now(),
        actor text NOT NULL,
        actor_kind text NOT NULL,
        tenant_id text NOT NULL,
        action text NOT NULL,
        resource text NOT NULL,
        decision text NOT NULL CHECK (decision IN ('allow','deny')),
        reason text,
        details jsonb,
        request_id text
      )`);
    await q.query(`CREATE INDEX audit_log_tenant_at_idx ON auth.audit_log (tenant_id, at DESC)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE IF EXISTS auth.audit_log`);
    await q.query(`DROP TABLE IF EXISTS auth.api_keys`);
    await q.query(`DROP SCHEMA IF EXISTS auth`);
  }
}
