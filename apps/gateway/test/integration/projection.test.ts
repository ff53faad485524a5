import { jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import {
  connectNats,
  CONSUMERS,
  EventPublisher,
  STREAMS,
  type EventData,
  type EventKey,
} from '@aob/events';
import { startNatsServer, waitFor, type TestNatsServer } from '@aob/testing';
import { startHarness, TENANT, withPg, type GatewayHarness } from './gateway-harness';

jest.setTimeout(60_000);

const OTHER_TENANT = 'tenant-b';
const usage = { promptTokens: 3, completionTokens: 4, totalTokens: 7, costUsd: 0.0001 };

describe('gateway: run projection, lists, threads, tenancy', () => {
  let nats: TestNatsServer;
  let gw: GatewayHarness;
  let nc: NatsConnection;
  let executor: EventPublisher;
  let jsm: JetStreamManager;

  beforeAll(async () => {
    nats = await startNatsServer();
    gw = await startHarness(nats.url);
    nc = await connectNats({ url: nats.url, name: 'fake-executor' });
    executor = new EventPublisher(jetstream(nc), 'aob://agent-executor');
    jsm = await jetstreamManager(nc);
  });

  /** Every status event published so far has been handled and acknowledged by the projection. */
  const projectionCaughtUp = () =>
    waitFor(
      async () => {
        const stream = await jsm.streams.info(STREAMS.AGENT_STATUS.name);
        const c = await jsm.consumers.info(
          STREAMS.AGENT_STATUS.name,
          CONSUMERS.gatewayRunStatus.durable,
        );
        return (
          c.ack_floor.stream_seq >= stream.state.last_seq &&
          c.num_ack_pending === 0 &&
          c.num_pending === 0
        );
      },
      { what: 'projection caught up' },
    );

  afterAll(async () => {
    await nc?.close();
    await gw?.close();
    await nats?.stop();
  });

  /** Publishes a status event the way the executor does (ids of the cross-app facts). */
  const emit = <K extends EventKey>(key: K, id: string, data: EventData<K>, tenantId = TENANT) =>
    executor.publish(key, data, { id, tenantId, ceSubject: (data as { runId: string }).runId });

  const submit = async (json: Record<string, unknown>) => {
    const res = await gw.request('/v1/runs', { method: 'POST', json });
    expect(res.status).toBe(202);
    return ((await res.json()) as { runId: string }).runId;
  };

  const getRun = async (runId: string) =>
    (await gw.request(`/v1/runs/${runId}`)).json() as Promise<Record<string, unknown>>;
  const waitForRun = (
    runId: string,
    check: (run: Record<string, unknown>) => boolean,
    what: string,
  ) => waitFor(async () => check(await getRun(runId)), { what, timeoutMs: 10_000 });

  it('moves a submitted run through running to completed', async () => {
    const runId = await submit({ agent: 'echo', input: { message: 'hi' } });
    await emit('agentStarted', `${runId}.started.1`, {
      runId,
      agent: 'echo',
      threadId: runId,
      attempt: 1,
    });
    await waitForRun(runId, (r) => r.status === 'running' && r.attempts === 1, 'running');
    await emit('agentStep', `${runId}.step.1`, {
      runId,
      agent: 'echo',
      threadId: runId,
      step: 1,
      checkpointId: 'c1',
    });
    await emit('agentCompleted', `${runId}.completed`, {
      runId,
      agent: 'echo',
      threadId: runId,
      output: { echo: 'hi' },
      usage,
      attempts: 1,
      durationMs: 42,
    });
    await waitForRun(runId, (r) => r.status === 'completed', 'completed');
    expect(await getRun(runId)).toMatchObject({
      status: 'completed',
      input: { message: 'hi' },
      output: { echo: 'hi' },
      usage,
      attempts: 1,
      durationMs: 42,
    });
  });

  it('is order-tolerant and idempotent: a late started never undoes completed, duplicates are harmless', async () => {
    const runId = await submit({ agent: 'echo', input: {} });
    const completed = {
      runId,
      agent: 'echo',
      threadId: runId,
      output: 'done',
      usage,
      attempts: 2,
      durationMs: 5,
    };
    await emit('agentCompleted', `${runId}.completed`, completed);
    await waitForRun(runId, (r) => r.status === 'completed', 'completed first');
    // publishes with other ids, so JetStream does not de-duplicate them: the projection must
    await emit('agentStarted', `${runId}.started.1`, {
      runId,
      agent: 'echo',
      threadId: runId,
      attempt: 1,
    });
    await emit('agentStarted', `${runId}.started.3`, {
      runId,
      agent: 'echo',
      threadId: runId,
      attempt: 3,
    });
    await emit('agentCompleted', `${runId}.completed-again`, { ...completed, output: 'other' });
    await emit('agentFailed', `${runId}.failed`, {
      runId,
      agent: 'echo',
      threadId: runId,
      error: { code: 'AgentFailed', message: 'late', retryable: false },
      attempts: 3,
      deadLettered: true,
    });
    await projectionCaughtUp();
    expect(await getRun(runId)).toMatchObject({ status: 'completed', output: 'done', attempts: 2 });
  });

  it('records failures with the error and attempts', async () => {
    const runId = await submit({ agent: 'echo', input: { fail: 'permanent' } });
    await emit('agentStarted', `${runId}.started.1`, {
      runId,
      agent: 'echo',
      threadId: runId,
      attempt: 1,
    });
    await emit('agentFailed', `${runId}.failed`, {
      runId,
      agent: 'echo',
      threadId: runId,
      error: { code: 'AgentFailed', message: 'permanent failure', retryable: false },
      attempts: 1,
      deadLettered: false,
    });
    await waitForRun(runId, (r) => r.status === 'failed', 'failed');
    expect(await getRun(runId)).toMatchObject({
      status: 'failed',
      attempts: 1,
      error: {
        code: 'AgentFailed',
        message: 'permanent failure',
        retryable: false,
        deadLettered: false,
      },
    });
  });

  it('reopens a failed run for a dead-letter replay (more attempts), never for a late event', async () => {
    const runId = await submit({ agent: 'echo', input: { fail: 'transient' } });
    const ref = { runId, agent: 'echo', threadId: runId };
    await emit('agentFailed', `${runId}.failed`, {
      ...ref,
      error: { code: 'AgentFailed', message: 'transient', retryable: true },
      attempts: 2,
      deadLettered: true,
    });
    await waitForRun(runId, (r) => r.status === 'failed', 'failed');
    await emit('agentStarted', `${runId}.started.2`, { ...ref, attempt: 2 });
    await projectionCaughtUp();
    expect(await getRun(runId)).toMatchObject({ status: 'failed', attempts: 2 });

    // the replay's delivery: attempt 3
    await emit('agentStarted', `${runId}.started.3`, { ...ref, attempt: 3 });
    await waitForRun(runId, (r) => r.status === 'running', 'reopened');
    expect((await getRun(runId)).error).toBeUndefined();
    await emit('agentCompleted', `${runId}.completed`, {
      ...ref,
      output: 'second life',
      usage,
      attempts: 3,
      durationMs: 9,
    });
    await waitForRun(runId, (r) => r.status === 'completed', 'completed after the replay');
    expect(await getRun(runId)).toMatchObject({ output: 'second life', attempts: 3 });
  });

  it('creates the run of a request submitted straight to the bus from its status events', async () => {
    const runId = 'bus-only-run-1';
    await emit('agentStarted', `${runId}.started.1`, {
      runId,
      agent: 'chat',
      threadId: 'bus-thread',
      attempt: 1,
    });
    await waitFor(async () => (await gw.request(`/v1/runs/${runId}`)).status === 200, {
      what: 'bus-only run',
    });
    expect(await getRun(runId)).toMatchObject({
      runId,
      tenantId: TENANT,
      agent: 'chat',
      threadId: 'bus-thread',
      status: 'running',
      input: null,
      attempts: 1,
    });
  });

  it("never lets an event of one tenant touch another tenant's run, and answers 404 across tenants", async () => {
    const runId = 'tenant-b-run';
    await emit(
      'agentStarted',
      `${runId}.started.1`,
      { runId, agent: 'echo', threadId: 'tb-thread', attempt: 1 },
      OTHER_TENANT,
    );
    await waitFor(
      async () =>
        (
          await withPg(gw.db.url, (pg) =>
            pg.query(`SELECT status FROM gateway.runs WHERE run_id = $1`, [runId]),
          )
        ).rows[0]?.status === 'running',
      { what: 'tenant B run' },
    );
    // the bootstrap key is tenant A: B's run does not exist for it
    expect((await gw.request(`/v1/runs/${runId}`)).status).toBe(404);
    expect((await gw.request(`/v1/runs/${runId}/events`)).status).toBe(404);
    // an event claiming tenant A for B's run is ignored
    await emit('agentCompleted', `${runId}.completed`, {
      runId,
      agent: 'echo',
      threadId: 'tb-thread',
      output: 'stolen',
      usage,
      attempts: 1,
      durationMs: 1,
    });
    await projectionCaughtUp();
    const row = (
      await withPg(gw.db.url, (pg) =>
        pg.query(`SELECT tenant_id, status, output FROM gateway.runs WHERE run_id = $1`, [runId]),
      )
    ).rows[0];
    expect(row).toEqual({ tenant_id: OTHER_TENANT, status: 'running', output: null });
    // B's runs never show in A's list
    const list = (await (await gw.request('/v1/runs?limit=100')).json()) as {
      items: { tenantId: string }[];
    };
    expect(list.items.every((r) => r.tenantId === TENANT)).toBe(true);
    // nor B's threads
    expect((await gw.request('/v1/threads/tb-thread/history')).status).toBe(404);
  });

  it('terminates a status event without tenantid and records why (it can never be attributed)', async () => {
    const runId = 'no-tenant-run';
    await executor.publish(
      'agentStarted',
      { runId, agent: 'echo', threadId: runId, attempt: 1 },
      { id: `${runId}.started.1`, ceSubject: runId },
    );
    await waitFor(
      async () =>
        (
          await withPg(gw.db.url, (pg) =>
            pg.query(`SELECT 1 FROM dlq.terminations WHERE event_id = $1`, [`${runId}.started.1`]),
          )
        ).rows.length === 1,
      { what: 'termination recorded' },
    );
    const [record] = (
      await withPg(gw.db.url, (pg) =>
        pg.query(
          `SELECT stream, consumer, code, reason FROM dlq.terminations WHERE event_id = $1`,
          [`${runId}.started.1`],
        ),
      )
    ).rows;
    expect(record).toMatchObject({
      stream: 'AGENT_STATUS',
      consumer: 'gateway-run-status',
      code: 'InvalidEvent',
    });
    expect(record.reason).toMatch(/tenantid/);
    expect(
      (
        await withPg(gw.db.url, (pg) =>
          pg.query(`SELECT 1 FROM gateway.runs WHERE run_id = $1`, [runId]),
        )
      ).rows,
    ).toHaveLength(0);
  });

  describe('GET /v1/runs', () => {
    let agentRuns: string[];

    beforeAll(async () => {
      agentRuns = [];
      for (let i = 0; i < 5; i++)
        agentRuns.push(await submit({ agent: 'chat', input: { prompt: `p${i}` } }));
    });

    it('pages newest first with an opaque cursor, without gaps or repeats', async () => {
      const seen: string[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const res = await gw.request(
          `/v1/runs?agent=chat&limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        );
        expect(res.status).toBe(200);
        const body = (await res.json()) as {
          items: { runId: string; agent: string; createdAt: string }[];
          nextCursor?: string;
        };
        expect(body.items.length).toBeLessThanOrEqual(2);
        seen.push(...body.items.map((r) => r.runId));
        cursor = body.nextCursor;
        pages++;
      } while (cursor && pages < 10);
      // the chat runs of this block, newest first (plus the bus-only chat run, which is not in this tenant's submissions order)
      const mine = seen.filter((id) => agentRuns.includes(id));
      expect(mine).toEqual([...agentRuns].reverse());
      expect(new Set(seen).size).toBe(seen.length);
    });

    it('filters by status', async () => {
      const body = (await (await gw.request('/v1/runs?status=completed&limit=100')).json()) as {
        items: { status: string }[];
      };
      expect(body.items.length).toBeGreaterThan(0);
      expect(body.items.every((r) => r.status === 'completed')).toBe(true);
    });

    it.each([
      'status=done',
      'agent=Bad Agent',
      'limit=0',
      'limit=101',
      'limit=ten',
      'cursor=nonsense!',
    ])('answers 400 for %s', async (q) => {
      const res = await gw.request(`/v1/runs?${q}`);
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'InvalidRequest' });
    });
  });

  describe('GET /v1/threads/:threadId/history', () => {
    it("answers the thread's checkpoints newest first, paginated, tenant-filtered", async () => {
      const threadId = 'thread-h1';
      const runId = await submit({ agent: 'echo', input: { steps: 3 }, threadId });
      await withPg(gw.db.url, async (pg) => {
        for (let step = 1; step <= 3; step++) {
          await pg.query(
            `INSERT INTO executor.checkpoints (tenant_id, thread_id, run_id, step, state) VALUES ($1, $2, $3, $4, $5)`,
            [TENANT, threadId, runId, step, JSON.stringify({ done: step })],
          );
        }
        // another tenant's checkpoint in a thread of the same name stays invisible
        await pg.query(
          `INSERT INTO executor.checkpoints (tenant_id, thread_id, run_id, step, state) VALUES ($1, $2, 'x-run', 1, '{}')`,
          [OTHER_TENANT, threadId],
        );
      });
      const first = (await (
        await gw.request(`/v1/threads/${threadId}/history?limit=2`)
      ).json()) as {
        items: {
          runId: string;
          step: number;
          state: unknown;
          checkpointId: string;
          createdAt: string;
        }[];
        nextCursor?: string;
      };
      expect(first.items.map((i) => i.step)).toEqual([3, 2]);
      expect(first.items[0]).toMatchObject({
        runId,
        state: { done: 3 },
        checkpointId: expect.any(String),
        createdAt: expect.any(String),
      });
      expect(first.nextCursor).toBeDefined();
      const second = (await (
        await gw.request(`/v1/threads/${threadId}/history?limit=2&cursor=${first.nextCursor}`)
      ).json()) as {
        items: { step: number; runId: string }[];
        nextCursor?: string;
      };
      expect(second.items.map((i) => i.step)).toEqual([1]);
      expect(second.items[0]?.runId).toBe(runId);
      expect(second.nextCursor).toBeUndefined();
    });

    it('answers an empty list for a thread with runs but no checkpoints yet, 404 for unknown threads, 400 for bad ids', async () => {
      await submit({ agent: 'echo', input: {}, threadId: 'thread-empty' });
      expect(await (await gw.request('/v1/threads/thread-empty/history')).json()).toEqual({
        items: [],
      });
      expect((await gw.request('/v1/threads/no-such-thread/history')).status).toBe(404);
      expect((await gw.request('/v1/threads/%20bad/history')).status).toBe(400);
    });
  });
});
