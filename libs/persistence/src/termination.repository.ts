import type { DataSource } from 'typeorm';
import { TerminationRecord } from './entities/termination-record.entity';

/** Shaped like the JetStream transport's TerminationInfo, so `onTerminate` can pass it as is. */
export interface TerminationInput {
  stream: string;
  durable: string;
  streamSeq: number;
  natsSubject: string;
  eventId?: string;
  eventType?: string;
  tenantId?: string;
  code: string;
  reason: string;
  deliveryCount: number;
}

/** Records why a consumer terminated a message (the server drops term reasons before 2.10.4). */
export class TerminationRepository {
  constructor(private readonly ds: DataSource) {}

  async record(t: TerminationInput): Promise<void> {
    await this.ds
      .createQueryBuilder()
      .insert()
      .into(TerminationRecord)
      .values({
        stream: t.stream,
        consumer: t.durable,
        streamSeq: String(t.streamSeq),
        subject: t.natsSubject,
        eventId: t.eventId ?? null,
        eventType: t.eventType ?? null,
        tenantId: t.tenantId ?? null,
        code: t.code,
        reason: t.reason.slice(0, 4_000),
        deliveries: t.deliveryCount,
      })
      .orIgnore()
      .execute();
  }

  async find(
    stream: string,
    consumer: string,
    streamSeq: number,
  ): Promise<TerminationRecord | null> {
    return this.ds
      .getRepository(TerminationRecord)
      .findOneBy({ stream, consumer, streamSeq: String(streamSeq) });
  }
}
