import { startPostgresServer, waitFor, type TestPostgresServer } from '@aob/testing';
import type { INestApplication } from '@nestjs/common';
import { executorMetrics } from '../../src/runs/executor.metrics';
import { ExecutorFixture } from '../support/executor-fixture';

jest.setTimeout(90_000);

/**
 * Postgres outages must not spend deliveries: a delivery waits the outage out (holding its message)
 * and carries on, and a redelivery of a message whose earlier delivery left its lease behind takes
 * the run over once that lease ends instead of answering `busy` (and, on its last delivery,
 * dropping the message). A private Postgres server, so it can be stopped.
 */
describe('agent-executor through a Postgres outage', () => {
  let pgServer: TestPostgresServer;
  let f: ExecutorFixture;
  let app: INestApplication;

  beforeAll(async () => {
    pgServer = await startPostgresServer();
    f = await ExecutorFixture.create({ databaseServerUrl: pgServer.url });
    // The fixture's own idle connections die with the server: not a test failure.
    f.pg.on('error', () => undefined);
    app = await f.startApp();
  });

  afterAll(async () => {
    await app?.close().catch(() => undefined);
    await f?.close();
    await pgServer?.destroy();
  });

  const delivered = async () =>
    (await f.jsm.consumers.info('AGENT_EXECUTION', 'agent-executor-workers')).delivered
      .consumer_seq;
  const retries = async () =>
    (await executorMetrics().dependencyRetries.get()).values.reduce((n, v) => n + v.value, 0);

  it('takes over the lease an earlier delivery of the same message left behind, in one delivery', async () => {
    const runId = `lease-left-${Date.now()}`;
    const seq = (await f.jsm.streams.info('AGENT_EXECUTION')).state.last_seq + 1;
    // What a delivery of this message that died while Postgres was down leaves: a live lease.
    await f.pg.query(
      `INSERT INTO executor.runs (run_id, tenant_id, agent, thread_id, status, event_id, input, attempts,
                                  lease_owner, lease_expires_at, lease_seq)
       VALUES ($1, 'tenant-a', 'echo', $1, 'running', $1, '{}'::jsonb, 1, 'gone/1',
               now() + interval '2 seconds', $2)`,
      [runId, seq],
    );
    const before = await delivered();
    await f.publishExecute(
      { runId, agent: 'echo', input: { message: 'taken over' } },
      { id: runId },
    );
    const done = await f.terminalEvent(runId, 20_000);
    expect(done.type).toBe('aob.agent.completed.v1');
    expect(done.data).toMatchObject({ output: { echo: 'taken over' }, attempts: 2 });
    // Before the fix: `busy`, nak'd every second until the lease ran out (three deliveries or more).
    expect((await delivered()) - before).toBe(1);
    expect(await f.runRow(runId)).toMatchObject({ status: 'completed', lease_owner: null });
  });

  it('a run in flight waits out a 4 s outage and completes on its first delivery', async () => {
    const retriesBefore = await retries();
    const before = await delivered();
    const runId = await f.publishExecute({
      agent: 'echo',
      input: { message: 'outlasted', steps: 3, delayMs: 400 },
    });
    await waitFor(
      async () => (await f.statusEvents(runId)).some((e) => e.type === 'aob.agent.step.v1'),
      { what: 'the first step' },
    );
    await pgServer.stop('immediate');
    // With the fixture's retry backoff (50–200 ms) the five deliveries were spent in about a second.
    await new Promise((r) => setTimeout(r, 4_000));
    await pgServer.start();

    const done = await f.terminalEvent(runId, 30_000);
    expect(done.type).toBe('aob.agent.completed.v1');
    expect(done.data).toMatchObject({ output: { echo: 'outlasted' }, attempts: 1 });
    expect((await delivered()) - before).toBe(1);
    expect(await retries()).toBeGreaterThan(retriesBefore);
    const steps = (await f.statusEvents(runId)).filter((e) => e.type === 'aob.agent.step.v1');
    expect(steps.map((e) => e.data.step)).toEqual([1, 2, 3]);
    expect((await f.checkpoints(runId)).map((c) => c.step)).toEqual([1, 2, 3]);
    expect(await f.runRow(runId)).toMatchObject({
      status: 'completed',
      attempts: 1,
      lease_owner: null,
    });
    await waitFor(() => f.consumerIdle(), { what: 'the consumer to settle' });
  });
});
