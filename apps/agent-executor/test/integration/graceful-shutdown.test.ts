import { waitFor } from '@aob/testing';
import { ExecutorFixture } from '../support/executor-fixture';

jest.setTimeout(90_000);

describe('agent-executor graceful shutdown', () => {
  let f: ExecutorFixture;

  beforeAll(async () => {
    f = await ExecutorFixture.create();
  });

  afterAll(async () => {
    await f?.close();
  });

  const startedEvent = (runId: string) =>
    waitFor(
      async () => (await f.statusEvents(runId)).some((e) => e.type === 'aob.agent.started.v1'),
      { what: `run ${runId} to start` },
    );

  it('lets an in-flight run finish before it closes', async () => {
    const app = await f.startApp({ SHUTDOWN_GRACE_MS: '10000' });
    const runId = await f.publishExecute({
      agent: 'echo',
      input: { message: 'finish me', delayMs: 1_500 },
    });
    await startedEvent(runId);
    await app.close();
    expect(await f.runRow(runId)).toMatchObject({ status: 'completed', attempts: 1 });
    expect((await f.terminalEvent(runId, 1_000)).type).toBe('aob.agent.completed.v1');
  });

  it('hands a run that outlasts the grace period back, and the next worker completes it', async () => {
    const app = await f.startApp({ SHUTDOWN_GRACE_MS: '300' });
    const runId = await f.publishExecute({
      agent: 'echo',
      input: { message: 'later', delayMs: 10_000 },
    });
    await startedEvent(runId);
    const closing = Date.now();
    await app.close();
    // Well before the run's 10 s (the transport's own shutdown takes a few seconds on its own).
    expect(Date.now() - closing).toBeLessThan(8_000);
    // Released, not failed: the lease is given up so the next worker claims the run at once.
    expect(await f.runRow(runId)).toMatchObject({ status: 'running', lease_owner: null });

    const next = await f.startApp();
    try {
      const done = await f.terminalEvent(runId, 30_000);
      expect(done.type).toBe('aob.agent.completed.v1');
      expect(done.data.attempts).toBeGreaterThanOrEqual(2);
    } finally {
      await next.close();
    }
  });
});
