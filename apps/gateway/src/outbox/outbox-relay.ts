import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import type { JetStreamClient } from '@nats-io/jetstream';
import { headers as natsHeaders, type NatsConnection } from '@nats-io/nats-core';
import { JETSTREAM, NATS_CONNECTION } from '@aob/events';
import { counter, gauge, startMessageSpan, tracingEnabled } from '@aob/observability';
import { GATEWAY_CONFIG, type GatewayConfig } from '../config';
import { OutboxWakeup } from './outbox-wakeup';
import {
  OutboxRepository,
  type PendingOutboxMessage,
  type PublishOutcome,
} from './outbox.repository';

const PUBLISH_TIMEOUT_MS = 5_000;
const MAX_BACKOFF_MS = 5_000;
const PRUNE_EVERY_MS = 60_000;
const BACKLOG_EVERY_MS = 1_000;

const backlogGauge = () =>
  gauge({ name: 'aob_outbox_backlog', help: 'Outbox rows not yet published to JetStream' });
const publishedCounter = () =>
  counter({
    name: 'aob_outbox_published_total',
    help: 'Outbox rows published to JetStream, by outcome',
    labelNames: ['outcome'] as const,
  });

/** The relay's publish of one row, parented to the trace context stored in its CloudEvent headers. */
function publishSpan(row: PendingOutboxMessage) {
  const tenantId = row.headers['ce-tenantid'];
  const runId = row.headers['ce-subject'];
  return startMessageSpan(
    {
      operation: 'publish',
      destination: row.subject,
      messageId: row.eventId,
      bodySize: row.payload.length,
      ...(row.headers['ce-type'] === undefined ? {} : { eventType: row.headers['ce-type'] }),
      ...(row.headers['ce-source'] === undefined ? {} : { eventSource: row.headers['ce-source'] }),
      ...(tenantId === undefined ? {} : { tenantId }),
      ...(runId === undefined ? {} : { runId }),
    },
    { traceparent: row.headers['ce-traceparent'], tracestate: row.headers['ce-tracestate'] },
  );
}

/**
 * Publishes gateway.outbox rows to JetStream. Wakes on each commit (LISTEN/NOTIFY, any replica),
 * on a slow safety-net timer and at start-up; several replicas can run at once (rows are claimed with FOR UPDATE SKIP LOCKED), and
 * JetStream de-duplicates a row published twice by its Nats-Msg-Id (the event id). When NATS is
 * down the rows stay and the relay backs off; a reconnect resumes it at once.
 */
@Injectable()
export class OutboxRelay implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly log = new Logger(OutboxRelay.name);
  private readonly backlog = backlogGauge();
  private readonly published = publishedCounter();
  private timer: NodeJS.Timeout | undefined;
  private draining: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private failures = 0;
  private pausedUntil = 0;
  private lastPrune = 0;
  private lastBacklog = 0;
  private readonly wakeup: OutboxWakeup;

  constructor(
    private readonly outbox: OutboxRepository,
    @Inject(JETSTREAM) private readonly js: JetStreamClient,
    @Inject(NATS_CONNECTION) private readonly nc: NatsConnection,
    @Inject(GATEWAY_CONFIG) private readonly config: GatewayConfig,
  ) {
    this.wakeup = new OutboxWakeup(
      config.DATABASE_URL,
      () => this.kick(),
      (message) => this.log.warn(message),
    );
  }

  onApplicationBootstrap(): void {
    // LISTEN/NOTIFY wakes the relay on every commit, on every replica; the poll is the safety net
    // for a lost LISTEN connection and for backoff retries.
    this.wakeup.start();
    this.timer = setInterval(() => this.tick(), Math.max(10, this.config.OUTBOX_POLL_MS));
    this.timer.unref();
    void this.watchConnection();
    this.kick();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.wakeup.stop();
    await this.draining;
  }

  /** Publish what is pending now (coalesces with a run already in progress). */
  kick(): void {
    if (this.stopped) return;
    if (this.draining) {
      this.again = true;
      return;
    }
    if (Date.now() < this.pausedUntil) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  /** Resolves once no drain is running (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private tick(): void {
    this.kick();
    const now = Date.now();
    if (now - this.lastBacklog >= BACKLOG_EVERY_MS) {
      this.lastBacklog = now;
      this.outbox.backlog().then(
        (n) => this.backlog.set(n),
        () => undefined,
      );
    }
    if (now - this.lastPrune >= PRUNE_EVERY_MS) {
      this.lastPrune = now;
      this.outbox.pruneSent(this.config.OUTBOX_RETENTION_HOURS).then(
        (n) => n > 0 && this.log.log(`pruned ${n} sent outbox row(s)`),
        (err: Error) => this.log.warn(`outbox prune failed: ${err.message}`),
      );
    }
  }

  private async drain(): Promise<void> {
    try {
      for (;;) {
        if (this.stopped) return;
        const outcomes = await this.outbox.publishBatch(this.config.OUTBOX_BATCH_SIZE, (rows) =>
          this.publishAll(rows),
        );
        const failed = outcomes.filter((o) => !o.ok);
        if (failed.length > 0) {
          this.backOff(
            `${failed.length} of ${outcomes.length} publish(es) failed: ${(failed[0] as { error: string }).error}`,
          );
          return;
        }
        this.failures = 0;
        if (outcomes.length < this.config.OUTBOX_BATCH_SIZE) return;
      }
    } catch (err) {
      this.backOff(`outbox batch failed: ${(err as Error).message}`);
    }
  }

  private async publishAll(rows: PendingOutboxMessage[]): Promise<PublishOutcome[]> {
    // One batch in parallel: JetStream acks pipeline on the one connection.
    return Promise.all(
      rows.map(async (row): Promise<PublishOutcome> => {
        const h = natsHeaders();
        for (const [name, value] of Object.entries(row.headers)) h.set(name, value);
        // Tracing on: a `publish` span continuing the trace of the request that wrote the row.
        const span = tracingEnabled() ? publishSpan(row) : undefined;
        try {
          await this.js.publish(row.subject, row.payload, {
            headers: h,
            msgID: row.eventId,
            timeout: PUBLISH_TIMEOUT_MS,
          });
          span?.end();
          this.published.inc({ outcome: 'ok' });
          return { id: row.id, ok: true };
        } catch (err) {
          span?.end(err);
          this.published.inc({ outcome: 'error' });
          return { id: row.id, ok: false, error: (err as Error).message };
        }
      }),
    );
  }

  private backOff(reason: string): void {
    this.failures++;
    const delay = Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(this.failures, 10));
    this.pausedUntil = Date.now() + delay;
    this.log.warn(`${reason}; retrying in ${delay} ms (rows stay in the outbox)`);
  }

  private async watchConnection(): Promise<void> {
    try {
      for await (const s of this.nc.status()) {
        if (s.type === 'reconnect') {
          this.failures = 0;
          this.pausedUntil = 0;
          this.kick();
        }
      }
    } catch {
      // the iterator ends with the connection
    }
  }
}
