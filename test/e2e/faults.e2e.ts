/**
 * Fault tests (issue 6, "Proof"): the five built apps as real processes against a private
 * nats-server, a private PostgreSQL cluster and a private redis-server, each of which a test stops
 * and starts while runs are in flight. Every test submits a known set of runs and checks the exact
 * set of outcomes: each run completed once, with its output, its steps each checkpointed once,
 * and (where a model is involved) each model call metered once. Lost: nothing.
 *
 * Which test covers which row of the fault matrix is listed in README.md ("Fault tests").
 */
import { Pool } from 'pg';
import {
  startPostgresServer,
  startRedisServer,
  waitFor,
  type TestPostgresServer,
  type TestRedisServer,
} from '@aob/testing';
import { APPS, Stack } from './support/stack';
import { StatusWatcher } from './support/bus';
import { readSse } from './support/sse';

jest.setTimeout(120_000);

const stack = new Stack();
let pg: TestPostgresServer;
let redis: TestRedisServer;
let db: Pool;
let watcher: StatusWatcher;

beforeAll(async () => {
  [pg, redis] = await Promise.all([startPostgresServer(), startRedisServer()]);
  await stack.start(
    APPS,
    // A retry backoff that rides out a Postgres restart (about a second) within max_deliver (5),
    // a short lease (a run whose worker is gone is taken over within seconds) and a short DLQ
    // quarantine, so a dead-lettered run would be replayed within the test.
    {
      EXECUTOR_RETRY_BASE_MS: '1000',
      EXECUTOR_RETRY_MAX_MS: '4000',
      EXECUTOR_LEASE_TTL_MS: '5000',
      DLQ_QUARANTINE_MS: '2000',
      DLQ_SWEEP_INTERVAL_MS: '500',
    },
    { databaseServerUrl: pg.url, redisUrl: redis.url },
  );
  db = new Pool({ connectionString: stack.db.url, max: 2 });
  // the pool outlives Postgres restarts: a dropped idle client must not crash the test process
  db.on('error', () => undefined);
  watcher = new StatusWatcher(stack.nc);
});

afterAll(async () => {
  watcher?.stop();
  await db?.end().catch(() => undefined);
  await stack.stop().catch(() => undefined);
  await pg?.destroy();
  await redis?.stop();
});

interface RunView {
  runId: string;
  status: string;
  attempts: number;
  output?: unknown;
}

/** POST /v1/runs, 202. */
async function submit(body: unknown): Promise<string> {
  const res = await stack.api('/v1/runs', { method: 'POST', body: JSON.stringify(body) });
  if (res.status !== 202) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  return ((await res.json()) as { runId: string }).runId;
}

const getRun = async (runId: string): Promise<RunView> =>
  (await (await stack.api(`/v1/runs/${runId}`)).json()) as RunView;

/** Waits until every run is completed as the gateway serves it, and returns what it serves. */
async function allCompleted(runIds: string[], timeoutMs = 45_000): Promise<RunView[]> {
  let views: RunView[] = [];
  await waitFor(
    async () => {
      views = await Promise.all(runIds.map(getRun));
      return views.every((v) => v.status === 'completed');
    },
    { timeoutMs, intervalMs: 200, what: `${runIds.length} runs to complete` },
  ).catch(async (err: Error) => {
    const open = views.filter((v) => v.status !== 'completed').map((v) => v.runId);
    const { rows } = await db
      .query(
        `SELECT run_id, agent, status, attempts, lease_owner, lease_expires_at, result
           FROM executor.runs WHERE run_id = ANY($1)`,
        [open],
      )
      .catch((e: Error) => ({ rows: [e.message] }));
    const logs = (['agent-executor', 'gateway'] as const)
      .map((a) => `--- ${a}\n${stack.logs(a).slice(-25).join('\n')}`)
      .join('\n');
    throw new Error(
      `${err.message}; not completed: ${JSON.stringify(views.filter((v) => open.includes(v.runId)))}\nexecutor rows: ${JSON.stringify(rows)}\nbus: ${JSON.stringify(open.map((id) => watcher.of(id).map((e) => e.subject)))}\n${logs}`,
    );
  });
  return views;
}

/**
 * The executor's own record: each run exactly once, completed, its steps 1..n checkpointed once
 * each, and one completed event id on the bus.
 */
async function expectCompletedOnce(runIds: string[], steps: (runId: string) => number) {
  const { rows } = await db.query<{ run_id: string; status: string; steps: number[] }>(
    `SELECT r.run_id, r.status,
            coalesce(array_agg(c.step ORDER BY c.step) FILTER (WHERE c.step IS NOT NULL), '{}') AS steps
       FROM executor.runs r LEFT JOIN executor.checkpoints c ON c.run_id = r.run_id
      WHERE r.run_id = ANY($1) GROUP BY r.run_id, r.status`,
    [runIds],
  );
  expect(rows.map((r) => r.run_id).sort()).toEqual([...runIds].sort());
  for (const r of rows) {
    expect({ run: r.run_id, status: r.status, steps: r.steps }).toEqual({
      run: r.run_id,
      status: 'completed',
      steps: Array.from({ length: steps(r.run_id) }, (_, i) => i + 1),
    });
  }
  const { rows: others } = await db.query(
    `SELECT run_id FROM executor.runs WHERE run_id = ANY($1) AND status <> 'completed'`,
    [runIds],
  );
  expect(others).toEqual([]);
}

