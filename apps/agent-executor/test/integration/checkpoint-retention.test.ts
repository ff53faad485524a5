import type { INestApplication } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import { DataSource } from '@aob/persistence';
import { loadExecutorConfig } from '../../src/config';
import { CHECKPOINT_PRUNE_BATCH, CheckpointPruner } from '../../src/runs/checkpoint-pruner';
import { ExecutorFixture } from '../support/executor-fixture';

jest.setTimeout(60_000);

const DAY_MS = 86_400_000;

/**
 * The retention job against real Postgres: rows are written straight into executor.runs and
 * executor.checkpoints with chosen ages, then one pass of the pruner of a booted executor runs.
 */
describe('checkpoint retention (fresh database)', () => {
  let f: ExecutorFixture;
  let app: INestApplication;
  let pruner: CheckpointPruner;

  beforeAll(async () => {
    f = await ExecutorFixture.create();
    // the periodic timer is off: the test drives passes itself
    app = await f.startApp({ CHECKPOINT_PRUNE_INTERVAL_MS: '0' });
    pruner = app.get(CheckpointPruner);
  });

  afterAll(async () => {
    await app?.close();
    await f?.close();
  });

  beforeEach(async () => {
    await f.pg.query('DELETE FROM executor.checkpoints');
    await f.pg.query('DELETE FROM executor.runs');
  });

  async function run(
    runId: string,
    status: 'running' | 'completed' | 'failed' | 'cancelled',
    threadId: string,
    tenantId = 'tenant-a',
  ): Promise<void> {
    await f.pg.query(
      `INSERT INTO executor.runs (run_id, tenant_id, agent, thread_id, status, event_id, finished_at)
       VALUES ($1, $2, 'echo', $3, $4, $1, CASE WHEN $4 = 'running' THEN NULL ELSE now() END)`,
      [runId, tenantId, threadId, status],
    );
  }

  /** Checkpoints 1..steps of a run, the last one `ageDays` old, each earlier one a minute older. */
  async function checkpoints(
    runId: string,
    threadId: string,
    steps: number,
    ageDays: number,
    tenantId = 'tenant-a',
  ): Promise<void> {
    await f.pg.query(
      `INSERT INTO executor.checkpoints (tenant_id, thread_id, run_id, step, step_id, state, output, created_at)
       SELECT $1, $2, $3, s, 'step-' || s, '{}'::jsonb, to_jsonb(s),
              now() - $5 * interval '1 day' - ($4 - s) * interval '1 minute'
         FROM generate_series(1, $4::int) s`,
      [tenantId, threadId, runId, steps, ageDays],
    );
  }

  const remaining = async () =>
    (
      await f.pg.query<{ k: string }>(
        `SELECT tenant_id || '/' || run_id || '#' || step AS k FROM executor.checkpoints ORDER BY 1`,
      )
    ).rows.map((r) => r.k);

  const prunedMetric = async (): Promise<number> => {
    const { port } = app.getHttpServer().address() as AddressInfo;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const m = /^aob_executor_checkpoints_pruned_total (\d+)/m.exec(text);
    return m ? Number(m[1]) : 0;
  };

  it('prunes old checkpoints of finished runs, keeps the newest per thread, the recent ones and every one of a running run', async () => {
    // thread t1: two finished runs, 10 and 9 days old -> only the newest checkpoint of the thread stays
    await run('a1', 'completed', 't1');
    await checkpoints('a1', 't1', 3, 10);
    await run('a2', 'failed', 't1');
    await checkpoints('a2', 't1', 2, 9);
    // thread t2: a finished run 10 days old, then a run still running (its checkpoints also old):
    // the running run keeps all, the finished one keeps its newest (the thread's newest finished)
    await run('b1', 'completed', 't2');
    await checkpoints('b1', 't2', 3, 10);
    await run('b2', 'running', 't2');
    await checkpoints('b2', 't2', 2, 8);
    // thread t3: recent (1 day) -> untouched
    await run('c1', 'completed', 't3');
    await checkpoints('c1', 't3', 3, 1);
    // tenant-b's thread of the same id t1 is a thread of its own
    await run('d1', 'cancelled', 't1', 'tenant-b');
    await checkpoints('d1', 't1', 2, 30, 'tenant-b');
    const before = await prunedMetric();

    expect(await pruner.prune()).toBe(2 + 2 + 2 + 1);

    expect(await remaining()).toEqual([
      'tenant-a/a2#2',
      'tenant-a/b1#3',
      'tenant-a/b2#1',
      'tenant-a/b2#2',
      'tenant-a/c1#1',
      'tenant-a/c1#2',
      'tenant-a/c1#3',
      'tenant-b/d1#2',
    ]);
    expect((await prunedMetric()) - before).toBe(7);
    // a second pass finds nothing more
    expect(await pruner.prune()).toBe(0);
  });

  it('keeps the latest N of each thread when told to keep more', async () => {
    await run('a1', 'completed', 't1');
    await checkpoints('a1', 't1', 4, 20);
    await run('a2', 'completed', 't1');
    await checkpoints('a2', 't1', 1, 10);
    const config = loadExecutorConfig(f.env({ CHECKPOINT_KEEP_LATEST: '3' }));
    const keep3 = new CheckpointPruner(app.get(DataSource), config);
    expect(await keep3.prune()).toBe(2);
    expect(await remaining()).toEqual(['tenant-a/a1#3', 'tenant-a/a1#4', 'tenant-a/a2#1']);
  });

  it('works through more rows than one batch, and two replicas at once delete each row once', async () => {
    const steps = CHECKPOINT_PRUNE_BATCH * 2 + 500;
    for (const t of ['t1', 't2']) {
      await run(`big-${t}`, 'completed', t);
      await checkpoints(`big-${t}`, t, steps, 8);
    }
    const other = new CheckpointPruner(app.get(DataSource), loadExecutorConfig(f.env()));
    const [x, y] = await Promise.all([pruner.prune(), other.prune()]);
    // whatever one replica skipped (locked by the other) the next pass of either takes
    const rest = await pruner.prune();
    expect(x + y + rest).toBe(2 * (steps - 1));
    expect(await remaining()).toEqual([`tenant-a/big-t1#${steps}`, `tenant-a/big-t2#${steps}`]);
  });

  it('walks past old rows it must keep (more than a batch, equal timestamps) to the ones that go', async () => {
    // 2,500 threads whose only checkpoint is old (kept: the newest of its thread), all written at
    // the same instant, then a run whose older steps may go
    const kept = CHECKPOINT_PRUNE_BATCH * 2 + 500;
    await f.pg.query(
      `INSERT INTO executor.runs (run_id, tenant_id, agent, thread_id, status, event_id)
       SELECT 'k' || i, 'tenant-a', 'echo', 'kt' || i, 'completed', 'k' || i FROM generate_series(1, $1::int) i`,
      [kept],
    );
    await f.pg.query(
      `INSERT INTO executor.checkpoints (tenant_id, thread_id, run_id, step, created_at)
       SELECT 'tenant-a', 'kt' || i, 'k' || i, 1, now() - interval '20 days' FROM generate_series(1, $1::int) i`,
      [kept],
    );
    await run('late', 'completed', 'late-thread');
    await checkpoints('late', 'late-thread', 3, 10);
    expect(await pruner.prune()).toBe(2);
    const { rows } = await f.pg.query<{ n: string }>(
      'SELECT count(*) AS n FROM executor.checkpoints',
    );
    expect(Number(rows[0]!.n)).toBe(kept + 1);
  });

  it('ages out the checkpoints of a real run, keeping its last step', async () => {
    const runId = await f.publishExecute({
      agent: 'echo',
      input: { message: 'old', steps: 3 },
      threadId: 'real-thread',
    });
    expect((await f.terminalEvent(runId)).type).toBe('aob.agent.completed.v1');
    expect((await f.checkpoints(runId)).map((c) => c.step)).toEqual([1, 2, 3]);
    // nothing is old yet
    expect(await pruner.prune()).toBe(0);
    // eight days later
    expect(await pruner.prune(new Date(Date.now() + 8 * DAY_MS))).toBe(2);
    expect((await f.checkpoints(runId)).map((c) => c.step)).toEqual([3]);
  });
});
