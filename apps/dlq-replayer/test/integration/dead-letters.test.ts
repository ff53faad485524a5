import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { Pool } from 'pg';
import { AckPolicy, jetstream, jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { headers as natsHeaders, nanos, type NatsConnection } from '@nats-io/nats-core';
import { DomainError } from '@aob/errors';
import {
  connectNats,
  CONSUMERS,
  decodeCloudEvent,
  EventPublisher,
  JetStreamServer,
  provisionJetStream,
  STREAMS,
  type ConsumerSpec,
  type InboundEvent,
  type JetStreamContext,
} from '@aob/events';
import { bootstrapHttpApp } from '@aob/observability';
import {
  createDataSource,
  DeadLetterRepository,
  TerminationRepository,
  type DataSource,
  type DeadLetterRecord,
} from '@aob/persistence';
import {
  createTestDatabase,
  freePort,
  startNatsServer,
  testRedisUrl,
  uniqueKeyPrefix,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
} from '@aob/testing';
import { APP_NAME, AppModule } from '../../src/app.module';
import { loadDlqReplayerConfig } from '../../src/config';

const TENANT = 'tenant-a';
/** A test worker on AGENT_EXECUTION: two deliveries, then dead. */
const WORKERS: ConsumerSpec = {
  stream: 'AGENT_EXECUTION',
  durable: 'test-workers',
  filterSubject: 'agent.execute.echo',
  ackWaitMs: 5_000,
  maxDeliver: 2,
  maxAckPending: 100,
  retryBaseMs: 10,
  retryMaxMs: 50,
};
/** A consumer that never settles: its messages die by MAX_DELIVERIES (as a crashed worker's would). */
const CRASHING = { durable: 'test-crashing', subject: 'agent.execute.crashing', maxDeliver: 2 };

describe('dlq-replayer captures dead messages, quarantines and replays them', () => {
  let nats: TestNatsServer;
  let db: TestDatabase;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let ds: DataSource;
  let worker: JetStreamServer;
  let app: INestApplication | undefined;
  let publisher: EventPublisher;
  let deadLetters: DeadLetterRepository;
  /** ce-aobreplay header of every delivery the test worker saw, by event id. */
  const replayHeadersSeen = new Map<string, (string | undefined)[]>();
  let crashing: Promise<void> | undefined;
  let stopCrashing = false;

  const startReplayer = async () => {
    const port = await freePort();
    const config = loadDlqReplayerConfig({
      NATS_URL: nats.url,
      DATABASE_URL: db.url,
      REDIS_URL: testRedisUrl(),
      PORT: String(port),
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      DLQ_QUARANTINE_MS: '400',
      DLQ_MAX_REPLAYS: '2',
      DLQ_SWEEP_INTERVAL_MS: '100',
    });
    app = await bootstrapHttpApp(AppModule.forRoot(config), { app: APP_NAME, port: config.PORT });
  };

  const publish = (mode: string, id: string, tenantId: string | undefined = TENANT) =>
    publisher.publish(
      'agentExecute',
      { agent: mode === 'crashing' ? 'crashing' : 'echo', input: { mode } },
      {
        id,
        subject: mode === 'crashing' ? CRASHING.subject : 'agent.execute.echo',
        ...(tenantId === undefined ? {} : { tenantId }),
      },
    );

  const entryFor = async (eventId: string): Promise<DeadLetterRecord | undefined> => {
    const rows: { id: string }[] = await ds.query(
      `SELECT id FROM dlq.dead_letters WHERE event_id = $1`,
      [eventId],
    );
    return rows[0]
      ? ((await deadLetters.get({ allTenants: true }, rows[0].id)) ?? undefined)
      : undefined;
  };
  const waitForEntry = async (
    eventId: string,
    test: (e: DeadLetterRecord) => boolean = () => true,
  ) => {
    let found: DeadLetterRecord | undefined;
    await waitFor(
      async () => {
        found = await entryFor(eventId);
        return found !== undefined && test(found);
      },
      { timeoutMs: 15_000 },
    );
    return found!;
  };

  beforeAll(async () => {
    nats = await startNatsServer();
    db = await createTestDatabase('aob_dlq');
    nc = await connectNats({ url: nats.url, name: 'dlq-test' });
    jsm = await jetstreamManager(nc);
    // The advisory stream exists before anything dies, as `npm run provision` makes it in production.
    await provisionJetStream(jsm, { consumers: [WORKERS, CONSUMERS.dlqReplayer] });
    await jsm.consumers.add('AGENT_EXECUTION', {
      durable_name: CRASHING.durable,
      filter_subject: CRASHING.subject,
      ack_policy: AckPolicy.Explicit,
      ack_wait: nanos(300),
      max_deliver: CRASHING.maxDeliver,
    });
    ds = createDataSource({ url: db.url, poolSize: 3 });
    await ds.initialize();
    deadLetters = new DeadLetterRepository(ds);
    const terminations = new TerminationRepository(ds);
    publisher = new EventPublisher(jetstream(nc), 'aob://dlq-test');

    worker = new JetStreamServer({
      connection: nc,
      consumers: [WORKERS],
      concurrency: 4,
      logger: { log: () => {}, warn: () => {}, error: () => {} },
      onTerminate: (info) => terminations.record(info),
    });
    worker.addHandler(
      'aob.agent.execute.v1',
      async (e: InboundEvent<{ input: { mode: string } }>, ctx: JetStreamContext) => {
        const seen = replayHeadersSeen.get(e.id) ?? [];
        seen.push(ctx.headers?.get('ce-aobreplay') || undefined);
        replayHeadersSeen.set(e.id, seen);
        if (e.data.input.mode === 'poison')
          throw new DomainError('InvalidRequest', 'input.mode poison is not accepted');
        if (e.data.input.mode === 'flaky')
          throw new DomainError('Unavailable', 'the upstream is down', { retryable: true });
      },
      true,
    );
    await new Promise<void>((resolve, reject) => {
      void worker.listen((err?: unknown) =>
        err ? reject(err instanceof Error ? err : new Error('listen failed')) : resolve(),
      );
    });
    // Receives and never settles: the server gives up after max_deliver (MAX_DELIVERIES advisory).
    const c = await jetstream(nc).consumers.get('AGENT_EXECUTION', CRASHING.durable);
    const messages = await c.consume({ max_messages: 10, expires: 1_000 });
    crashing = (async () => {
      for await (const _ of messages) if (stopCrashing) break;
    })();
  }, 30_000);

  afterAll(async () => {
    stopCrashing = true;
    await app?.close();
    await worker?.close();
    await ds?.destroy();
    await nc?.close();
    await crashing?.catch(() => undefined);
    await nats?.stop();
    await db?.drop();
  });

  it('misses no death while it is down: captured when it starts, with reason, tenant and deliveries', async () => {
    await publish('poison', 'ev-poison');
    await publish('flaky', 'ev-flaky');
    await publish('crashing', 'ev-crashing');
    const raw = natsHeaders();
    raw.set('x-note', 'not a cloudevent');
    await jetstream(nc).publish('agent.execute.echo', new TextEncoder().encode('{oops'), {
      headers: raw,
      msgID: 'raw-1',
    });
    // All four are dead before the replayer exists: only the advisory stream has seen them.
    await waitFor(
      async () => (await jsm.streams.info(STREAMS.AOB_ADVISORIES.name)).state.messages >= 4,
      { timeoutMs: 15_000 },
    );
    expect(await ds.query(`SELECT 1 FROM dlq.dead_letters`)).toHaveLength(0);

    await startReplayer();

    const poison = await waitForEntry('ev-poison');
    expect(poison).toMatchObject({
      tenantId: TENANT,
      subject: 'agent.execute.echo',
      type: 'aob.agent.execute.v1',
      code: 'InvalidRequest',
      reason: 'input.mode poison is not accepted',
      deliveries: 1,
      replays: 0,
      status: 'parked',
      quarantineUntil: null,
    });
    expect(poison.data?.length).toBeGreaterThan(0);

    const flaky = await waitForEntry('ev-flaky');
    expect(flaky).toMatchObject({
      tenantId: TENANT,
      code: 'Unavailable',
      reason: 'gave up after 2 deliveries: the upstream is down',
      deliveries: 2,
    });

    const crashed = await waitForEntry('ev-crashing');
    expect(crashed).toMatchObject({
      tenantId: TENANT,
      consumer: CRASHING.durable,
      code: 'MaxDeliveries',
      reason: 'max deliveries reached',
      deliveries: 2,
    });
    // quarantined on capture; the 400 ms quarantine may already have ended in a replay
    expect(['quarantined', 'replayed']).toContain(crashed.status);

    const rows: { id: string }[] = await ds.query(
      `SELECT id FROM dlq.dead_letters WHERE event_id IS NULL AND subject = 'agent.execute.echo'`,
    );
    expect(rows).toHaveLength(1);
    const notCloudEvent = await deadLetters.get({ allTenants: true }, rows[0]!.id);
    expect(notCloudEvent).toMatchObject({ tenantId: null, code: 'InvalidEvent', status: 'parked' });
    expect(Buffer.from(notCloudEvent!.data!).toString()).toBe('{oops');
    expect(notCloudEvent!.headers['x-note']).toEqual(['not a cloudevent']);
    // Only a platform admin's scope sees an entry without a tenant.
    expect(await deadLetters.get({ tenantId: TENANT }, notCloudEvent!.id)).toBeNull();
  }, 40_000);

  it('copies each original untouched to dlq.<subject>, once', async () => {
    const poison = (await entryFor('ev-poison'))!;
    const original = await jsm.streams.getMessage('AGENT_EXECUTION', { seq: poison.streamSeq });
    const copy = await jsm.streams.getMessage('DLQ', {
      last_by_subj: 'dlq.agent.execute.crashing',
    });
    expect(decodeCloudEvent({ headers: copy!.header, data: copy!.data }).id).toBe('ev-crashing');
    const info = await jsm.streams.info('DLQ');
    // the poison copy, by its Nats-Msg-Id dlq-<stream>-<seq>: exactly one
    let found = 0;
    for (let seq = 1; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage('DLQ', { seq });
      if (m?.header.get('Nats-Msg-Id') !== `dlq-AGENT_EXECUTION-${poison.streamSeq}`) continue;
      found++;
      expect(m.subject).toBe('dlq.agent.execute.echo');
      expect(Buffer.from(m.data).equals(Buffer.from(original!.data))).toBe(true);
      expect(m.header.get('ce-id')).toBe('ev-poison');
      expect(m.header.get('ce-tenantid')).toBe(TENANT);
    }
    expect(found).toBe(1);
  });

  it('replays after quarantine with backoff, with the same event id and ce-aobreplay, then parks it', async () => {
    // ev-flaky fails on every delivery: replayed twice (DLQ_MAX_REPLAYS=2), then parked.
    const parked = await waitForEntry('ev-flaky', (e) => e.status === 'parked');
    expect(parked.replays).toBe(2);
    expect(parked.reason).toBe('gave up after 2 deliveries: the upstream is down');
    expect(parked.lastReplayedAt).not.toBeNull();
    // two deliveries per life: the original, replay 1, replay 2
    expect(replayHeadersSeen.get('ev-flaky')).toEqual([undefined, undefined, '1', '1', '2', '2']);
    // backoff: the second quarantine lasted twice the first (400 ms, then 800 ms)
    expect(
      parked.lastReplayedAt!.getTime() - parked.firstFailedAt.getTime(),
    ).toBeGreaterThanOrEqual(1_100);
    // poison is never replayed automatically
    expect(replayHeadersSeen.get('ev-poison')).toEqual([undefined]);
    const poison = await entryFor('ev-poison');
    expect(poison).toMatchObject({ status: 'parked', replays: 0 });
  }, 30_000);

  it('reports the DLQ on /metrics: open dead letters by status, the DLQ stream size', async () => {
    const text = await (await fetch(`${await app!.getUrl()}/metrics`)).text();
    const value = (series: string) => {
      const line = text.split('\n').find((l) => l.startsWith(`${series} `));
      return line === undefined ? undefined : Number(line.slice(series.length + 1));
    };
    // ev-flaky and ev-poison are parked (the test above)
    expect(value('aob_dlq_dead_letters{status="parked"}')).toBeGreaterThanOrEqual(2);
    expect(value('aob_dlq_dead_letters{status="quarantined"}')).toBeGreaterThanOrEqual(0);
    const dlq = await jsm.streams.info(STREAMS.DLQ.name);
    expect(value('aob_jetstream_stream_messages{stream="DLQ"}')).toBe(dlq.state.messages);
    expect(dlq.state.messages).toBeGreaterThan(0);
  });

  it('captures a death while running, and a repeated advisory changes nothing', async () => {
    await publish('poison', 'ev-poison-live');
    const entry = await waitForEntry('ev-poison-live');
    expect(entry.status).toBe('parked');
    const before = await ds.query(`SELECT count(*)::int AS n FROM dlq.dead_letters`);
    // the same advisory again (as a redelivery would bring it)
    await jetstream(nc).publish(
      `$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.AGENT_EXECUTION.${WORKERS.durable}`,
      JSON.stringify({
        type: 'io.nats.jetstream.advisory.v1.terminated',
        stream: 'AGENT_EXECUTION',
        consumer: WORKERS.durable,
        stream_seq: entry.streamSeq,
        deliveries: 1,
      }),
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(await ds.query(`SELECT count(*)::int AS n FROM dlq.dead_letters`)).toEqual(before);
    expect(
      (await jsm.consumers.info(STREAMS.AOB_ADVISORIES.name, CONSUMERS.dlqReplayer.durable))
        .num_ack_pending,
    ).toBe(0);
  });
});

const ROOT = join(__dirname, '../../../..');
const EXECUTOR_MAIN = join(ROOT, 'apps/agent-executor/dist/main.js');

interface StatusEvent {
  seq: number;
  id: string;
  type: string;
  subject: string | undefined;
  time: string | undefined;
  data: Record<string, unknown>;
}

/**
 * The agent executor is another app: it runs here as it is deployed, `node dist/main.js` (built by
 * turbo, cached), against this suite's nats-server and database.
 */
describe('a replayed failed run resumes in the agent executor (ce-aobreplay reopens it)', () => {
  let nats: TestNatsServer;
  let db: TestDatabase;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let pg: Pool;
  let publisher: EventPublisher;
  let executor: ChildProcess | undefined;
  let replayer: INestApplication | undefined;
  const statusCache: StatusEvent[] = [];

  const statusEvents = async (runId: string) => {
    const info = await jsm.streams.info('AGENT_STATUS');
    for (let seq = (statusCache.at(-1)?.seq ?? 0) + 1; seq <= info.state.last_seq; seq++) {
      const m = await jsm.streams.getMessage('AGENT_STATUS', { seq });
      if (!m) continue;
      const ce = decodeCloudEvent({ headers: m.header, data: m.data });
      statusCache.push({
        seq,
        id: ce.id,
        type: ce.type,
        subject: ce.subject,
        time: ce.time,
        data: ce.data as Record<string, unknown>,
      });
    }
    return statusCache.filter((e) => e.subject === runId);
  };
  const waitForEvent = async (runId: string, test: (e: StatusEvent) => boolean, what: string) => {
    let found: StatusEvent | undefined;
    await waitFor(
      async () => {
        found = (await statusEvents(runId)).find(test);
        return found !== undefined;
      },
      { timeoutMs: 20_000, what },
    );
    return found!;
  };
  const started = async (runId: string) =>
    (await statusEvents(runId)).filter((e) => e.type === 'aob.agent.started.v1');
  const runRow = async (runId: string) =>
    (await pg.query('SELECT * FROM executor.runs WHERE run_id = $1', [runId])).rows[0] as
      Record<string, unknown> | undefined;
  const checkpoints = async (runId: string) =>
    (
      await pg.query<{ step: number; created_at: Date }>(
        'SELECT step, created_at FROM executor.checkpoints WHERE run_id = $1 ORDER BY step',
        [runId],
      )
    ).rows;
  const executorIdle = async () => {
    const info = await jsm.consumers.info('AGENT_EXECUTION', 'agent-executor-workers');
    return info.num_ack_pending === 0 && info.num_pending === 0;
  };
  /** The run's original request again, as another message with `ce-aobreplay: n`. */
  const replayByHand = async (runId: string, n: number, msgID: string) => {
    const original = await jsm.streams.getMessage('AGENT_EXECUTION', {
      last_by_subj: 'agent.execute.echo',
    });
    expect(original!.header.get('ce-id')).toBe(runId);
    const h = natsHeaders();
    for (const [name, values] of original!.header) {
      if (!/^nats-/i.test(name)) for (const v of values) h.append(name, v);
    }
    h.set('ce-aobreplay', String(n));
    await jetstream(nc).publish('agent.execute.echo', original!.data, { headers: h, msgID });
  };

  beforeAll(async () => {
    execFileSync(
      'npx',
      ['turbo', 'run', 'build', '--filter=@aob/agent-executor...', '--output-logs=errors-only'],
      { cwd: ROOT, stdio: 'inherit', env: { ...process.env, TURBO_TELEMETRY_DISABLED: '1' } },
    );
    if (!existsSync(EXECUTOR_MAIN)) throw new Error(`${EXECUTOR_MAIN} missing after the build`);
    [nats, db] = await Promise.all([startNatsServer(), createTestDatabase('aob_dlq_replay')]);
    nc = await connectNats({ url: nats.url, name: 'dlq-replay-test' });
    jsm = await jetstreamManager(nc);
    pg = new Pool({ connectionString: db.url, max: 2 });
    pg.on('error', () => undefined); // an idle client cut by Postgres must not crash the suite
    publisher = new EventPublisher(jetstream(nc), 'aob://dlq-replay-test');

    const port = await freePort();
    const child = spawn(process.execPath, [EXECUTOR_MAIN], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        PORT: String(port),
        NATS_URL: nats.url,
        DATABASE_URL: db.url,
        REDIS_URL: testRedisUrl(),
        RUN_STREAM_KEY_PREFIX: uniqueKeyPrefix('dlqreplay'),
        LOG_LEVEL: 'warn',
        EXECUTOR_RETRY_BASE_MS: '50',
        EXECUTOR_RETRY_MAX_MS: '200',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    executor = child;
    let stderr = '';
    child.stderr?.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4_000)));
    await waitFor(
      async () => {
        if (child.exitCode !== null) throw new Error(`executor exited: ${stderr}`);
        return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200;
      },
      { timeoutMs: 30_000, what: 'the executor process to be ready' },
    );

    const config = loadDlqReplayerConfig({
      NATS_URL: nats.url,
      DATABASE_URL: db.url,
      REDIS_URL: testRedisUrl(),
      PORT: String(await freePort()),
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      DLQ_QUARANTINE_MS: '300',
      DLQ_MAX_REPLAYS: '2',
      DLQ_SWEEP_INTERVAL_MS: '100',
    });
    replayer = await bootstrapHttpApp(AppModule.forRoot(config), {
      app: APP_NAME,
      port: config.PORT,
    });
  }, 120_000);

  afterAll(async () => {
    await replayer?.close();
    if (executor && executor.exitCode === null) {
      const exited = new Promise((r) => executor!.once('exit', r));
      executor.kill('SIGTERM');
      await exited;
    }
    await nc?.close();
    await pg?.end();
    await nats?.stop();
    await db?.drop();
  });

  it('an echo run failing transiently lands in the DLQ, the replay resumes after its checkpoints and completes', async () => {
    // Deliveries 1-5 (the consumer's max_deliver) fail in step 3; the replay is attempt 6.
    const runId = 'phoenix-1';
    await publisher.publish(
      'agentExecute',
      { agent: 'echo', input: { message: 'phoenix', steps: 3, fail: 'transient', failTimes: 5 } },
      { id: runId, subject: 'agent.execute.echo', tenantId: TENANT },
    );
    const failed = await waitForEvent(runId, (e) => e.type === 'aob.agent.failed.v1', 'failed');
    expect(failed).toMatchObject({
      id: `${runId}.failed`,
      data: { attempts: 5, deadLettered: true, error: { code: 'AgentFailed', retryable: true } },
    });
    const completed = await waitForEvent(
      runId,
      (e) => e.type === 'aob.agent.completed.v1',
      'the completion after the replay',
    );
    expect(completed.data).toMatchObject({ output: { echo: 'phoenix' }, attempts: 6 });

    const { rows: letters } = await pg.query(
      `SELECT status, replays FROM dlq.dead_letters WHERE event_id = $1`,
      [runId],
    );
    expect(letters).toEqual([{ status: 'replayed', replays: 1 }]);
    expect(await runRow(runId)).toMatchObject({
      status: 'completed',
      attempts: 6,
      replays: 1,
      result_event_id: `${runId}.completed`,
    });
    // Steps 1 and 2 ran once, on the first delivery; step 3 only on the replay.
    const failedAt = Date.parse(failed.time!);
    const saved = await checkpoints(runId);
    expect(saved.map((c) => c.step)).toEqual([1, 2, 3]);
    expect(saved.slice(0, 2).every((c) => c.created_at.getTime() < failedAt)).toBe(true);
    expect(saved[2]!.created_at.getTime()).toBeGreaterThan(failedAt);
    expect((await started(runId)).map((e) => e.data.attempt)).toEqual([1, 2, 3, 4, 5, 6]);

    // The same replay again (another message, ce-aobreplay 1) and a later one: the run has
    // completed, so each answers with the completed event and nothing runs again.
    await replayByHand(runId, 1, 'again-1');
    await replayByHand(runId, 2, 'again-2');
    await waitFor(executorIdle, { timeoutMs: 10_000, what: 'the repeats settled' });
    expect(await started(runId)).toHaveLength(6);
    expect(await checkpoints(runId)).toHaveLength(3);
    expect(await runRow(runId)).toMatchObject({ status: 'completed', attempts: 6, replays: 1 });
  }, 45_000);

  it('a repeated replay of a failed run never runs it twice; a failed replay has its own failed event', async () => {
    // Replays by hand from here: the replayer's sweeper would replay on its own schedule.
    await replayer?.close();
    replayer = undefined;
    const runId = 'never-1';
    await publisher.publish(
      'agentExecute',
      { agent: 'echo', input: { message: 'never', fail: 'transient' } },
      { id: runId, subject: 'agent.execute.echo', tenantId: TENANT },
    );
    await waitForEvent(runId, (e) => e.id === `${runId}.failed`, 'the first failure');

    await replayByHand(runId, 1, `${runId}-replay-1`);
    const failedAgain = await waitForEvent(
      runId,
      (e) => e.id === `${runId}.failed.1`,
      'the failure of replay 1',
    );
    expect(failedAgain.data).toMatchObject({ attempts: 10, deadLettered: true });
    await waitFor(executorIdle, { timeoutMs: 10_000, what: 'replay 1 settled' });
    expect(await started(runId)).toHaveLength(10);
    expect(await runRow(runId)).toMatchObject({ status: 'failed', attempts: 10, replays: 1 });

    await replayByHand(runId, 1, `${runId}-replay-1-again`);
    await waitFor(executorIdle, { timeoutMs: 10_000, what: 'the repeat settled' });
    expect(await started(runId)).toHaveLength(10);
    expect(await runRow(runId)).toMatchObject({
      status: 'failed',
      attempts: 10,
      replays: 1,
      result_event_id: `${runId}.failed.1`,
    });
  }, 45_000);
});