/** Model calls the model gateway answered, by its own counter. */
async function modelRequests(): Promise<number> {
  const text = await (await fetch(stack.url('model-gateway', '/metrics'))).text();
  return [...text.matchAll(/^aob_model_gateway_requests_total\{[^}]*\} (\d+)/gm)].reduce(
    (n, m) => n + Number(m[1]),
    0,
  );
}

const echo = (tag: string, i: number, steps = 2, delayMs = 50) => ({
  agent: 'echo',
  input: { message: `${tag}-${i}`, steps, delayMs },
});

describe('fault matrix (private NATS, Postgres, Redis; the five apps as processes)', () => {
  it('Redis down: runs still complete and their final state is readable; streams resume when it is back — lost: nothing', async () => {
    await redis.stop();
    const runIds: string[] = [];
    for (let i = 0; i < 10; i++) runIds.push(await submit(echo('redis', i)));
    const views = await allCompleted(runIds);
    views.forEach((v, i) => expect(v.output).toEqual({ echo: `redis-${i}` }));
    await expectCompletedOnce(runIds, () => 2);

    await redis.start();
    // a run after Redis returned streams live, tokens and all
    const fresh = await submit({ agent: 'chat', input: { prompt: 'after the outage' } });
    const events = await readSse(await stack.api(`/v1/runs/${fresh}/events`), {
      timeoutMs: 30_000,
    });
    expect(events.at(-1)?.event).toBe('completed');
    expect(events.filter((e) => e.event === 'token').length).toBeGreaterThan(0);
    // a run that finished while Redis was down (its stream never written) ends with its final state
    const old = await readSse(await stack.api(`/v1/runs/${runIds[0]!}/events`), {
      timeoutMs: 10_000,
    });
    expect(old.at(-1)).toMatchObject({
      event: 'completed',
      data: expect.objectContaining({ output: { echo: 'redis-0' } }),
    });
  });

  it('NATS stopped while runs are submitted, then restarted: every run completes once — lost: nothing', async () => {
    // a few in flight when the server goes away
    const before: string[] = [];
    for (let i = 0; i < 5; i++) before.push(await submit(echo('nats-before', i, 3, 300)));
    await waitFor(() => before.every((id) => watcher.of(id, 'agent.status.started').length > 0), {
      timeoutMs: 15_000,
      what: 'the first runs to start',
    });
    await stack.nats.kill('SIGKILL');
    // accepted into the gateway's outbox while the bus is down
    const during: string[] = [];
    for (let i = 0; i < 20; i++) during.push(await submit(echo('nats-during', i)));
    await new Promise((r) => setTimeout(r, 1_000));
    await stack.nats.start();

    const all = [...before, ...during];
    const views = await allCompleted(all, 60_000);
    const byId = new Map(views.map((v) => [v.runId, v]));
    before.forEach((id, i) => expect(byId.get(id)?.output).toEqual({ echo: `nats-before-${i}` }));
    during.forEach((id, i) => expect(byId.get(id)?.output).toEqual({ echo: `nats-during-${i}` }));
    await expectCompletedOnce(all, (id) => (before.includes(id) ? 3 : 2));
  });

  it('Postgres restarted under load: consumers back off and resume; every run completes once, every model call is metered once — lost: nothing', async () => {
    const modelBefore = await modelRequests();
    const echoes: string[] = [];
    const chats: string[] = [];
    for (let i = 0; i < 15; i++) {
      echoes.push(await submit(echo('pg', i, 3, 200)));
      chats.push(await submit({ agent: 'chat', input: { prompt: `pg restart ${i}` } }));
    }
    await waitFor(() => echoes.some((id) => watcher.of(id, 'agent.status.step').length > 0), {
      timeoutMs: 15_000,
      what: 'runs under way',
    });
    await pg.restart('immediate');

    const all = [...echoes, ...chats];
    const views = await allCompleted(all, 60_000);
    const byId = new Map(views.map((v) => [v.runId, v]));
    echoes.forEach((id, i) => expect(byId.get(id)?.output).toEqual({ echo: `pg-${i}` }));
    await expectCompletedOnce(all, (id) => (echoes.includes(id) ? 3 : 1));

    // every model call that was made is metered exactly once (a call cut off by the restart before
    // its step was checkpointed is made again: at least one call per chat run)
    const calls = (await modelRequests()) - modelBefore;
    expect(calls).toBeGreaterThanOrEqual(chats.length);
    await waitFor(
      async () => {
        const { rows } = await db.query<{ n: string }>(
          `SELECT count(*) AS n FROM metering.usage_records WHERE run_id = ANY($1)`,
          [chats],
        );
        return Number(rows[0]!.n) === calls;
      },
      { timeoutMs: 20_000, intervalMs: 200, what: `${calls} usage records` },
    );
    const { rows: perRun } = await db.query<{ run_id: string }>(
      `SELECT DISTINCT run_id FROM metering.usage_records WHERE run_id = ANY($1)`,
      [chats],
    );
    expect(perRun.map((r) => r.run_id).sort()).toEqual([...chats].sort());
  });

  it('Postgres down for several seconds mid-run: the runs wait it out and complete once — lost: nothing', async () => {
    // While Postgres is unreachable the executor retries each statement with backoff inside the
    // delivery, holding the message (the transport's working() heartbeats keep JetStream from
    // redelivering it): the outage spends no delivery, outlasts the 5 s lease, and each run carries
    // on from where it stood once Postgres is back, on its first delivery.
    const runIds: string[] = [];
    for (let i = 0; i < 6; i++) runIds.push(await submit(echo('pg-down', i, 3, 400)));
    await waitFor(() => runIds.every((id) => watcher.of(id, 'agent.status.step').length > 0), {
      timeoutMs: 15_000,
      what: 'runs under way',
    });
    await pg.stop('immediate');
    await new Promise((r) => setTimeout(r, 6_000));
    await pg.start();
    const views = await allCompleted(runIds, 60_000);
    expect(views.map((v) => v.output)).toEqual(runIds.map((_, i) => ({ echo: `pg-down-${i}` })));
    await expectCompletedOnce(runIds, () => 3);
    expect(views.map((v) => v.attempts)).toEqual(runIds.map(() => 1));
  });

  // Once lost every run in flight: the delivery that failed while Postgres was down could not
  // release its lease, later deliveries of the same message found it live, answered `busy`, and
  // the last one dropped the message as a duplicate. Now the outage is waited out within the
  // delivery (no lease is left behind, no delivery spent), and a redelivery that does find its own
  // message's earlier lease (same stream sequence) takes the run over when it ends, never drops it.
  it('Postgres down for 2.5 s with the default 30 s lease: every run completes once — lost: nothing', async () => {
    await stack.stopApp('agent-executor', 'SIGTERM');
    await stack.startApp('agent-executor', { EXECUTOR_LEASE_TTL_MS: '30000' });
    try {
      const runIds: string[] = [];
      for (let i = 0; i < 6; i++) runIds.push(await submit(echo('pg-blip', i, 3, 400)));
      await waitFor(() => runIds.every((id) => watcher.of(id, 'agent.status.step').length > 0), {
        timeoutMs: 15_000,
        what: 'runs under way',
      });
      await pg.stop('immediate');
      await new Promise((r) => setTimeout(r, 2_500));
      await pg.start();
      const views = await allCompleted(runIds, 60_000);
      expect(views.map((v) => v.output)).toEqual(runIds.map((_, i) => ({ echo: `pg-blip-${i}` })));
      await expectCompletedOnce(runIds, () => 3);
      expect(views.map((v) => v.attempts)).toEqual(runIds.map(() => 1));
    } finally {
      await stack.stopApp('agent-executor', 'SIGTERM');
      await stack.startApp('agent-executor');
    }
  });

  it('SIGTERM during runs: a short run finishes before exit, a long one is handed back and resumed after its last step — lost: nothing', async () => {
    const short = await submit({ agent: 'echo', input: { message: 'short', delayMs: 1_000 } });
    const long = await submit({
      agent: 'echo',
      input: { message: 'long', steps: 4, delayMs: 2_500 },
    });
    await watcher.waitFor(long, 'agent.status.step', 20_000);
    await watcher.waitFor(short, 'agent.status.started', 20_000);
    const stopping = Date.now();
    await stack.stopApp('agent-executor', 'SIGTERM');
    // the grace period (SHUTDOWN_GRACE_MS 5000) and then the exit; never the long run's 10 s
    expect(Date.now() - stopping).toBeLessThan(12_000);
    expect((await getRun(short)).status).toBe('completed');
    const { rows } = await db.query(
      `SELECT status, lease_owner FROM executor.runs WHERE run_id = $1`,
      [long],
    );
    expect(rows[0]).toEqual({ status: 'running', lease_owner: null });

    const restarted = Date.now();
    await stack.startApp('agent-executor');
    const [view] = await allCompleted([long], 30_000);
    // released, not abandoned: no wait for the 30 s ack_wait
    expect(Date.now() - restarted).toBeLessThan(25_000);
    expect(view).toMatchObject({ output: { echo: 'long' }, attempts: 2 });
    await expectCompletedOnce([short, long], (id) => (id === long ? 4 : 1));
    const stepIds = new Set(watcher.of(long, 'agent.status.step').map((e) => e.id));
    expect(stepIds.size).toBe(4);
  });
});
