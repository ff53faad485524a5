import { Injectable, Logger } from '@nestjs/common';
import { DomainError } from '@aob/errors';
import { counter, histogram } from '@aob/observability';
import { SpendTracker } from '../quotas/spend-tracker';
import type { CommittedSpend, UsageEntry } from './usage-entry';
import { UsageRecordRepository } from './usage-record.repository';

/** One entry's fate in its batch: stored (or already stored), or rejected for its own content. */
export type EntryOutcome = { ok: true } | { ok: false; error: DomainError };
/** The outcome of every stored entry (shared: nothing mutates it). */
const STORED: EntryOutcome = Object.freeze({ ok: true });

const eventsCounter = () =>
  counter({
    name: 'aob_metering_usage_events_total',
    help: 'Usage events by outcome',
    labelNames: ['outcome'] as const,
  });
const batchSeconds = () =>
  histogram({
    name: 'aob_metering_batch_seconds',
    help: 'Time to write one batch (one transaction)',
    buckets: [0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });
const batchSize = () =>
  histogram({
    name: 'aob_metering_batch_size',
    help: 'Usage events per batch',
    buckets: [1, 10, 50, 100, 250, 500, 1000, 2500],
  });

/**
 * Usage ingestion: writes a batch of usage events in one transaction, idempotent on the CloudEvent
 * (source, id) through the raw records' primary key, and says per entry whether it is stored.
 * The batch consumer acks a message only after this resolved for it.
 */
@Injectable()
export class UsageIngestionService {
  private readonly log = new Logger(UsageIngestionService.name);
  private readonly events = eventsCounter();
  private readonly seconds = batchSeconds();
  private readonly sizes = batchSize();

  constructor(
    private readonly records: UsageRecordRepository,
    private readonly spend: SpendTracker,
  ) {}

  /** Events refused before any write (say, a tenantid attribute contradicting the data). */
  countRejected(n: number): void {
    this.events.inc({ outcome: 'rejected' }, n);
  }

  /**
   * Commits a batch (one statement). An entry whose content breaks the statement (SQLSTATE 22/23)
   * makes the batch be written entry by entry, so only that entry is refused. Throws on any other
   * failure; whatever was committed before it counts once when the batch is redelivered.
   */
  async writeBatch(entries: UsageEntry[]): Promise<EntryOutcome[]> {
    const end = this.seconds.startTimer();
    this.sizes.observe(entries.length);
    try {
      const committed = await this.records.insertBatch(entries);
      this.account(entries.length, committed);
      return entries.map(() => STORED);
    } catch (err) {
      if (!isDataError(err)) throw err;
      if (entries.length === 1) return [this.rejected(entries[0]!, err)];
      // One entry's content broke the statement: write them one by one so only it is refused.
      this.log.warn(
        `batch of ${entries.length} failed on its content (${(err as Error).message}); writing entries one by one`,
      );
      const outcomes: EntryOutcome[] = [];
      for (const entry of entries) outcomes.push(await this.writeOne(entry));
      return outcomes;
    } finally {
      end();
    }
  }

  private async writeOne(entry: UsageEntry): Promise<EntryOutcome> {
    try {
      this.account(1, await this.records.insertBatch([entry]));
      return { ok: true };
    } catch (err) {
      if (!isDataError(err)) throw err;
      return this.rejected(entry, err);
    }
  }

  private rejected(entry: UsageEntry, err: unknown): EntryOutcome {
    this.events.inc({ outcome: 'rejected' });
    return {
      ok: false,
      error: new DomainError(
        'InvalidEvent',
        `usage event ${entry.eventId} cannot be stored: ${(err as Error).message}`,
      ),
    };
  }

  private account(received: number, committed: CommittedSpend[]): void {
    const stored = committed.reduce((n, c) => n + c.records, 0);
    this.events.inc({ outcome: 'stored' }, stored);
    if (received > stored) this.events.inc({ outcome: 'duplicate' }, received - stored);
    // after the commit, never failing it: the counter resyncs from Postgres if this is lost
    this.spend.add(committed);
  }
}

/** SQLSTATE classes 22 (data exception) and 23 (integrity): the content is at fault, not the database. */
function isDataError(err: unknown): boolean {
  const code =
    (err as { code?: unknown; driverError?: { code?: unknown } })?.driverError?.code ??
    (err as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23'));
}
