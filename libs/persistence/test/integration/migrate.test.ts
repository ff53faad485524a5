import { Client } from 'pg';
import { createTestDatabase, type TestDatabase } from '@aob/testing';
import { migrate } from '@aob/persistence';

describe('migrate', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase('aob_migrate');
  });
  afterAll(async () => db.drop());

  it('created the database and every schema and table', async () => {
    const c = new Client({ connectionString: db.url });
    await c.connect();
    const { rows } = await c.query<{ t: string }>(
      `SELECT table_schema || '.' || table_name AS t FROM information_schema.tables
        WHERE table_schema IN ('gateway','executor','dlq','metering','auth') ORDER BY 1`,
    );
    await c.end();
    expect(rows.map((r) => r.t)).toEqual([
      'auth.api_keys',
      'auth.audit_log',
      'dlq.dead_letters',
      'dlq.terminations',
      'executor.agents',
      'executor.checkpoints',
      'executor.runs',
      'gateway.outbox',
      'gateway.runs',
      'metering.tenant_quotas',
      'metering.usage_daily',
      'metering.usage_records',
    ]);
  });

  it('is idempotent: a second run applies nothing and creates nothing', async () => {
    const again = await migrate(db.url);
    expect(again).toEqual({ createdDatabase: false, applied: [] });
  });
});
