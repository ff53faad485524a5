import { randomUUID } from 'node:crypto';
import {
  connectNats,
  decodeCloudEvent,
  encodeStructured,
  EventPublisher,
  RunEventStream,
  type ExecuteRequest,
  type RunStreamEntry,
} from '@aob/events';
import {
  createTestDatabase,
  startNatsServer,
  testRedisUrl,
  uniqueKeyPrefix,
  waitFor,
  type TestDatabase,
  type TestNatsServer,
} from '@aob/testing';
import {
  jetstream,
  jetstreamManager,
  type JetStreamClient,
  type JetStreamManager,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/nats-core';
import type { INestApplication } from '@nestjs/common';
import { CloudEvent } from 'cloudevents';
import { Redis } from 'ioredis';
import { Pool } from 'pg';
import { startExecutor } from '../../src/bootstrap';
import { loadExecutorConfig } from '../../src/config';

export interface StatusEvent {
  seq: number;
  id: string;
  type: string;
  subject: string | undefined;
  tenantid: unknown;
  traceparent: unknown;
  time: string | undefined;
  data: Record<string, unknown>;
}

export interface PublishExecuteOptions {
  id?: string;
  /** @default 'tenant-a'; null publishes without the tenantid attribute */
  tenantId?: string | null;
  msgId?: string;
  mode?: 'binary' | 'structured';
  /** NATS subject. @default agent.execute.<data.agent> */
  subject?: string;
  traceparent?: string;
}

export const SERVICE_KEY = 'test-service-key-0123456789abcdef';

/**
 * The infrastructure an executor test needs, all private to the suite: a nats-server, a fresh
 * database, a Redis key prefix; plus clients to publish requests and read what the executor did.
 */
export class ExecutorFixture {
  nats!: TestNatsServer;
  db!: TestDatabase;
  pg!: Pool;
  redis!: Redis;
  nc!: NatsConnection;
  js!: JetStreamClient;
  jsm!: JetStreamManager;
  publisher!: EventPublisher;
  runStream!: RunEventStream;
  readonly keyPrefix = uniqueKeyPrefix('aobexec');
  private statusCache: StatusEvent[] = [];

  /** @param opts.databaseServerUrl a private Postgres server (startPostgresServer) instead of the shared one */
  static async create(opts: { databaseServerUrl?: string } = {}): Promise<ExecutorFixture> {
    const f = new ExecutorFixture();
    [f.nats, f.db] = await Promise.all([
      startNatsServer(),
      createTestDatabase('aob_exec_test', opts.databaseServerUrl),
    ]);
    f.pg = new Pool({ connectionString: f.db.url, max: 3 });
    // an idle client cut by Postgres (an outage test, the database dropped at close) must not
    // crash the test process: the next query opens a new one
    f.pg.on('error', () => undefined);
    f.redis = new Redis(testRedisUrl(), { maxRetriesPerRequest: 1 });
    f.runStream = new RunEventStream(f.redis, { keyPrefix: f.keyPrefix });
    f.nc = await connectNats({ url: f.nats.url, name: 'agent-executor-test' });
    f.js = jetstream(f.nc);
    f.jsm = await jetstreamManager(f.nc);
    f.publisher = new EventPublisher(f.js, 'aob://executor-test');
    return f;
  }

  /** Environment of an executor process for this fixture. */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      PORT: '0',
      NATS_URL: this.nats.url,
      DATABASE_URL: this.db.url,
      REDIS_URL: testRedisUrl(),
      RUN_STREAM_KEY_PREFIX: this.keyPrefix,
      AOB_SERVICE_KEY: SERVICE_KEY,
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      EXECUTOR_RETRY_BASE_MS: '50',
      EXECUTOR_RETRY_MAX_MS: '200',
      EXECUTOR_LEASE_TTL_MS: '3000',
      SHUTDOWN_GRACE_MS: '5000',
      ...extra,
    };
  }

  /** Boots the executor in this process with `env()`. */
  async startApp(extra: Record<string, string> = {}): Promise<INestApplication> {
    return startExecutor(loadExecutorConfig(this.env(extra)));
  }

  async publishExecute(data: ExecuteRequest, opts: PublishExecuteOptions = {}): Promise<string> {
    const id = opts.id ?? randomUUID();
    const subject = opts.subject ?? `agent.execute.${data.agent}`;
    const tenantId = opts.tenantId === undefined ? 'tenant-a' : opts.tenantId;
    if (opts.mode === 'structured') {
      const event = new CloudEvent<unknown>({
        id,
        source: 'aob://executor-test',
        type: 'aob.agent.execute.v1',
        datacontenttype: 'application/json',
        data,
        ...(tenantId === null ? {} : { tenantid: tenantId }),
        ...(opts.traceparent === undefined ? {} : { traceparent: opts.traceparent }),
      });
      const { headers, data: payload } = encodeStructured(event);
      await this.js.publish(subject, payload, { headers, msgID: opts.msgId ?? id });
      return id;
    }
    await this.publisher.publish('agentExecute', data, {
      id,
      subject,
      ...(tenantId === null ? {} : { tenantId }),
      ...(opts.msgId === undefined ? {} : { msgId: opts.msgId }),
      ...(opts.traceparent === undefined ? {} : { traceparent: opts.traceparent }),
    });
    return id;
  }

  /** Every event stored in AGENT_STATUS so far, decoded, oldest first. */
  async statusEvents(runId?: string): Promise<StatusEvent[]> {
    const info = await this.jsm.streams.info('AGENT_STATUS');
    for (let seq = (this.statusCache.at(-1)?.seq ?? 0) + 1; seq <= info.state.last_seq; seq++) {
      const m = await this.jsm.streams.getMessage('AGENT_STATUS', { seq });
      if (!m) continue;
      const ce = decodeCloudEvent({ headers: m.header, data: m.data });
      this.statusCache.push({
        seq,
        id: ce.id,
        type: ce.type,
        subject: ce.subject,
        tenantid: ce.tenantid,
        traceparent: ce.traceparent,
        time: ce.time,
        data: ce.data as Record<string, unknown>,
      });
    }
    return runId === undefined
      ? [...this.statusCache]
      : this.statusCache.filter((e) => e.subject === runId);
  }

  /** Waits for the run's completed or failed event on AGENT_STATUS. */
  async terminalEvent(runId: string, timeoutMs = 20_000): Promise<StatusEvent> {
    let found: StatusEvent | undefined;
    await waitFor(
      async () => {
        found = (await this.statusEvents(runId)).find(
          (e) => e.type === 'aob.agent.completed.v1' || e.type === 'aob.agent.failed.v1',
        );
        return found !== undefined;
      },
      { timeoutMs, what: `a terminal status event of run ${runId}` },
    );
    return found!;
  }

  async runRow(runId: string): Promise<Record<string, unknown> | undefined> {
    const { rows } = await this.pg.query('SELECT * FROM executor.runs WHERE run_id = $1', [runId]);
    return rows[0];
  }

  async checkpoints(
    runId: string,
  ): Promise<
    { step: number; step_id: string; output: unknown; state: unknown; created_at: Date }[]
  > {
    const { rows } = await this.pg.query(
      'SELECT * FROM executor.checkpoints WHERE run_id = $1 ORDER BY step',
      [runId],
    );
    return rows;
  }

  async termination(eventId: string): Promise<Record<string, unknown> | undefined> {
    const { rows } = await this.pg.query('SELECT * FROM dlq.terminations WHERE event_id = $1', [
      eventId,
    ]);
    return rows[0];
  }

  async terminationsBySubject(subject: string): Promise<Record<string, unknown>[]> {
    const { rows } = await this.pg.query(
      'SELECT * FROM dlq.terminations WHERE subject = $1 ORDER BY stream_seq',
      [subject],
    );
    return rows;
  }

  redisEntries(runId: string): Promise<RunStreamEntry[]> {
    return this.runStream.range(runId, undefined, 10_000);
  }

  /** True once the executor's consumer has settled everything it was given. */
  async consumerIdle(): Promise<boolean> {
    const info = await this.jsm.consumers.info('AGENT_EXECUTION', 'agent-executor-workers');
    return info.num_ack_pending === 0 && info.num_pending === 0 && info.num_redelivered === 0;
  }

  async close(): Promise<void> {
    await this.nc?.close().catch(() => undefined);
    await this.nats?.stop().catch(() => undefined);
    if (this.redis) {
      const keys = await this.redis.keys(`${this.keyPrefix}:*`).catch(() => [] as string[]);
      if (keys.length > 0) await this.redis.del(...keys).catch(() => undefined);
      this.redis.disconnect();
    }
    await this.pg?.end().catch(() => undefined);
    await this.db?.drop().catch(() => undefined);
  }
}
