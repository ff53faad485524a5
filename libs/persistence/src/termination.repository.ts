import type { DataSource } from 'typeorm';
import { TerminationRecord } from './entities/termination-record.entity';

export interface TerminationInput {
  stream: string;
  consumer: string;
  streamSeq: number;
  subject: string;
  eventId?: string;
  eventType?: string;
  tenantId?: string;
  code: string;
  reason: string;
  deliveries: number;
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
        consumer: t.consumer,
        streamSeq: String(t.streamSeq),
        subject: t.subject,
        eventId: t.eventId ?? null,
        eventType: t.eventType ?? null,
        tenantId: t.tenantId ?? null,
        code: t.code,
        reason: t.reason.slice(0, 4_000),
        deliveries: t.deliveries,
      })
      .orIgnore()
      .execute();
  }

  async find(stream: string, consumer: string, streamSeq: number): Promise<TerminationRecord | null> {
    return this.ds.getRepository(TerminationRecord).findOneBy({ stream, consumer, streamSeq: String(streamSeq) });
  }
}
