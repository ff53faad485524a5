import {
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
} from '@nestjs/common';
import { counter } from '@aob/observability';
import { METERING_CONFIG, type MeteringConfig } from '../config';
import { UsageRecordRepository } from '../ingestion/usage-record.repository';

const DAY_MS = 86_400_000;
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
export class RawRecordPruner implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly log = new Logger(RawRecordPruner.name);
  private readonly deleted = pruned();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(
    private readonly records: UsageRecordRepository,
    @Inject(METERING_CONFIG) private readonly config: MeteringConfig,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.METERING_PRUNE_INTERVAL_MS <= 0) return;
    this.timer = setInterval(
      () => void this.prune().catch(() => undefined),
      this.config.METERING_PRUNE_INTERVAL_MS,
    );
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    clearInterval(this.timer);
    await this.running?.catch(() => undefined);
  }

  /** One pass: deletes every record past retention (relative to `now`); returns how many. */
  prune(now = new Date()): Promise<number> {
    this.running ??= this.pass(
      new Date(now.getTime() - this.config.METERING_RAW_RETENTION_DAYS * DAY_MS),
    ).finally(() => (this.running = undefined));
    return this.running;
  }

  private async pass(before: Date): Promise<number> {
    let total = 0;
    try {
      for (;;) {
        const n = await this.records.pruneRawRecords(before, CHUNK);
        total += n;
        this.deleted.inc(n);
        if (n < CHUNK) break;
      }
      if (total > 0)
        this.log.log(`deleted ${total} raw usage records received before ${before.toISOString()}`);
      return total;
    } catch (err) {
      this.log.warn(
        `retention pass failed (next one in ${this.config.METERING_PRUNE_INTERVAL_MS} ms): ${(err as Error).message}`,
      );
      throw err;
    }
  }
}
