import { type BeforeApplicationShutdown, Logger } from '@nestjs/common';
import type { EntityManager } from '@aob/persistence';
import { counter, gauge } from '@aob/observability';
import type { AuditEvent, AuditRepository } from './audit.repository';

export interface AuditLogOptions {
  /** Events waiting for Postgres; beyond this the oldest are logged as lost. @default 10000 */
  maxQueue?: number;
  /** Events per INSERT. @default 200 */
  batchSize?: number;
  /** Pause before retrying a failed write. @default 1000 */
  retryMs?: number;
  /** How long shutdown waits for queued events to reach Postgres. @default 5000 */
  shutdownFlushMs?: number;
}

export type AuditInput = Omit<AuditEvent, 'at'> & { at?: Date };

const written = () =>
  counter({
    name: 'aob_audit_events_total',
    help: 'Audit events by decision and outcome of the Postgres write',
    labelNames: ['decision', 'outcome'] as const,
  });
const backlog = () =>
  gauge({ name: 'aob_audit_backlog', help: 'Audit events waiting for Postgres' });

/**
 * The audit trail: every event is logged at once as a structured line (`audit` field) and
 * written to auth.audit_log. Denials are written off the request path by a background batcher;
 * admin actions are written inside the transaction of the change (`persist`). A write that fails
 * is retried; an event that cannot be kept (queue full, shutdown) is logged at error level with
 * its content, never dropped silently.
 */
export class AuditLog implements BeforeApplicationShutdown {
  private readonly logger = new Logger('audit');
  private readonly queue: AuditEvent[] = [];
  private flushing: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastWriteFailed = false;
  private readonly maxQueue: number;
  private readonly batchSize: number;
  private readonly retryMs: number;
  private readonly shutdownFlushMs: number;

  /** Without a repository (an app without Postgres) events are only logged. */
  constructor(
    private readonly repo: AuditRepository | undefined,
    opts: AuditLogOptions = {},
  ) {
    this.maxQueue = opts.maxQueue ?? 10_000;
    this.batchSize = opts.batchSize ?? 200;
    this.retryMs = opts.retryMs ?? 1_000;
    this.shutdownFlushMs = opts.shutdownFlushMs ?? 5_000;
  }

  /** Logs now, writes to Postgres in the background. Never throws, never waits. */
  record(input: AuditInput): void {
    const event = this.announce(input);
    if (!this.repo) return;
    if (this.closed) {
      this.lost([event], 'the audit log is closed');
      return;
    }
    this.queue.push(event);
    if (this.queue.length > this.maxQueue) {
      this.lost(this.queue.splice(0, this.queue.length - this.maxQueue), 'audit queue full');
    }
    backlog().set(this.queue.length);
    this.kick();
  }

  /**
   * Writes the event inside the caller's transaction, so it commits (or not) with the change it
   * describes; `announce` it after the commit.
   */
  async persist(input: AuditInput, m: EntityManager): Promise<AuditEvent> {
    const event = { ...input, at: input.at ?? new Date() };
    await this.repo?.insert([event], m);
    return event;
  }

  /** The structured log line of an event. */
  announce(input: AuditInput): AuditEvent {
    const event = { ...input, at: input.at ?? new Date() };
    const line = { audit: { ...event, at: event.at.toISOString() } };
    if (event.decision === 'deny') this.logger.warn(line, 'audit: denied');
    else this.logger.log(line, 'audit: allowed');
    return event;
  }

  /**
   * Writes what is queued now. Resolves when the queue is empty, or after one failed attempt
   * (the events stay queued for the retry).
   */
  async flush(): Promise<void> {
    for (;;) {
      if (this.retryTimer) {
        clearTimeout(this.retryTimer);
        this.retryTimer = undefined;
      }
      this.kick();
      if (!this.flushing) return;
      await this.flushing;
      if (this.lastWriteFailed) return;
    }
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.closed = true;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.flush(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, this.shutdownFlushMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.queue.length > 0)
      this.lost(this.queue.splice(0), 'shutdown before the audit events were written');
    backlog().set(0);
  }

  private kick(): void {
    if (this.flushing || this.retryTimer || this.queue.length === 0) return;
    this.flushing = this.writeAll().finally(() => {
      this.flushing = undefined;
    });
  }

  private async writeAll(): Promise<void> {
    // let the request that queued the event finish first
    await new Promise<void>((resolve) => setImmediate(resolve));
    while (this.queue.length > 0 && this.repo) {
      const batch = this.queue.slice(0, this.batchSize);
      try {
        await this.repo.insert(batch);
        this.queue.splice(0, batch.length);
        this.lastWriteFailed = false;
        for (const e of batch) written().inc({ decision: e.decision, outcome: 'written' });
      } catch (err) {
        this.lastWriteFailed = true;
        for (const e of batch) written().inc({ decision: e.decision, outcome: 'retried' });
        this.logger.error(
          { err, pending: this.queue.length },
          'audit events could not be written to Postgres; retrying (their log lines were written)',
        );
        if (!this.closed) {
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.kick();
          }, this.retryMs);
          this.retryTimer.unref();
        }
        break;
      } finally {
        backlog().set(this.queue.length);
      }
    }
  }

  private lost(events: AuditEvent[], why: string): void {
    for (const e of events) {
      written().inc({ decision: e.decision, outcome: 'lost' });
      this.logger.error(
        { audit: { ...e, at: e.at.toISOString() } },
        `audit event not written to Postgres: ${why}`,
      );
    }
  }
}
