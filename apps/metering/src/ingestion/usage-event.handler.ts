import { Controller, UseFilters } from '@nestjs/common';
import { EventPattern, Payload } from '@nestjs/microservices';
import { EVENTS, JetStreamExceptionFilter, type InboundEvent, type UsageRecord } from '@aob/events';
import { UsageIngestionService } from './usage-ingestion.service';

/** JetStream handlers of the durable `metering` consumer (payloads already validated by the transport). */
@Controller()
@UseFilters(JetStreamExceptionFilter)
export class UsageEventHandler {
  constructor(private readonly ingestion: UsageIngestionService) {}

  @EventPattern(EVENTS.meteringUsage.type)
  async usage(@Payload() e: InboundEvent<UsageRecord>): Promise<void> {
    await this.ingestion.ingest(e);
  }

  /** Published by metering and the gateway for other readers; the `metering` consumer sees them on METERING too. */
  @EventPattern(EVENTS.quotaExceeded.type)
  quotaExceeded(): void {}

  @EventPattern(EVENTS.budgetWarning.type)
  budgetWarning(): void {}
}
