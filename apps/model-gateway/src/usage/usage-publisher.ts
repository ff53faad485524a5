import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import { describeError, isDomainError } from '@aob/errors';
import type { PublishOptions, UsageRecord } from '@aob/events';
import { captureTraceContext, runWithContext } from '@aob/observability';
import type { Context } from '@opentelemetry/api';
import type { ModelGatewayMetrics } from '../metrics/model-gateway.metrics';

export interface UsagePublisherOptions {
  /** Events held while JetStream does not answer; beyond it new events are dropped (logged, counted). @default 10000 */
  maxQueue?: number;
  /** Publishes in flight at once. @default 32 */
  concurrency?: number;
  /** First retry delay after a failed publish; doubles per failure in a row. @default 100 */
  retryBaseMs?: number;
  /** Cap of the retry delay. @default 5000 */
  retryMaxMs?: number;
  /** How long shutdown waits for queued events. @default 5000 */
  shutdownFlushMs?: number;
}

/** Where usage events go: `EventPublisher` of @aob/events (JetStream), or a fake in unit tests. */
export interface UsageEventSink {
  publish(key: 'meteringUsage', data: UsageRecord, opts: PublishOptions): Promise<unknown>;
}

interface PendingUsage {
  /** CloudEvent id and Nats-Msg-Id: the completion id, so a retried publish is stored once. */
  id: string;
  record: UsageRecord;
  attempts: number;
  /** Tracing on: the request's context, so the usage event continues its trace. */
  trace: Context | undefined;
}

/**
 * Publishes `aob.metering.usage.v1` events off the request path. `enqueue` never waits and never
 * throws: events wait in a bounded in-memory queue and are retried with backoff while JetStream
 * does not answer, so a NATS blip delays billing data instead of failing responses. Events still
 * queued when the process ends are lost (logged and counted); JetStream's duplicate window makes
 * retries safe.
 */
export class UsagePublisher implements OnApplicationShutdown {
  private readonly logger = new Logger(UsagePublisher.name);
  private readonly queue: PendingUsage[] = [];
  private readonly maxQueue: number;
  private readonly concurrency: number;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly shutdownFlushMs: number;
  private inFlight = 0;
  private failuresInARow = 0;
  private resumeTimer: NodeJS.Timeout | undefined;
  private idleWaiters: (() => void)[] = [];
  private pumpScheduled = false;

  constructor(
    private readonly publisher: UsageEventSink,
    private readonly metrics: ModelGatewayMetrics,
    opts: UsagePublisherOptions = {},
  ) {
    this.maxQueue = opts.maxQueue ?? 10_000;
    this.concurrency = opts.concurrency ?? 32;
    this.retryBaseMs = opts.retryBaseMs ?? 100;
    this.retryMaxMs = opts.retryMaxMs ?? 5_000;
    this.shutdownFlushMs = opts.shutdownFlushMs ?? 5_000;
  }

  /** Queues one usage record for publishing; returns at once. */
  enqueue(id: string, record: UsageRecord): void {
    if (this.queue.length + this.inFlight >= this.maxQueue) {
      this.metrics.usageEvents.inc({ outcome: 'dropped' });
      this.logger.error(
        {
          usageId: id,
          tenantId: record.tenantId,
          deployment: record.deployment,
          queued: this.queue.length,
        },
        `usage queue full (${this.maxQueue}): usage event dropped`,
      );
      return;
    }
    this.queue.push({ id, record, attempts: 0, trace: captureTraceContext() });
    this.metrics.usageQueueDepth.set(this.queue.length + this.inFlight);
    // publish on a later turn of the event loop: encoding and sending the event then happen
    // after the response that caused it was written, never before
    if (!this.pumpScheduled) {
      this.pumpScheduled = true;
      setImmediate(() => {
        this.pumpScheduled = false;
        this.pump();
      });
    }
  }

  /** Events not yet acknowledged by JetStream. */
  get pending(): number {
    return this.queue.length + this.inFlight;
  }

  /** Resolves when every queued event is published, or after `timeoutMs`; returns how many are left. */
  async flush(timeoutMs: number): Promise<number> {
    if (this.pending === 0) return 0;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      new Promise<void>((resolve) => this.idleWaiters.push(resolve)),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    return this.pending;
  }

  /** Runs after the HTTP server closed (no new events) and before the NATS connection drains. */
  async onApplicationShutdown(): Promise<void> {
    const left = await this.flush(this.shutdownFlushMs);
    clearTimeout(this.resumeTimer);
    if (left > 0) {
      this.metrics.usageEvents.inc({ outcome: 'lost' }, left);
      this.logger.error(
        { lost: left },
        `shutdown: ${left} usage events were not published and are lost`,
      );
    }
  }

  private pump(): void {
    if (this.resumeTimer) return; // backing off; the timer pumps again
    while (this.inFlight < this.concurrency && this.queue.length > 0) {
      const next = this.queue.shift() as PendingUsage;
      this.inFlight++;
      void this.send(next);
    }
  }

  private async send(item: PendingUsage): Promise<void> {
    try {
      await runWithContext(item.trace, () =>
        this.publisher.publish('meteringUsage', item.record, {
          id: item.id,
          tenantId: item.record.tenantId,
          ...(item.record.runId === undefined ? {} : { ceSubject: item.record.runId }),
        }),
      );
      this.failuresInARow = 0;
      this.metrics.usageEvents.inc({ outcome: 'published' });
    } catch (err) {
      this.onFailure(item, err);
    } finally {
      this.inFlight--;
      this.metrics.usageQueueDepth.set(this.queue.length + this.inFlight);
      this.pump();
      if (this.pending === 0) this.notifyIdle();
    }
  }

  private onFailure(item: PendingUsage, err: unknown): void {
    if (isDomainError(err) && !err.retryable) {
      // the record itself is wrong: retrying cannot help
      this.metrics.usageEvents.inc({ outcome: 'dropped' });
      this.logger.error(
        { usageId: item.id, err: describeError(err) },
        'usage event rejected: dropped',
      );
      return;
    }
    item.attempts++;
    this.failuresInARow++;
    this.metrics.usageEvents.inc({ outcome: 'retried' });
    // back to the front: usage keeps roughly its order, and the queue bound still holds
    this.queue.unshift(item);
    const delay = Math.min(
      this.retryMaxMs,
      this.retryBaseMs * 2 ** Math.min(this.failuresInARow - 1, 16),
    );
    this.logger.warn(
      {
        usageId: item.id,
        attempts: item.attempts,
        retryInMs: delay,
        queued: this.queue.length,
        err: describeError(err),
      },
      'usage publish failed: will retry',
    );
    if (!this.resumeTimer) {
      this.resumeTimer = setTimeout(() => {
        this.resumeTimer = undefined;
        this.pump();
      }, delay);
      this.resumeTimer.unref();
    }
  }

  private notifyIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const resolve of waiters) resolve();
  }
}
