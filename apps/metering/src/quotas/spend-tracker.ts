import { Injectable, Logger, type OnApplicationShutdown } from '@nestjs/common';
import { counter } from '@aob/observability';
import { billingPeriodOf, QuotaLimiter } from '@aob/quotas';
import type { CommittedSpend } from '../ingestion/usage-entry';

const failures = () =>
  counter({
    name: 'aob_metering_spend_update_failures_total',
    help: 'Redis spend counter updates that failed after a commit (healed by the resync from Postgres)',
  });

/**
 * Feeds committed cost into the tenants' month-to-date spend counters in Redis, which the budget
 * checks read, and lets the limiter publish the 80 % warning and the exceeded event once per
 * period. Runs after the batch commit and off the ack path's critical section: a failure is
 * logged and counted, and the counter is rebuilt from Postgres at its next resync.
 */
@Injectable()
export class SpendTracker implements OnApplicationShutdown {
  private readonly log = new Logger(SpendTracker.name);
  private readonly failed = failures();
  private readonly pending = new Set<Promise<void>>();

  constructor(private readonly limiter: QuotaLimiter) {}

  add(committed: readonly CommittedSpend[]): void {
    for (const c of committed) {
      if (c.costUsd <= 0 && c.records === 0) continue;
      const p = this.limiter
        .recordSpend(c.tenantId, billingPeriodOf(c.period), c.costUsd)
        .catch((err: unknown) => {
          this.failed.inc();
          this.log.warn(
            `spend counter of ${c.tenantId} (${c.period}) not updated, it resyncs from Postgres: ${(err as Error).message}`,
          );
        })
        .finally(() => this.pending.delete(p));
      this.pending.add(p);
    }
  }

  /** Updates still running (tests wait for them). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  async onApplicationShutdown(): Promise<void> {
    await this.idle();
  }
}
