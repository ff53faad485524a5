import { createDataSource, type DataSource } from '@aob/persistence';
import { createTestDatabase, type TestDatabase } from '@aob/testing';
import { ExecutorRunRepository, type ClaimInput } from '../../src/runs/executor-run.repository';

jest.setTimeout(60_000);

/**
 * Claims issued in the same turn of the event loop go to Postgres as one statement. Each claim
 * must still be answered as if it had been made alone: the same run twice in one turn, a row
 * Postgres refuses, and runs in every state next to each other.
 */
describe('executor claims: batched, answered one by one', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let runs: ExecutorRunRepository;

  beforeAll(async () => {
    db = await createTestDatabase('aob_exec_claims');
    // one connection: pg_prepared_statements below sees the statements the claims prepared
    ds = createDataSource({ url: db.url, poolSize: 1, applicationName: 'claims-under-test' });
    await ds.initialize();
    runs = new ExecutorRunRepository(ds);
  });

  afterAll(async () => {
    await ds?.destroy();
    await db?.drop();
  });

  const claim = (runId: string, owner: string, over: Partial<ClaimInput> = {}): ClaimInput => ({
    tenantId: 'tenant-a',
    runId,
    agent: 'echo',
    threadId: runId,
    eventId: runId,
    input: { runId },
    attempts: 1,
    replay: 0,
    leaseOwner: owner,
    leaseTtlMs: 30_000,
    ...over,
  });

  it('claims many runs in one turn and tells each caller its own outcome', async () => {
    // a finished run and a leased one, made beforehand
    expect((await runs.claim(claim('b-done', 'setup/1'))).kind).toBe('claimed');
    expect(
      await runs.finish('tenant-a', 'b-done', 'setup/1', {
        status: 'completed',
        eventId: 'b-done.completed',
        eventType: 'aob.agent.completed.v1',
        result: { ok: true },
        attempts: 1,
      }),
    ).not.toBeNull();
    expect((await runs.claim(claim('b-held', 'setup/2'))).kind).toBe('claimed');

    const results = await Promise.all([
      runs.claim(claim('b-new-1', 'turn/1')),
      runs.claim(claim('b-new-2', 'turn/2', { attempts: 3 })),
      runs.claim(claim('b-done', 'turn/3')),
      runs.claim(claim('b-held', 'turn/4', { streamSeq: 9 })),
      runs.claim(claim('b-new-1', 'turn/5')), // the same run again, in the same turn
      runs.claim(claim('b-held', 'turn/6', { tenantId: 'tenant-b' })),
      runs.claim(claim('b-new-3', 'turn/7', { agent: 'chat' })),
    ]);
    expect(results.map((r) => r.kind)).toEqual([
      'claimed',
      'claimed',
      'terminal',
      'busy',
      'busy',
      'conflict',
      'claimed',
    ]);
    expect(results[1]).toMatchObject({ kind: 'claimed', attempt: 3, hasCheckpoints: false });
    const stored: { run_id: string; lease_owner: string | null; agent: string }[] = await ds.query(
      `SELECT run_id, lease_owner, agent FROM executor.runs WHERE run_id LIKE 'b-%' ORDER BY run_id`,
    );
    expect(stored).toEqual([
      { run_id: 'b-done', lease_owner: null, agent: 'echo' },
      { run_id: 'b-held', lease_owner: 'setup/2', agent: 'echo' },
      { run_id: 'b-new-1', lease_owner: 'turn/1', agent: 'echo' },
      { run_id: 'b-new-2', lease_owner: 'turn/2', agent: 'echo' },
      { run_id: 'b-new-3', lease_owner: 'turn/7', agent: 'chat' },
    ]);
    // the batch really was one statement
    const prepared: { name: string }[] = await ds.query(
      `SELECT name FROM pg_prepared_statements WHERE name = 'executor_run_claim_batch'`,
    );
    expect(prepared.length).toBeGreaterThan(0);
  });

  it('answers the others when Postgres refuses one row of the batch', async () => {
    const results = await Promise.allSettled([
      runs.claim(claim('r-ok-1', 'bad/1')),
      // jsonb refuses \u0000: the batch fails, each claim is then made alone
      runs.claim(claim('r-bad', 'bad/2', { input: { text: 'nul \u0000 byte' } })),
      runs.claim(claim('r-ok-2', 'bad/3')),
    ]);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/unicode|\\u0000/i);
    const stored: { run_id: string }[] = await ds.query(
      `SELECT run_id FROM executor.runs WHERE run_id LIKE 'r-%' ORDER BY run_id`,
    );
    expect(stored.map((r) => r.run_id)).toEqual(['r-ok-1', 'r-ok-2']);
  });
});
