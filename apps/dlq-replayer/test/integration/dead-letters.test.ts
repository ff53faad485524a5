import type { INestApplication } from '@nestjs/common';
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

  it.todo(
    // Needs the agent-executor change described in apps/dlq-replayer/README.md ("Replays and the
    // executor"): a request whose ce-aobreplay is above the run's stored replay count reopens a
    // failed run. Until it lands the executor answers a replayed failed run with its failed event.
    'a replayed echo run that failed with fail: transient, failTimes N resumes and completes',
  );
});
