import { Inject, Injectable, Logger } from '@nestjs/common';
import { counter } from '@aob/observability';
import { RetentionJob } from '@aob/persistence';
import { METERING_CONFIG, type MeteringConfig } from '../config';
import { UsageRecordRepository } from '../ingestion/usage-record.repository';

/** Rows per DELETE: short transactions that never hold up ingestion for long. */
const CHUNK = 5_000;

const pruned = () =>
  counter({
    name: 'aob_metering_raw_records_pruned_total',
    help: 'Raw usage records deleted by the retention job',
  });

/**
 * Deletes raw usage records older than METERING_RAW_RETENTION_DAYS (by receipt time) every
 * METERING_PRUNE_INTERVAL_MS. Aggregates are kept. Safe on several replicas (plain chunked deletes).
 */
@Injectable()
export class RawRecordPruner extends RetentionJob {
  protected readonly log = new Logger(RawRecordPruner.name);
  private readonly deleted = pruned();

  constructor(
    private readonly records: UsageRecordRepository,
    @Inject(METERING_CONFIG) config: MeteringConfig,
  ) {
    super('retention', () => ({
      everyMs: config.METERING_PRUNE_INTERVAL_MS,
      retentionDays: config.METERING_RAW_RETENTION_DAYS,
    }));
  }

  protected async pass(before: Date): Promise<number> {
    let total = 0;
    while (!this.stopped) {
      const n = await this.records.pruneRawRecords(before, CHUNK);
      total += n;
      this.deleted.inc(n);
      if (n < CHUNK) break;
    }
    if (total > 0)
      this.log.log(`deleted ${total} raw usage records received before ${before.toISOString()}`);
    return total;
  }
}
