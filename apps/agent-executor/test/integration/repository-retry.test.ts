import { createDataSource, type ConnectionRetry, type DataSource } from '@aob/persistence';
import { createTestDatabase, waitFor, type TestDatabase } from '@aob/testing';
import { Client } from 'pg';
import { CheckpointRepository } from '../../src/runs/checkpoint.repository';
import { ExecutorRunRepository } from '../../src/runs/executor-run.repository';

jest.setTimeout(60_000);

/**
 * The executor's statements are retried after a lost connection, and the connection may have been
 * lost after the server committed: the repeat must answer as the first attempt would have. Each
 * test makes that happen for real: the test holds a lock on the run row, so the repository's
 * statement waits; the test terminates that backend (57P01, a connection-class error: the
 * repository retries), applies what the first attempt would have committed in its own transaction
 * and commits, and the retried statement then finds it.
 */
describe('executor repositories: retried statements are idempotent', () => {
  let db: TestDatabase;
  let ds: DataSource;
  let admin: Client;
  let runs: ExecutorRunRepository;
  let checkpoints: CheckpointRepository;

  beforeAll(async () => {
    db = await createTestDatabase('aob_exec_retry');
    ds = createDataSource({ url: db.url, poolSize: 2, applicationName: 'repo-under-test' });
    await ds.initialize();
    admin = new Client({ connectionString: db.url });
    await admin.connect();
    runs = new ExecutorRunRepository(ds);
    checkpoints = new CheckpointRepository(ds);
  });

  afterAll(async () => {
    await admin?.end();
    await ds?.destroy();
    await db?.drop();
  });

  const retries: number[] = [];
  const retry = (): ConnectionRetry => ({
    signal: new AbortController().signal,
    baseDelayMs: 50,
    maxDelayMs: 100,
    onRetry: (_err, attempt) => retries.push(attempt),
  });

  /**
   * Runs `statement` while the test holds the run row locked; once the statement waits on the
   * lock, its backend is terminated, `firstAttempt` commits in the test's transaction, and the lock
   * is released. Returns what the (retried) statement answered.
   */
  async function cutAfterCommit<T>(
    runId: string,
    statement: () => Promise<T>,
    firstAttempt: (c: Client) => Promise<unknown>,
  ): Promise<T> {
    const before = retries.length;
    await admin.query('BEGIN');
    await admin.query('SELECT 1 FROM executor.runs WHERE run_id = $1 FOR UPDATE', [runId]);
    const result = statement();
    let pid = 0;
    await waitFor(
      async () => {
        const { rows } = await admin.query<{ pid: number }>(
          `SELECT pid FROM pg_stat_activity
            WHERE application_name = 'repo-under-test' AND wait_event_type = 'Lock'`,
        );
        pid = rows[0]?.pid ?? 0;
        return pid !== 0;
      },
      { what: 'the statement to wait on the lock', intervalMs: 20 },
    );
    await admin.query('SELECT pg_terminate_backend($1)', [pid]);
    await firstAttempt(admin);
    await admin.query('COMMIT');
    const answer = await result;
    expect(retries.length).toBeGreaterThan(before);
    return answer;
  }

  const claimInput = (runId: string, leaseOwner: string) => ({
    tenantId: 'tenant-a',
    runId,
    agent: 'echo',
    threadId: runId,
    eventId: runId,
    input: {},
    attempts: 1,
    replay: 0,
    leaseOwner,
    leaseTtlMs: 30_000,
    streamSeq: 7,
  });

  async function insertRun(runId: string, leaseOwner: string | null, attempts = 1) {
    await admin.query(
      `INSERT INTO executor.runs (run_id, tenant_id, agent, thread_id, status, event_id, input, attempts,
                                  lease_owner, lease_expires_at)
       VALUES ($1, 'tenant-a', 'echo', $1, 'running', $1, '{}'::jsonb, $2, $3::text,
               CASE WHEN $3::text IS NULL THEN NULL ELSE now() + interval '30 seconds' END)`,
      [runId, attempts, leaseOwner],
    );
  }

  it('claim: a repeat by the same lease owner claims the run again, attempts counted once', async () => {
    const runId = `claim-${Date.now()}`;
    await insertRun(runId, null, 2);
    const claim = await cutAfterCommit(
      runId,
      () => runs.claim(claimInput(runId, 'p/1'), retry()),
      // what the first attempt committed: the lease taken, attempts 2 → 3
      (c) =>
        c.query(
          `UPDATE executor.runs SET lease_owner = 'p/1', lease_expires_at = now() + interval '30 seconds',
                  attempts = 3, lease_seq = 7 WHERE run_id = $1`,
          [runId],
        ),
    );
    expect(claim).toMatchObject({ kind: 'claimed', attempt: 3, hasCheckpoints: false });
    const { rows } = await admin.query(
      'SELECT attempts, lease_owner, lease_seq FROM executor.runs WHERE run_id = $1',
      [runId],
    );
    expect(rows[0]).toEqual({ attempts: 3, lease_owner: 'p/1', lease_seq: '7' });

    // Another owner still finds it busy; the same message's delivery is told so.
    expect(await runs.claim(claimInput(runId, 'p/2'))).toMatchObject({
      kind: 'busy',
      sameMessage: true,
    });
    expect(await runs.claim({ ...claimInput(runId, 'p/3'), streamSeq: 8 })).toMatchObject({
      kind: 'busy',
      sameMessage: false,
    });
  });

  it('checkpoint save: a repeat finds its own step written under its lease and returns it', async () => {
    const runId = `save-${Date.now()}`;
    await insertRun(runId, 'p/1');
    const step = {
      tenantId: 'tenant-a',
      threadId: runId,
      runId,
      step: 1,
      stepId: `${runId}.s1`,
      state: { a: 1 },
      output: 'one',
    };
    let committedId = '';
    const saved = await cutAfterCommit(
      runId,
      () => checkpoints.save(step, 'p/1', 30_000, retry()),
      async (c) => {
        const { rows } = await c.query<{ checkpoint_id: string }>(
          `INSERT INTO executor.checkpoints (tenant_id, thread_id, run_id, step, step_id, state, output)
           VALUES ('tenant-a', $1, $1, 1, $2, '{"a":1}'::jsonb, '"one"'::jsonb) RETURNING checkpoint_id`,
          [runId, step.stepId],
        );
        committedId = rows[0]!.checkpoint_id;
      },
    );
    expect(saved.checkpointId).toBe(committedId);

    // Without a lease the same situation is a lost lease, as before.
    await admin.query(`UPDATE executor.runs SET lease_owner = 'p/9' WHERE run_id = $1`, [runId]);
    await expect(checkpoints.save(step, 'p/1', 30_000, retry())).rejects.toThrow(
      'no longer leased',
    );
  });

  it('finish: a repeat finds the run finished with exactly its outcome and returns its finish time', async () => {
    const runId = `finish-${Date.now()}`;
    await insertRun(runId, 'p/1');
    const terminal = {
      status: 'completed' as const,
      eventId: `${runId}.completed`,
      eventType: 'aob.agent.completed.v1',
      result: { runId, output: { echo: 'x' }, durationMs: 12 },
      attempts: 1,
    };
    const last = {
      threadId: runId,
      step: 2,
      stepId: `${runId}.s2`,
      state: null,
      output: 'two',
    };
    let committed: { finished_at: Date; checkpoint_id: string } | undefined;
    const finished = await cutAfterCommit(
      runId,
      () => runs.finish('tenant-a', runId, 'p/1', terminal, last, retry()),
      async (c) => {
        const { rows } = await c.query<{ finished_at: Date; checkpoint_id: string }>(
          `WITH done AS (
             UPDATE executor.runs SET status = 'completed', result_event_id = $2, result_type = $3,
                    result = $4::jsonb, finished_at = now(), lease_owner = NULL, lease_expires_at = NULL
              WHERE run_id = $1 RETURNING finished_at),
           saved AS (
             INSERT INTO executor.checkpoints (tenant_id, thread_id, run_id, step, step_id, state, output)
             SELECT 'tenant-a', $1, $1, 2, $5, 'null'::jsonb, '"two"'::jsonb FROM done RETURNING checkpoint_id)
           SELECT done.finished_at, saved.checkpoint_id FROM done CROSS JOIN saved`,
          [
            runId,
            terminal.eventId,
            terminal.eventType,
            JSON.stringify(terminal.result),
            last.stepId,
          ],
        );
        committed = rows[0];
      },
    );
    expect(finished).toEqual({
      finishedAt: committed!.finished_at,
      checkpointId: committed!.checkpoint_id,
    });

    // A different outcome stored by someone else is not taken for ours: the lease was lost.
    const other = `${runId}-other`;
    await insertRun(other, 'p/1');
    const answer = await cutAfterCommit(
      other,
      () =>
        runs.finish(
          'tenant-a',
          other,
          'p/1',
          { ...terminal, eventId: `${other}.completed` },
          undefined,
          retry(),
        ),
      (c) =>
        c.query(
          `UPDATE executor.runs SET status = 'completed', result_event_id = $2, result_type = 'x',
                  result = '{"other":true}'::jsonb, finished_at = now(), lease_owner = NULL
            WHERE run_id = $1`,
          [other, `${other}.completed`],
        ),
    );
    expect(answer).toBeNull();
  });
});
