import { Injectable, type OnModuleDestroy } from '@nestjs/common';
import { gauge } from '@aob/observability';
import { DeadLetterRepository } from '@aob/persistence';

/** The repository the gauge reads (the last app booted in this process). */
let source: DeadLetterRepository | undefined;

/**
 * `aob_dlq_dead_letters{status}`: open dead letters (`quarantined`, waiting for their automatic
 * replay; `parked`, waiting for a human), counted in Postgres when /metrics is scraped. The DLQ
 * stream's own size is `aob_jetstream_stream_messages{stream="DLQ"}`.
 */
@Injectable()
export class DeadLetterMetrics implements OnModuleDestroy {
  constructor(private readonly repo: DeadLetterRepository) {
    source = repo;
    gauge({
      name: 'aob_dlq_dead_letters',
      help: 'Open dead letters by status (quarantined: replay pending; parked: needs a human)',
      labelNames: ['status'] as const,
      async collect() {
        if (!source) return;
        try {
          const open = await source.countOpen();
          this.set({ status: 'quarantined' }, open.quarantined);
          this.set({ status: 'parked' }, open.parked);
        } catch {
          this.reset(); // database down: no series rather than stale ones
        }
      },
    });
  }

  onModuleDestroy(): void {
    if (source === this.repo) source = undefined;
  }
}
